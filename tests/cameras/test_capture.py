"""Capture threads with real sources: latest-frame slot, reconnect with backoff, stalls, listeners, the hub."""

from __future__ import annotations

import gc
import itertools
import logging
import random
import shutil
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cameras.capture import Backoff, CameraCapture, CameraHub, CameraStatus, Frame
from edge.cameras.sources import FrameSource, open_source
from edge.config.model import CameraConfig
from edge.errors import CameraError, NotFoundError
from tests.cameras.helpers import write_image

SMALL_SYNTHETIC = "synthetic:?width=96&height=64&rows=2&period=5"


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll until predicate() holds; a deadline for an event, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def camera(source: str | int = SMALL_SYNTHETIC, **kw) -> CameraConfig:
    return CameraConfig.model_validate({"id": kw.pop("id", "cam"), "source": source, **kw})


class RecordingSource:
    """Wraps a real source and keeps weak references to every image it produced."""

    def __init__(self, inner: FrameSource, produced: list[weakref.ref]) -> None:
        self.inner = inner
        self.description = inner.description
        self.produced = produced

    def open(self) -> None:
        self.inner.open()

    def read(self) -> np.ndarray:
        image = self.inner.read()
        self.produced.append(weakref.ref(image))
        return image

    def close(self) -> None:
        self.inner.close()


def test_slow_consumer_sees_seq_jump_and_only_the_latest_frame_is_held() -> None:
    produced: list[weakref.ref] = []
    cap = CameraCapture(
        camera("synthetic:?width=96&height=64&rows=2&fps=100"),
        lambda s: RecordingSource(open_source(s), produced),
    )
    cap.start()
    try:
        first = cap.wait_frame(0, timeout=10)
        assert first is not None and first.seq >= 1
        seen = [first.seq]
        for _ in range(3):
            time.sleep(0.15)  # a slow consumer
            frame = cap.wait_frame(seen[-1], timeout=10)
            assert frame is not None
            seen.append(frame.seq)
        assert all(b > a for a, b in itertools.pairwise(seen))
        assert any(b - a > 1 for a, b in itertools.pairwise(seen)), f"seq should jump: {seen}"
        status = cap.status()
        assert status.dropped > 0
        assert status.frames >= seen[-1]
        gc.collect()
        alive = [r for r in produced if r() is not None]
        # The slot holds one frame; the capture thread may hold the one it is about to publish.
        assert len(produced) > 10 and len(alive) <= 3, (len(produced), len(alive))
    finally:
        cap.stop()


def test_frames_are_read_only_and_jpeg_is_cached() -> None:
    cap = CameraCapture(camera())
    cap.start()
    try:
        frame = cap.wait_frame(0, timeout=10)
        assert frame is not None
        with pytest.raises(ValueError):
            frame.image[0, 0] = 0
        data = frame.jpeg()
        assert data is frame.jpeg(), "the second call returns the cached bytes"
        assert frame.jpeg(quality=50) is not data
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None
        assert decoded.shape == (64, 96, 3) and (frame.width, frame.height) == (96, 64)
        assert frame.camera_id == "cam" and frame.ts > 1e9
    finally:
        cap.stop()
    assert cap.status().state == "stopped"


def test_wait_frame_times_out_with_none_and_latest_before_start_is_none(tmp_path: Path) -> None:
    cap = CameraCapture(camera(str(tmp_path / "nothing-here")))
    assert cap.latest() is None
    assert cap.status().state == "stopped"
    cap.start()
    try:
        assert cap.wait_frame(0, timeout=0.2) is None
    finally:
        cap.stop()


