"""Each project's active version is its own: a running Agent with a camera without skills (the default project's
classifier through the model slot) and a camera whose skill names `shelf-gaps`. Activating a shelf-gaps version
swaps it into the skill and leaves the other camera's model alone, across a restart too; activating a default
project version changes the plain camera and leaves the skill's model alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from edge.agent import Agent, AgentOptions
from edge.config import parse_yaml_config
from edge.config.model import EdgeConfig
from tests.helpers.tiny_bundle import make_classification_bundle
from tests.helpers.waiting import wait_until
from tests.skills.conftest import ShelfPhotos, gap_detector, make_projects

CONFIG = """
cameras:
  - id: plain
    source: {folder}
    fps: 4
    zones: [{{id: shelf, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}}]
  - id: aisle3
    source: {folder}
    fps: 4
    zones: [{{id: shelf-a, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}}]
    skills:
      - id: gaps
        blocks:
          - {{id: det, type: detect, project: shelf-gaps, min_score: 0.3}}
          - {{id: cov, type: coverage, input: det, label: empty_shelf}}
"""


def running_versions(agent: Agent) -> tuple[str | None, str | None]:
    """(the plain camera's model version as its live view says, the skill's model version)."""
    live = agent.pipelines["plain"].live()
    skill = agent.skills.runners["aisle3"].skills[0]
    return (live["model"] or {}).get("version"), skill.model_ref()["version"]


def test_activating_one_projects_version_leaves_the_other_cameras_model_alone(
    tmp_path: Path, shelf_photos: ShelfPhotos
) -> None:
    bundles = tmp_path / "bundles"
    projects = make_projects(tmp_path / "data", bundles, shelf_photos)
    keys = bundles / "keys"
    plain_1 = make_classification_bundle(bundles, version="plain-1", name="shelf", key_dir=keys, openvino=False)
    plain_2 = make_classification_bundle(bundles, version="plain-2", name="shelf", key_dir=keys, openvino=False)
    gaps_2 = gap_detector(bundles, shelf_photos, "gaps-2")
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copyfile(shelf_photos.gap[0], folder / "shelf.jpg")
    raw = yaml.safe_load(CONFIG.format(folder=folder))
    raw.update(
        device_id="dev1",
        data_dir=str(projects.data_dir),
        mqtt={"enabled": False},
        model={"engine": "onnxruntime", "threads": 1, "trusted_keys": [str(projects.public_key)]},
    )
    config = parse_yaml_config(yaml.safe_dump(raw), EdgeConfig)

    agent = Agent(config, AgentOptions(web=False)).start()
    try:
        agent.models.install(plain_1.bundle_dir, activate=True)  # the default project's version
        assert wait_until(lambda: running_versions(agent) == ("plain-1", "gaps-1"), timeout=30), running_versions(agent)
        gaps = agent.store.get_project("shelf-gaps")
        agent.models.install(gaps_2.bundle_dir, project=gaps.id, activate=True)
        assert wait_until(lambda: running_versions(agent)[1] == "gaps-2", timeout=30), running_versions(agent)
        assert agent.slot.current is not None and agent.slot.current.version == "plain-1"
        assert running_versions(agent)[0] == "plain-1", "a skill project's version must not reach the plain camera"
    finally:
        agent.stop()

    # The device's last activation was shelf-gaps': after a restart each camera runs what it ran.
    agent = Agent(config, AgentOptions(web=False)).start()
    try:
        assert agent.models.active_version() == "gaps-2"
        assert wait_until(lambda: running_versions(agent) == ("plain-1", "gaps-2"), timeout=30), running_versions(agent)
        agent.models.install(plain_2.bundle_dir, activate=True)
        assert wait_until(lambda: running_versions(agent)[0] == "plain-2", timeout=30), running_versions(agent)
        assert running_versions(agent)[1] == "gaps-2", "the default project's version must not reach the skill"
    finally:
        agent.stop()
