"""CameraPipeline with real captures and real tiny models: watchdog recovery, isolation, hot swap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.cameras.capture import CameraCapture
from edge.config.model import CameraConfig, EventsConfig, ZoneConfig
from edge.pipeline.camera_pipeline import CameraPipeline, Watchdog
from edge.pipeline.metrics import MetricsRegistry
from edge.pipeline.model_slot import ActiveModel, ModelSlot
from edge.pipeline.zone_scoring import ZoneScore
from edge.pipeline.zone_state import Transition, ZoneState
from edge.runtime.wrappers import load_model
from tests.helpers.tiny_bundle import TinyBundle, make_detection_bundle
from tests.helpers.waiting import wait_until

ZONES = [ZoneConfig(id="left", polygon=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)])]
EVENTS = EventsConfig(on_threshold=0.6, off_threshold=0.4, min_frames=2)


def wait(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    return wait_until(cond, timeout, interval=0.02)


class RecordingSink:
    """A PipelineSink that keeps what it is told."""

    def __init__(self) -> None:
        self.states: list[tuple[str, str, str, str | None]] = []
        self.events: list[tuple[str, str, Transition]] = []
        self.status: list[tuple[str, bool]] = []

    def camera_status(self, camera: str, online: bool) -> None:
        self.status.append((camera, online))

    def zone_state(self, camera: str, zone: str, state: ZoneState, model: ActiveModel | None) -> None:
        self.states.append((camera, zone, state.state, model.version if model else None))

    def zone_event(self, camera: str, zone: str, transition: Transition, image: Any, model: Any) -> None:
        self.events.append((camera, zone, transition))

    def frame_done(self, camera: str, frame: Any, scores: Sequence[tuple[str, ZoneScore]]) -> None:
        pass


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyBundle]:
    out = tmp_path_factory.mktemp("bundles")
    keys = out / "keys"
    return {v: make_detection_bundle(out, version=v, key_dir=keys, openvino=False) for v in ("det-a", "det-b")}


def camera(tmp_path: Path, name: str, size: tuple[int, int] = (64, 48), rate_fps: float = 10.0) -> CameraCapture:
    folder = tmp_path / name
    folder.mkdir()
    image = np.full((size[1], size[0], 3), 230, dtype=np.uint8)
    image[:, : size[0] // 2] = 0  # left half empty
    cv2.imwrite(str(folder / "a.png"), image)
    cv2.imwrite(str(folder / "b.png"), image)
    cfg = CameraConfig(id=name, source=str(folder), fps=rate_fps, reconnect_max_seconds=1.0)
    from edge.cameras.sources import open_source

    return CameraCapture(cfg, lambda src: open_source(src, rate=rate_fps))


def real_loader(path: Path) -> Any:
    return load_model(path, "onnxruntime", 1)


@contextmanager
def running_pipeline(
    tmp_path: Path, slot: ModelSlot, sink: Any, *, watchdog_seconds: float | None = None
) -> Iterator[tuple[CameraPipeline, MetricsRegistry]]:
    """Camera 'cam' (left half empty) evaluated at 20 fps over ZONES into `sink`, with a Watchdog when
    watchdog_seconds is given; everything started for the with block and stopped after it, in reverse."""
    cap = camera(tmp_path, "cam")
    metrics = MetricsRegistry()
    pipeline = CameraPipeline("cam", cap, slot, lambda: ZONES, EVENTS, sink, metrics, fps=20)
    watchdog = None if watchdog_seconds is None else Watchdog([pipeline], limit_seconds=watchdog_seconds, interval=0.05)
    cap.start()
    pipeline.start()
    if watchdog is not None:
        watchdog.start()
    try:
        yield pipeline, metrics
    finally:
        if watchdog is not None:
            watchdog.stop()
        pipeline.stop()
        cap.stop()


class HangOnce:
    """A real model whose first call blocks like a stuck engine until `release` is set."""

    def __init__(self, model: Any, release: threading.Event) -> None:
        self.model = model
        self.release = release
        self.engine = model.engine
        self.calls = 0

    def predict(self, image: np.ndarray) -> Any:
        self.calls += 1
        if self.calls == 1:
            self.release.wait(30)
        return self.model.predict(image)


def test_watchdog_reports_a_hung_call_and_recovers(tmp_path: Path, bundles: dict[str, TinyBundle]) -> None:
    release = threading.Event()
    loads: list[Any] = []

    def loader(path: Path) -> Any:
        model = real_loader(path)
        wrapped = HangOnce(model, release) if not loads else model
        loads.append(wrapped)
        return wrapped

    slot = ModelSlot(loader)
    slot.load(bundles["det-a"].bundle_dir)
    sink = RecordingSink()
    with running_pipeline(tmp_path, slot, sink, watchdog_seconds=0.5) as (pipeline, metrics):
        try:
            assert wait(lambda: pipeline.stats.watchdog_trips == 1)
            assert wait(lambda: pipeline.stats.evaluated >= 3)  # a fresh worker on a recreated engine
            assert len(loads) == 2 and pipeline.status == "running" and pipeline.healthy
            assert sink.events and sink.events[0][2].phase == "start"
            release.set()  # the stuck call returns: its worker must bow out, not double-process
            time.sleep(0.3)
            workers = [t for t in threading.enumerate() if t.name.startswith("pipeline-cam-") and t.is_alive()]
            assert len(workers) == 1
            assert pipeline.stats.watchdog_trips == 1
            assert 'shelfwatch_watchdog_trips_total{camera="cam"} 1' in metrics.render()
        finally:
            release.set()


class SlowFor:
    """A real model that takes `seconds` longer on images of one width (one camera's)."""

    def __init__(self, model: Any, width: int, seconds: float) -> None:
        self.model, self.width, self.seconds = model, width, seconds
        self.engine = model.engine

    def predict(self, image: np.ndarray) -> Any:
        if image.shape[1] == self.width:
            time.sleep(self.seconds)
        return self.model.predict(image)


def test_a_slow_camera_does_not_stall_another(tmp_path: Path, bundles: dict[str, TinyBundle]) -> None:
    slot = ModelSlot(lambda p: SlowFor(real_loader(p), width=80, seconds=2.0))
    slot.load(bundles["det-a"].bundle_dir)
    slow_cap, fast_cap = camera(tmp_path, "slow", size=(80, 60)), camera(tmp_path, "fast")
    sinks = RecordingSink(), RecordingSink()
    pipes = [
        CameraPipeline(cap.id, cap, slot, lambda: ZONES, EVENTS, sink, fps=10)
        for cap, sink in zip((slow_cap, fast_cap), sinks, strict=True)
    ]
    for cap in (slow_cap, fast_cap):
        cap.start()
    for p in pipes:
        p.start()
    try:
        assert wait(lambda: pipes[1].stats.evaluated >= 10)
        assert pipes[0].stats.evaluated * 2 <= pipes[1].stats.evaluated  # the slow one did not hold it back
    finally:
        for p in pipes:
            p.stop()
        for cap in (slow_cap, fast_cap):
            cap.stop()


def test_hot_swap_loads_in_background_and_drops_no_frame(tmp_path: Path, bundles: dict[str, TinyBundle]) -> None:
    loading = threading.Event()

    def slow_loader(path: Path) -> Any:
        if path.name == "det-b":
            loading.set()
            time.sleep(2.0)  # a big model takes a while to compile
        return real_loader(path)

    slot = ModelSlot(slow_loader)
    slot.load(bundles["det-a"].bundle_dir)
    cap = camera(tmp_path, "cam", rate_fps=4)
    sink = RecordingSink()
    # The pipeline polls 5x faster than the camera delivers, so a frame is only skipped if evaluation stalls.
    pipeline = CameraPipeline("cam", cap, slot, lambda: ZONES, EVENTS, sink, fps=20, state_refresh_seconds=0.1)
    cap.start()
    pipeline.start()
    try:
        assert wait(lambda: pipeline.stats.evaluated >= 3)
        worker = pipeline._thread
        loader_thread = slot.load_async(bundles["det-b"].bundle_dir)
        assert loading.wait(5)
        during = pipeline.stats.evaluated
        assert wait(lambda: pipeline.stats.evaluated >= during + 3, timeout=1.9)  # still serving while it loads
        loader_thread.join(10)
        assert slot.current is not None and slot.current.version == "det-b"
        assert wait(lambda: any(v == "det-b" for *_, v in sink.states))
        assert pipeline._thread is worker and pipeline.stats.skipped == 0
    finally:
        pipeline.stop()
        cap.stop()


def test_a_model_that_cannot_load_keeps_the_running_one(tmp_path: Path, bundles: dict[str, TinyBundle]) -> None:
    slot = ModelSlot(real_loader)
    slot.load(bundles["det-a"].bundle_dir)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}")
    with pytest.raises(Exception):
        slot.load(broken)
    assert slot.current is not None and slot.current.version == "det-a"
    assert slot.last_error is not None and "broken" in slot.last_error


