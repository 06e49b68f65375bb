"""The inbox: frames kept where the model is unsure or a zone flips, rate-limited, never a near-copy of a dataset
image, each with its reason; a library view (?inbox=true) and "N reviewed since v1"."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from edge.assist.inbox import InboxConfig, InboxSink, InboxWriter
from edge.comms.base import NullCommunicator
from edge.events import EventLog, SnapshotStore
from edge.pipeline.metrics import MetricsRegistry
from edge.pipeline.reporter import Reporter
from edge.pipeline.zone_scoring import ZoneScore
from edge.pipeline.zone_state import ZoneState
from tests.assist.conftest import RED, Rig, colour_jpeg


def frame(seed: int) -> np.ndarray:
    data = colour_jpeg(RED, seed, width=160, height=120)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limits_near_copies_and_reasons(rig: Rig) -> None:
    clock = Clock()
    writer = InboxWriter(rig.store, InboxConfig(per_hour=3, per_day=10, min_interval_s=60), clock=clock)
    assert writer.keep(frame(1), "unsure: test", "cam") is not None
    assert writer.keep(frame(2), "unsure: test", "cam") is None  # within min_interval_s
    assert writer.stats["interval"] == 1
    kept = []
    for seed in range(3, 9):
        clock.now += 120
        kept.append(writer.keep(frame(seed), f"unsure: seed {seed}", "cam"))
    assert sum(1 for k in kept if k is not None) == 2  # 3 per hour in all
    assert writer.stats["hour"] == 4
    # another camera has its own budget; a near-copy of a dataset image is never kept
    dataset_frame = frame(50)
    _, buf = cv2.imencode(".png", dataset_frame)
    rig.store.add_image(buf.tobytes(), filename="dataset.png")
    assert writer.keep(dataset_frame, "unsure", "cam-2") is None
    assert writer.stats["near_copy"] == 1
    assert writer.put(frame(60), camera="cam-2", skill="two-models", block="collect", reason="models disagree")

    listing = rig.admin.get("/api/v1/images?inbox=true").get_json()
    assert listing["total"] == 4
    reasons = sorted(item["inbox_reason"] for item in listing["items"])
    assert reasons[-1] == "unsure: test" and "skill two-models/collect: models disagree" in reasons
    assert all(item["camera"] in ("cam", "cam-2") for item in listing["items"])
    assert rig.admin.get("/api/v1/images?inbox=false").get_json()["total"] == 1


def test_reviewed_since_the_active_version(rig: Rig, bundles: Any) -> None:
    for name in ("red", "green"):
        rig.admin.post("/api/v1/labels", json={"name": name})
    rig.models.install(bundles.plain, activate=True, project=1)
    writer = InboxWriter(rig.store, InboxConfig(min_interval_s=0))
    ids = [writer.keep(frame(70 + i), "unsure", "cam") for i in range(3)]
    assert all(ids)
    body = rig.admin.get("/api/v1/inbox").get_json()
    assert body["total"] == 3 and body["waiting"] == 3 and body["reviewed_since"] == 0
    rig.admin.put(f"/api/v1/images/{ids[0]}/annotations", json={"tags": ["red"], "boxes": []})
    rig.admin.put(f"/api/v1/images/{ids[1]}/annotations", json={"tags": ["red"], "boxes": []})
    body = rig.admin.get("/api/v1/inbox").get_json()
    assert body["message"] == "2 reviewed since v1" and body["retrain"] is True and body["waiting"] == 1


def test_the_pipeline_sink_keeps_unsure_and_flipping_frames(rig: Rig, tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.db", "dev")
    reporter = Reporter(NullCommunicator(), events, SnapshotStore(tmp_path / "snaps", 10), MetricsRegistry())
    clock = Clock()
    writer = InboxWriter(rig.store, InboxConfig(min_interval_s=0, flips=3, flip_window_s=600), clock=clock)
    sink = InboxSink(reporter, writer, threshold=0.5)
    # confident frames are not kept, an unsure one is
    sink.frame_done("cam", SimpleNamespace(image=frame(80)), [("z1", ZoneScore(0.95, "empty"))])
    sink.frame_done("cam", SimpleNamespace(image=frame(81)), [("z1", ZoneScore(0.55, "empty"))])
    # a zone changing state three times within the window
    state = ZoneState(0.6, 0.4, 1)
    for i, name in enumerate(("ok", "low_stock", "ok", "low_stock")):
        clock.now += 30
        state.state = name  # type: ignore[assignment]
        sink.zone_state("cam", "z2", state, None)
        sink.frame_done("cam", SimpleNamespace(image=frame(90 + i)), [("z2", ZoneScore(0.1 if i % 2 else 0.9, None))])
    reasons = [i["inbox_reason"] for i in rig.admin.get("/api/v1/images?inbox=true").get_json()["items"]]
    assert len(reasons) == 2
    assert any(r.startswith("unsure: zone z1 scored 0.55") for r in reasons)
    assert any(r.startswith("flipping: zone z2 changed state 3 times") for r in reasons)
    events.close()


def test_a_camera_refused_as_a_near_copy_is_offered_again_after_the_retry_wait(rig: Rig) -> None:
    """A camera looking at the shelf of its project's photos: its unsure frames are near-copies. The sink offers
    one every RETRY_S, not every frame (each offer encodes, decodes and hashes the frame and queries the store on
    the pipeline's thread); other cameras and a frame that is no near-copy are kept as before."""
    from edge.assist.inbox import RETRY_S

    dataset_frame = frame(300)
    _, buf = cv2.imencode(".jpg", dataset_frame, [cv2.IMWRITE_JPEG_QUALITY, 90])  # captured from this camera
    rig.store.add_image(buf.tobytes(), filename="dataset.jpg")
    clock = Clock()
    writer = InboxWriter(rig.store, InboxConfig(min_interval_s=RETRY_S), clock=clock)
    sink = InboxSink(SimpleNamespace(frame_done=lambda *a: None), writer, threshold=0.5)
    unsure = [("z1", ZoneScore(0.52, "empty"))]
    for _ in range(20):  # 20 unsure near-copies within a second: one offer
        clock.now += 0.05
        sink.frame_done("cam", SimpleNamespace(image=dataset_frame), unsure)
    assert writer.stats["near_copy"] == 1 and writer.stats["kept"] == 0 and writer.stats["retry_wait"] == 19
    clock.now += RETRY_S  # the wait is over: offered again, still a near-copy
    sink.frame_done("cam", SimpleNamespace(image=dataset_frame), unsure)
    assert writer.stats["near_copy"] == 2
    # another camera is not held by this one's wait; this camera keeps a changed view once the wait is over
    assert writer.keep(frame(301), "unsure", "cam-2") is not None
    sink.frame_done("cam", SimpleNamespace(image=frame(302)), unsure)
    assert writer.stats["kept"] == 1
    clock.now += RETRY_S
    sink.frame_done("cam", SimpleNamespace(image=frame(302)), unsure)
    assert writer.stats["kept"] == 2 and writer.stats["near_copy"] == 2
    # the wait is never longer than the one between two kept frames: with min_interval_s 0 every frame is offered
    eager = InboxWriter(rig.store, InboxConfig(min_interval_s=0), clock=clock)
    eager_sink = InboxSink(SimpleNamespace(frame_done=lambda *a: None), eager, threshold=0.5)
    for _ in range(3):
        eager_sink.frame_done("cam-3", SimpleNamespace(image=dataset_frame), unsure)
    assert eager.stats["near_copy"] == 3 and eager.stats["retry_wait"] == 0
    reasons = [i["inbox_reason"] for i in rig.admin.get("/api/v1/images?inbox=true").get_json()["items"]]
    assert len(reasons) == 2 and any(r.startswith("unsure: zone z1 scored 0.52") for r in reasons)


def test_limits_and_dedup_distance_are_edge_yaml_settings(rig: Rig) -> None:
    from edge.config import EdgeConfig, parse_yaml_config
    from edge.errors import ConfigError
    from edge.store.image_rows import hamming
    from edge.store.images import validate_image

    text = "inbox:\n  per_hour: 2\n  per_day: 5\n  min_interval_s: 0\n  margin: 0.2\n  dedup_distance: {d}\n"
    defaults = EdgeConfig().inbox
    assert (defaults.per_hour, defaults.per_day, defaults.margin, defaults.dedup_distance) == (20, 100, 0.1, None)
    for bad in ("inbox:\n  per_hour: 5\n  per_day: 2\n", "inbox:\n  margin: 1.5\n", "inbox:\n  per_hours: 3\n"):
        with pytest.raises(ConfigError):
            parse_yaml_config(bad, EdgeConfig)

    # a frame at Hamming distance d of a dataset image: a near-copy at dedup_distance d, kept at d - 1
    base = frame(50)
    _, buf = cv2.imencode(".png", base)
    rig.store.add_image(buf.tobytes(), filename="dataset.png")
    changed = base.copy()
    changed[:, :40] = 255 - changed[:, :40]
    ok, jpg = cv2.imencode(".jpg", changed, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    facts = [validate_image(b, "x", max_image_mb=20, max_pixels=10**7) for b in (jpg.tobytes(), buf.tobytes())]
    d = hamming(facts[0].phash, facts[1].phash)
    assert 1 <= d <= 64
    strict = parse_yaml_config(text.format(d=d), EdgeConfig).inbox
    assert strict.per_hour == 2 and strict.margin == 0.2
    assert InboxWriter(rig.store, strict).keep(changed, "unsure", "cam") is None
    loose = InboxWriter(rig.store, parse_yaml_config(text.format(d=d - 1), EdgeConfig).inbox)
    assert loose.dedup_distance == d - 1
    assert loose.keep(changed, "unsure", "cam") is not None
    # per_hour from the file: two frames of one camera in an hour, the third is refused
    assert loose.keep(frame(201), "unsure", "cam") is not None
    assert loose.keep(frame(202), "unsure", "cam") is None and loose.stats["hour"] == 1
    # margin from the file reaches the pipeline sink: 0.68 is within 0.2 of 0.5 (the default 0.1 would skip it)
    writer = InboxWriter(rig.store, strict.model_copy(update={"dedup_distance": 0}))
    sink = InboxSink(SimpleNamespace(frame_done=lambda *a: None), writer, threshold=0.5)
    sink.frame_done("cam-3", SimpleNamespace(image=frame(203)), [("z1", ZoneScore(0.68, "empty"))])
    reasons = [i["inbox_reason"] for i in rig.admin.get("/api/v1/images?inbox=true").get_json()["items"]]
    assert any("scored 0.68, within 0.2 of the threshold 0.5" in r for r in reasons)