def test_folder_that_disappears_and_returns_goes_offline_then_online(tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    write_image(folder / "a.png", 90)
    events: list[CameraStatus] = []
    cap = CameraCapture(camera(str(folder), reconnect_max_seconds=0.2), lambda s: open_source(s, rate=50))
    cap.add_status_listener(events.append)
    cap.start()
    try:
        assert wait_until(lambda: cap.status().state == "online")
        shutil.move(folder, tmp_path / "away")
        assert wait_until(lambda: cap.status().state == "offline")
        assert wait_until(lambda: cap.status().reconnects >= 3), "keeps retrying while the folder is gone"
        assert "no such" in (cap.status().last_error or "")
        shutil.move(tmp_path / "away", folder)
        assert wait_until(lambda: cap.status().state == "online")
        seq = cap.status().frames
        assert cap.wait_frame(seq, timeout=5) is not None, "frames flow again"
    finally:
        cap.stop()
    states = [e.state for e in events]
    assert states[:3] == ["starting", "online", "offline"]
    assert "online" in states[3:] and states[-1] == "stopped"


class FlakySource:
    """A real synthetic source behind a switch: open() and read() fail while `broken` is set."""

    def __init__(self, broken: threading.Event, opens: list[float]) -> None:
        self.inner = open_source("synthetic:?width=64&height=48&rows=1&fps=50")
        self.description = "flaky"
        self.broken = broken
        self.opens = opens

    def open(self) -> None:
        self.opens.append(time.monotonic())
        if self.broken.is_set():
            raise CameraError("camera unplugged")
        self.inner.open()

    def read(self) -> np.ndarray:
        if self.broken.is_set():
            raise CameraError("read failed")
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


def test_reconnect_counts_and_backoff_is_capped(caplog) -> None:
    caplog.set_level(logging.INFO, logger="edge.cameras.capture")
    broken = threading.Event()
    broken.set()
    opens: list[float] = []
    cap = CameraCapture(
        camera("flaky", reconnect_max_seconds=0.3), lambda _s: FlakySource(broken, opens), initial_backoff=0.05
    )
    cap.start()
    try:
        assert wait_until(lambda: cap.status().state == "offline")
        assert wait_until(lambda: len(opens) >= 7, timeout=15)
        status = cap.status()
        assert status.reconnects >= 6 and status.last_error == "camera unplugged" and status.frames == 0
        delays = [r.args[1] for r in caplog.records if r.getMessage().startswith("camera cam: reconnecting in")]
        assert len(delays) >= 6
        assert delays[0] <= 0.05 and max(delays) <= 0.3, delays
        assert max(delays) > 0.15, "the delay grew from 0.05 towards the cap"
        broken.clear()
        assert wait_until(lambda: cap.status().state == "online", timeout=10)
        broken.set()  # fails mid-stream: read raises
        assert wait_until(lambda: cap.status().state == "offline")
        assert cap.status().last_error == "read failed"
        broken.clear()
        assert wait_until(lambda: cap.status().state == "online", timeout=10)
    finally:
        cap.stop()


def test_backoff_doubles_to_the_cap_with_jitter_below_it_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.25, rng=random.Random(1))
    delays = [backoff.next() for _ in range(8)]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, base in zip(delays, bases, strict=True):
        assert 0.75 * base <= delay <= base
    backoff.reset()
    assert backoff.next() <= 0.5


class HangingSource:
    """Delivers a few frames, then blocks in read() like a hung driver until released."""

    def __init__(self, release: threading.Event, frames_before_hang: int) -> None:
        self.inner = open_source("synthetic:?width=64&height=48&rows=1&fps=50")
        self.description = "hanging"
        self.release = release
        self.left = frames_before_hang
        self.closed = False

    def open(self) -> None:
        self.inner.open()

    def read(self) -> np.ndarray:
        if self.left <= 0:
            self.release.wait(30)
        self.left -= 1
        return self.inner.read()

    def close(self) -> None:
        self.closed = True


def test_stalled_source_is_abandoned_and_a_fresh_one_reconnects() -> None:
    release = threading.Event()
    made: list[HangingSource] = []

    def factory(_s: str | int) -> HangingSource:
        # The first source hangs after 3 frames; later ones keep working.
        src = HangingSource(release, 3 if not made else 10**9)
        made.append(src)
        return src

    states: list[str] = []
    cap = CameraCapture(camera("hang", reconnect_max_seconds=0.2), factory, stall_seconds=0.4)
    cap.add_status_listener(lambda st: states.append(st.state))
    cap.start()
    try:
        assert wait_until(lambda: len(made) >= 2, timeout=15), "a stall starts a new source"
        assert wait_until(lambda: cap.status().state == "online" and cap.status().frames > 5)
        assert "stalled" in (cap.status().last_error or "")
        assert cap.status().reconnects >= 1
        assert states[:3] == ["starting", "online", "offline"]
        before = cap.status().frames
        release.set()  # the abandoned read returns: its frame must not be published, its source gets closed
        assert wait_until(lambda: made[0].closed)
        assert cap.wait_frame(before, timeout=5) is not None
    finally:
        release.set()
        cap.stop()


def test_stop_interrupts_a_long_backoff(tmp_path: Path) -> None:
    cap = CameraCapture(camera(str(tmp_path / "missing"), reconnect_max_seconds=120), initial_backoff=60)
    cap.start()
    assert wait_until(lambda: cap.status().state == "offline")
    cap.stop(timeout=5)
    assert not any(t.is_alive() for t in cap._threads), "the thread ended instead of sleeping out the backoff"
    assert cap.status().state == "stopped"