class CountingCapture:
    """A real capture whose wait_frame calls are counted."""

    def __init__(self, capture: CameraCapture) -> None:
        self.capture = capture
        self.calls = 0

    @property
    def running(self) -> bool:
        return self.capture.running

    def wait_frame(self, after_seq: int, timeout: float) -> Any:
        self.calls += 1
        return self.capture.wait_frame(after_seq, timeout)


def test_a_pipeline_whose_camera_stopped_waits_instead_of_spinning(
    tmp_path: Path, bundles: dict[str, TinyBundle]
) -> None:
    slot = ModelSlot(real_loader)
    slot.load(bundles["det-a"].bundle_dir)
    cap = camera(tmp_path, "cam")
    source = CountingCapture(cap)
    # fps=None (as fast as frames come) is where a stopped capture, answering wait_frame at once, spun a CPU.
    pipeline = CameraPipeline("cam", source, slot, lambda: ZONES, EVENTS, RecordingSink(), fps=None)
    cap.start()
    pipeline.start()
    try:
        assert wait(lambda: pipeline.stats.evaluated >= 1)
        cap.stop()
        time.sleep(0.3)
        calls_before = source.calls
        time.sleep(1.0)
        # Polling every STOPPED_SOURCE_POLL_SECONDS makes ~2 calls a second; the spinning loop made ~10^6.
        assert source.calls - calls_before <= 10
        cap.start()  # the camera comes back: the same pipeline carries on
        evaluated = pipeline.stats.evaluated
        assert wait(lambda: pipeline.stats.evaluated > evaluated)
    finally:
        pipeline.stop()
        cap.stop()
