"""Skills in the studio: read, edit without a restart, a broken edit refused (the running skills go on), debug."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import pytest
import yaml

from edge.comms.base import NullCommunicator
from edge.events import EventLog, EventWriter
from edge.model_repository import ModelRepository
from edge.pipeline.zone_scoring import Zone
from edge.runtime.wrappers import load_model
from edge.skills.models import ProjectModels
from edge.skills.runner import SkillsHub
from tests.skills.conftest import EXAMPLE, ShelfPhotos, make_projects
from tests.web.conftest import CAMERA_ID, create_admin, make_shelf_images, open_studio
from tests.web.live_rig import live_rig

WHOLE = Zone("shelf-a", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)), ())


@pytest.fixture
def rig(tmp_path: Path, shelf_photos: ShelfPhotos):
    projects = make_projects(tmp_path / "data", tmp_path / "bundles", shelf_photos)
    folder = tmp_path / "camera"
    make_shelf_images(folder, 2)
    with open_studio(projects.data_dir, folder) as studio:
        repo = ModelRepository(projects.data_dir / "models", [str(projects.public_key)])
        models = ProjectModels(repo, studio.store, lambda path: load_model(path, "onnxruntime", 1))
        events = EventLog(projects.data_dir / "events.db", "dev1")
        writer = EventWriter(events, lambda event: None)
        hub = SkillsHub(projects.data_dir, models, NullCommunicator(), writer.submit)
        hub.runner(CAMERA_ID, None)
        studio.services.skills = hub
        yield studio, hub
        hub.stop()
        events.close()


def example_skill(index: int, **changes: object) -> dict:
    skill = yaml.safe_load(EXAMPLE)["cameras"][0]["skills"][index]
    for block in skill["blocks"]:
        if block["type"] == "webhook":
            block["secret"] = "literal-secret"
    return skill


def test_skills_are_edited_live_and_a_broken_edit_changes_nothing(rig, shelf_photos: ShelfPhotos) -> None:
    studio, hub = rig
    admin = create_admin(studio.app.test_client())
    url = f"/api/v1/cameras/{CAMERA_ID}/skills"
    assert admin.get(url).json["default"] is True  # no skills: today's rule

    text = yaml.safe_dump([example_skill(0), example_skill(1)], sort_keys=False)
    resp = admin.put(url, json={"yaml": text})
    assert resp.status_code == 200, resp.json
    runner = hub.runners[CAMERA_ID]
    assert [s.id for s in runner.skills] == ["gaps", "which"]  # running from the next frame, no restart
    shown = resp.json["skills"][0]["blocks"][4]
    assert shown["secret"] == "**********"  # a literal secret is never shown
    runner.run(cv2.imread(str(shelf_photos.gap[0])), [WHOLE])

    debug = admin.get(f"{url}/debug").json
    blocks = debug["skills"][0]["blocks"]
    assert [b["id"] for b in blocks] == ["det", "cov", "low", "event", "hook"]
    assert blocks[0]["output"][0]["label"] == "empty_shelf" and blocks[0]["at"] is not None
    assert blocks[1]["output"][0]["value"] >= 0.2

    broken = resp.json["skills"]
    broken[0]["blocks"][2]["input"] = "nothing"
    refused = admin.put(url, json={"skills": broken})
    assert refused.status_code == 400
    assert "skill 'gaps', block 'low': unknown input 'nothing'" in refused.json["error"]
    assert [s.id for s in runner.skills] == ["gaps", "which"] and runner.skills[0].config.blocks[2].input == "cov"

    # Saving back what GET showed keeps the masked secret, and the edit survives a restart of the hub.
    again = admin.get(url).json["skills"]
    again[1]["blocks"][3]["seconds"] = 5
    assert admin.put(url, json={"skills": again}).status_code == 200
    assert runner.skills[0].hooks["hook"].secret == "literal-secret"
    assert hub.saved(CAMERA_ID)[1]["blocks"][3]["seconds"] == 5
    page = admin.get(f"/skills/{CAMERA_ID}")
    assert page.status_code == 200 and "Skills of aisle-1" in page.get_data(as_text=True)

    assert admin.put(url, json={"skills": None}).json["default"] is True
    assert runner.active is False


def test_an_unknown_camera_and_a_bad_body_are_4xx(rig) -> None:
    studio, _ = rig
    admin = create_admin(studio.app.test_client())
    assert admin.get("/api/v1/cameras/nope/skills").status_code == 404
    assert admin.put(f"/api/v1/cameras/{CAMERA_ID}/skills", json={"skills": "x"}).status_code == 400
    assert admin.put(f"/api/v1/cameras/{CAMERA_ID}/skills", json={"yaml": "[: bad"}).status_code == 400
    bad_type = [{"id": "s", "blocks": [{"id": "a", "type": "teleport"}]}]
    resp = admin.put(f"/api/v1/cameras/{CAMERA_ID}/skills", json={"skills": bad_type})
    assert resp.status_code == 400 and "block 'a': unknown block type 'teleport'" in resp.json["error"]


def test_skills_from_edge_yaml_are_shown_and_saved_back_unchanged(rig) -> None:
    studio, hub = rig
    from edge.skills.config import SKILLS_ADAPTER

    runner = hub.runner(CAMERA_ID, SKILLS_ADAPTER.validate_python([example_skill(0)]))
    admin = create_admin(studio.app.test_client())
    url = f"/api/v1/cameras/{CAMERA_ID}/skills"
    shown = admin.get(url).json
    assert shown["default"] is False and shown["skills"][0]["blocks"][4]["secret"] == "**********"
    assert "'on': 0.2" in shown["yaml"]  # quoted: YAML 1.1 would read a bare on as true
    resp = admin.put(url, json={"yaml": shown["yaml"]})
    assert resp.status_code == 200, resp.json
    runner = hub.runners[CAMERA_ID]
    assert runner.skills[0].hooks["hook"].secret == "literal-secret"
    assert runner.skills[0].config.blocks[2].on == 0.2


def test_a_camera_without_skills_shows_its_default_skill_live(tmp_path: Path) -> None:
    """The debug view of a camera without skills: its pipeline's built-in default skill, block by block with each
    block's last output, and its block times in /metrics (a real pipeline, detector and Reporter)."""
    with live_rig(tmp_path) as rig:
        studio = rig.studio
        hub = SkillsHub(tmp_path / "data", ProjectModels(None, studio.store, load_model), NullCommunicator(), None)
        rig.pipeline.skills = hub.runner(CAMERA_ID, None)  # what the agent gives a camera without skills
        studio.services.skills, studio.services.metrics = hub, rig.pipeline.metrics
        admin = create_admin(studio.app.test_client())
        url = f"/api/v1/cameras/{CAMERA_ID}/skills/debug"
        rig.show(dark=True)
        deadline = time.monotonic() + 30
        debug = admin.get(url).json
        while time.monotonic() < deadline and not (debug["skills"] and debug["skills"][0]["blocks"][1]["output"]):
            time.sleep(0.2)
            debug = admin.get(url).json
        assert debug["default"] is True and debug["active"] is False and debug["last_frame_at"] is not None
        (skill,) = debug["skills"]
        assert skill["id"] == "default" and skill["status"] == "running"
        blocks = {b["id"]: b for b in skill["blocks"]}
        assert [(b["id"], b["type"]) for b in skill["blocks"]] == [
            ("score", "zone_score"), ("low", "hysteresis"), ("state", "mqtt_state"), ("event", "mqtt_event"),
        ]  # fmt: skip
        assert all(b["runs"] > 0 and b["at"] is not None for b in skill["blocks"])
        score = blocks["score"]["output"][0]
        assert 0.0 <= score["value"] <= 1.0 and blocks["low"]["input"] == "score"
        assert admin.get(f"/api/v1/cameras/{CAMERA_ID}/skills").json["default"] is True
        page = admin.get(f"/skills/{CAMERA_ID}").get_data(as_text=True)
        assert "built-in default skill" in page and "equivalent to its zone settings" in page
        scrape = admin.get("/metrics").get_data(as_text=True)
        counts = [line for line in scrape.splitlines() if line.startswith("shelfwatch_skill_block_ms_count{")]
        assert any('skill="default"' in line and 'block="score"' in line for line in counts), counts
        hub.stop()
