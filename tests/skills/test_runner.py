"""The example's skills in one process on real shelf photos: events with traces, shared models, idle, edits."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import yaml

from edge.agent import AgentOptions, wire
from edge.config import parse_yaml_config
from edge.config.model import EdgeConfig
from edge.pipeline.zone_scoring import Zone
from edge.skills.config import SKILLS_ADAPTER
from tests.helpers.waiting import wait_until
from tests.skills.conftest import EXAMPLE, Projects, ShelfPhotos, gap_detector

WHOLE = Zone("shelf-a", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)), ())


def example_config(projects: Projects, folder: Path, hook_port: int = 9) -> EdgeConfig:
    text = EXAMPLE.replace("/srv/frames", str(folder)).replace("127.0.0.1:9000", f"127.0.0.1:{hook_port}")
    raw = yaml.safe_load(text)
    raw.update(
        device_id="dev1",
        data_dir=str(projects.data_dir),
        mqtt={"enabled": False},
        model={"engine": "onnxruntime", "threads": 1, "trusted_keys": [str(projects.public_key)]},
    )
    return parse_yaml_config(yaml.safe_dump(raw), EdgeConfig)


@pytest.fixture
def parts(projects: Projects, shelf_photos: ShelfPhotos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), cv2.imread(str(shelf_photos.stocked[0])))
    p = wire(example_config(projects, folder), AgentOptions(web=False))
    yield p
    p.skills.stop()
    p.events.close()
    p.store.close()


def test_the_example_raises_low_stock_and_product_gap_with_traces(parts, shelf_photos: ShelfPhotos) -> None:
    runner = parts.skills.runners["aisle3"]
    gap, stocked = cv2.imread(str(shelf_photos.gap[0])), cv2.imread(str(shelf_photos.stocked[0]))
    for image in (stocked, stocked, gap, gap, gap, stocked, stocked, stocked):
        frame = runner.run(image, [WHOLE])
        # Both skills' `det` use one project: one detector call per frame, classify the boxes once.
        assert [k[0] for k in frame.cache] in (["detect"], ["detect", "classify"])
    parts.reporter.writer.flush()
    events = [e.payload for e in reversed(parts.events.list())]
    kinds = [(e["type"], e["phase"], e["skill"]) for e in events]
    assert ("low_stock", "start", "gaps") in kinds and ("low_stock", "end", "gaps") in kinds
    assert ("product_gap", "once", "which") in kinds
    assert kinds.count(("product_gap", "once", "which")) == 1  # the cooldown holds the next ones back
    start = next(e for e in events if e["type"] == "low_stock" and e["phase"] == "start")
    assert [t["block"] for t in start["trace"]] == ["det", "cov", "low"]
    assert start["trace"][1]["output"][0]["value"] >= 0.2  # the coverage behind the decision
    assert start["trace"][2]["output"][0]["phase"] == "start"
    assert start["model"] == {"name": "shelf-gaps", "version": "gaps-1"}
    gap_event = next(e for e in events if e["type"] == "product_gap")
    assert [t["block"] for t in gap_event["trace"]] == ["det", "kind", "rule", "cool"]
    assert gap_event["label"] in ("red", "green") and gap_event["score"] >= 0.5
    # The webhook on `low` got the same events, same ids, in order.
    queue = parts.skills.webhooks.queue("aisle3", "gaps", "hook", runner.skills[0].config.blocks[4])
    queued = [m.key for m in queue.outbox.peek(limit=50)]
    assert queued == [e["id"] for e in events if e["type"] == "low_stock"]
    debug = runner.debug()
    assert [b["id"] for b in debug["skills"][0]["blocks"]] == ["det", "cov", "low", "event", "hook"]
    assert all(b["at"] is not None and b["runs"] == 8 for b in debug["skills"][0]["blocks"])
    assert parts.metrics.has("shelfwatch_skill_block_ms")


def test_a_skill_without_its_project_is_idle_and_says_why(parts, shelf_photos: ShelfPhotos) -> None:
    runner = parts.skills.runners["aisle3"]
    raw = yaml.safe_load(EXAMPLE)["cameras"][0]["skills"][1]
    raw["blocks"][0]["project"] = "nope"
    runner.replace(SKILLS_ADAPTER.validate_python([raw]))
    runner.run(cv2.imread(str(shelf_photos.gap[0])), [WHOLE])
    skill = runner.debug()["skills"][0]
    assert skill["status"] == "idle"
    assert "'nope' does not exist" in skill["reason"]


def test_a_broken_edit_is_refused_and_the_running_skills_keep_going(parts, shelf_photos: ShelfPhotos) -> None:
    raw = yaml.safe_load(EXAMPLE)["cameras"][0]["skills"]
    raw[0]["blocks"][2]["input"] = "missing"
    with pytest.raises(ValueError, match="block 'low': unknown input 'missing'"):
        parts.skills.save("aisle3", raw)
    runner = parts.skills.runners["aisle3"]
    assert [s.id for s in runner.skills] == ["gaps", "which"]
    runner.run(cv2.imread(str(shelf_photos.gap[0])), [WHOLE])
    assert runner.debug()["skills"][0]["status"] == "running"


def test_activating_a_new_version_of_a_project_swaps_it_into_every_skill(
    parts, projects: Projects, shelf_photos: ShelfPhotos, tmp_path: Path
) -> None:
    runner = parts.skills.runners["aisle3"]
    image = cv2.imread(str(shelf_photos.gap[0]))
    runner.run(image, [WHOLE])
    assert {s.model_ref()["version"] for s in runner.skills} == {"gaps-1"}
    parts.models.on_activate(parts.skills.models.on_activated)  # as Agent.start does
    newer = gap_detector(tmp_path / "bundles", shelf_photos, "gaps-2")
    gaps = parts.store.get_project("shelf-gaps")
    parts.models.install(newer.bundle_dir, project=gaps.id, activate=True)

    def swapped() -> bool:
        runner.run(image, [WHOLE])  # frames keep coming while the new engine loads beside the old one
        return all(s.model_ref()["version"] == "gaps-2" for s in runner.skills)

    assert wait_until(swapped, timeout=30)
    assert runner.debug()["skills"][0]["status"] == "running"


def test_collect_sends_frames_to_the_studios_inbox(parts, shelf_photos: ShelfPhotos) -> None:
    runner = parts.skills.runners["aisle3"]
    skill = {
        "id": "review",
        "blocks": [
            {"id": "det", "type": "detect", "project": "shelf-gaps", "min_score": 0.3},
            {"id": "unsure", "type": "collect", "input": "det", "seconds": 60, "reason": "a gap to check"},
        ],
    }
    runner.replace(SKILLS_ADAPTER.validate_python([skill]))
    for _ in range(3):  # rate-limited: one frame per 60 s
        runner.run(cv2.imread(str(shelf_photos.gap[0])), [WHOLE])
    assert parts.inbox is not None and parts.inbox.stats["kept"] == 1
    images, total = parts.store.list_images()  # the active version's project (none active here: the default)
    assert total == 1 and images[0].filename.startswith("inbox-aisle3-")
