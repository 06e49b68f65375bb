"""Issue 11 bugs and the live view, with real captures and a real tiny detector: a camera without zones is one
whole-frame zone, live() shows what the model sees, event snapshots are annotated, a folder camera runs at its fps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.cameras.capture import CameraCapture
from edge.config.model import CameraConfig, EventsConfig, ZoneConfig
from edge.events import Snapshot
from edge.pipeline.camera_pipeline import WHOLE_FRAME_ZONE_ID, CameraPipeline, annotate_snapshot
from edge.pipeline.model_slot import ModelSlot
from tests.helpers.tiny_bundle import TinyBundle, make_detection_bundle
from tests.pipeline.test_camera_pipeline import RecordingSink, camera, real_loader, wait

EVENTS = EventsConfig(on_threshold=0.6, off_threshold=0.4, min_frames=2)


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    out = tmp_path_factory.mktemp("live-bundle")
    return make_detection_bundle(out, version="det-live", key_dir=out / "keys", openvino=False)


class SnapshotSink(RecordingSink):
    """Keeps the images events come with, too."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[Any] = []

    def zone_event(self, camera: str, zone: str, transition: Any, image: Any, model: Any) -> None:
        super().zone_event(camera, zone, transition, image, model)
        self.images.append(image)


def test_a_camera_without_zones_is_one_whole_frame_zone_with_state_and_events(
    tmp_path: Path, detector: TinyBundle
) -> None:
    slot = ModelSlot(real_loader)
    slot.load(detector.bundle_dir)
    cap = camera(tmp_path, "cam")  # left half black: the detector's left box reports "empty" ~1
    sink = SnapshotSink()
    pipeline = CameraPipeline("cam", cap, slot, lambda: [], EVENTS, sink, fps=20)
    cap.start()
    pipeline.start()
    try:
        assert wait(lambda: any(e[1] == WHOLE_FRAME_ZONE_ID for e in sink.events))
        assert [z.id for z in pipeline.zone_configs()] == [WHOLE_FRAME_ZONE_ID]
        assert ("cam", WHOLE_FRAME_ZONE_ID, "low_stock", "det-live") in sink.states
        camera_id, zone, transition = sink.events[0]
        assert (camera_id, zone, transition.phase) == ("cam", WHOLE_FRAME_ZONE_ID, "start")
        live = pipeline.live()
        assert live["model"]["version"] == "det-live"
        assert [z["id"] for z in live["zones"]] == [WHOLE_FRAME_ZONE_ID]
        assert live["zones"][0]["whole_frame"] is True and live["zones"][0]["state"] == "low_stock"
        assert live["detections"], "the detector's boxes are part of the live view"
        assert all(len(d["bbox"]) == 4 and 0 <= d["score"] <= 1 for d in live["detections"])
        assert live["inference_ms"] > 0
        # The event's image carries the zone outline (red for low stock) and the box: not the plain frame. It comes
        # as the capture's read-only frame and how to draw on it: the event writer's thread draws and encodes it.
        snapshot = sink.images[0]
        assert isinstance(snapshot, Snapshot) and not snapshot.frame.flags.writeable
        image = snapshot.image()
        assert image.shape == (48, 64, 3)
        plain = cap.latest().image
        assert not np.array_equal(image, plain)
        assert tuple(image[0, 32]) == (38, 38, 220), "the whole-frame zone's top edge is drawn in low-stock red"
    finally:
        pipeline.stop()
        cap.stop()


def test_live_changes_are_waited_for_not_polled(tmp_path: Path, detector: TinyBundle) -> None:
    slot = ModelSlot(real_loader)
    slot.load(detector.bundle_dir)
    cap = camera(tmp_path, "cam")
    zones = [
        ZoneConfig(id="left", name="Left shelf", polygon=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)], label=None),
        # A zone's own alert label wins over the model's: here a bright (stocked) right half raises the alert.
        ZoneConfig(id="right", name="Right", polygon=[(0.5, 0), (1, 0), (1, 1), (0.5, 1)], label="stocked"),
    ]
    pipeline = CameraPipeline("cam", cap, slot, lambda: zones, EVENTS, RecordingSink(), fps=20)
    seq = pipeline.live_seq()
    assert pipeline.wait_live(seq, timeout=0.05) is None  # nothing runs yet: no change
    cap.start()
    pipeline.start()
    try:
        changed = pipeline.wait_live(seq, timeout=15)
        assert changed is not None and changed > seq
        assert wait(lambda: pipeline.live()["zones"][0]["state"] == "low_stock")
        zone = pipeline.live()["zones"][0]
        assert (zone["id"], zone["name"], zone["whole_frame"]) == ("left", "Left shelf", False)
        assert zone["polygon"] == [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]
        assert zone["label"] == "empty" and zone["bbox"] is not None
        assert wait(lambda: pipeline.live()["zones"][1]["state"] == "low_stock")
        assert pipeline.live()["zones"][1]["label"] == "stocked"
    finally:
        pipeline.stop()
        cap.stop()
    cap.stop()
    assert wait(lambda: pipeline.live()["online"] is False or not cap.running)


def test_annotate_snapshot_draws_the_zone_and_the_box_without_touching_the_frame() -> None:
    frame = np.zeros((100, 200, 3), dtype=np.uint8)
    out = annotate_snapshot(frame, [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)], "ok", (0.3, 0.3, 0.6, 0.6))
    assert frame.sum() == 0
    assert tuple(out[10, 100]) == (94, 197, 34)  # the zone's top edge, green for ok
    assert tuple(out[int(0.3 * 99), int(0.45 * 199)]) == (36, 191, 251)  # the box's top edge
    assert tuple(out[50, 100]) == (0, 0, 0)  # inside stays the picture


def test_a_folder_camera_delivers_at_its_configured_fps(tmp_path: Path) -> None:
    folder = tmp_path / "shelf"
    folder.mkdir()
    for n in range(3):
        cv2.imwrite(str(folder / f"{n}.png"), np.full((24, 32, 3), 40 * n, dtype=np.uint8))
    cap = CameraCapture(CameraConfig(id="shelf", source=str(folder), fps=1))
    cap.start()
    try:
        assert wait(lambda: cap.latest() is not None)
        # The folder is paced at the camera's fps: 1 (not the folder default of 5 frames/s).
        assert cap._source is not None and cap._source.frame_interval == pytest.approx(1.0)
    finally:
        cap.stop()