def test_stop_interrupts_a_slow_pacing_wait(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", 10)
    cap = CameraCapture(camera(str(tmp_path)), lambda s: open_source(s, rate=0.02))  # one frame per 50 s
    cap.start()
    assert cap.wait_frame(0, timeout=10) is not None
    cap.stop(timeout=5)
    assert not any(t.is_alive() for t in cap._threads)


def test_listener_exceptions_are_logged_not_raised(caplog) -> None:
    good: list[str] = []

    def bad(_st: CameraStatus) -> None:
        raise RuntimeError("listener bug")

    cap = CameraCapture(camera())
    cap.add_status_listener(bad)
    cap.add_status_listener(lambda st: good.append(st.state))
    cap.start()
    try:
        assert wait_until(lambda: cap.status().state == "online")
        assert cap.wait_frame(1, timeout=5) is not None, "capture goes on"
    finally:
        cap.stop()
    assert good[:2] == ["starting", "online"] and good[-1] == "stopped"
    assert any("listener" in r.getMessage() and r.exc_info for r in caplog.records)


def test_bad_images_from_a_source_are_failures_not_crashes() -> None:
    class GreySource:
        description = "grey"

        def open(self) -> None:
            pass

        def read(self) -> np.ndarray:
            return np.zeros((8, 8), dtype=np.uint8)  # one channel: not BGR

        def close(self) -> None:
            pass

    cap = CameraCapture(camera("grey", reconnect_max_seconds=0.1), lambda _s: GreySource())
    cap.start()
    try:
        assert wait_until(lambda: cap.status().state == "offline")
        assert "not a BGR uint8 image" in (cap.status().last_error or "")
        assert cap.latest() is None
    finally:
        cap.stop()


def test_status_reports_fps_size_and_serialises() -> None:
    cap = CameraCapture(camera("synthetic:?width=96&height=64&rows=2&fps=20"))
    cap.start()
    try:
        assert wait_until(lambda: cap.status().frames >= 6)
        st = cap.status()
        d = st.as_dict()
    finally:
        cap.stop()
    assert st.state == "online" and st.online and (st.width, st.height) == (96, 64)
    assert 1.0 < st.fps < 200.0
    assert d["id"] == "cam" and d["state"] == "online" and d["source"].startswith("synthetic:")
    assert set(d) >= {"fps", "frames", "dropped", "reconnects", "last_error", "last_frame_at", "width", "height"}


def test_hub_failing_camera_does_not_affect_others_and_disabled_stay_stopped(tmp_path: Path) -> None:
    cams = [
        camera(str(tmp_path / "gone.mp4"), id="broken", reconnect_max_seconds=0.1),
        camera(SMALL_SYNTHETIC, id="good"),
        camera(SMALL_SYNTHETIC, id="off", enabled=False),
    ]
    hub = CameraHub(cams)
    with hub:
        good = hub.require("good")
        assert good.wait_frame(0, timeout=10) is not None
        assert wait_until(lambda: hub.require("broken").status().state == "offline")
        assert wait_until(lambda: hub.require("broken").status().reconnects >= 2)
        last = good.status().frames
        assert good.wait_frame(last, timeout=5) is not None, "the good camera keeps delivering"
        states = {s.id: s.state for s in hub.statuses()}
        assert states == {"broken": "offline", "good": "online", "off": "stopped"}
        assert "no such file" in (hub.require("broken").status().last_error or "")
        assert hub.get("nope") is None and "good" in hub and hub.ids() == ["broken", "good", "off"]
        with pytest.raises(NotFoundError, match="no camera 'nope'"):
            hub.require("nope")
    assert all(s.state == "stopped" for s in hub.statuses())


def test_frame_is_an_immutable_record() -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    frame = Frame(img, 1, 0.0, 0.0)
    with pytest.raises(AttributeError):
        frame.seq = 2  # type: ignore[misc]


def test_a_slow_paced_source_is_not_mistaken_for_a_stall(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", 10)
    # 0.3 s between frames, well past stall_seconds: the watchdog must allow for the pacing.
    cap = CameraCapture(camera(str(tmp_path)), lambda s: open_source(s, rate=1 / 0.3), stall_seconds=0.1)
    cap.start()
    try:
        assert cap.wait_frame(2, timeout=10) is not None
        st = cap.status()
        assert st.last_error is None and st.reconnects == 0 and st.state == "online"
    finally:
        cap.stop()
