"""Capture threads: one per camera, each keeping only the newest frame, reconnecting on its own after failures.

Contract for consumers (the pipeline, the web page's snapshot and MJPEG stream):
- `CameraCapture.latest()` is the newest frame or None; `wait_frame(after_seq, timeout)` blocks until a frame newer
  than `after_seq` exists, so a loop that passes the last seq it saw gets each new frame at most once and skips the
  ones it was too slow for. Nothing queues: a slow consumer makes `seq` jump and `dropped` grow, never memory.
- Frames are immutable: `Frame.image` is a read-only array shared by every consumer (copy before drawing on it).
  `Frame.jpeg(quality)` encodes once per quality and caches, so many MJPEG clients cost one encode per frame.
- A failure (the source cannot be opened, a read raises, or no frame arrives for `stall_seconds`) sets the camera
  offline with `last_error` and retries after a capped exponential backoff (0.5 s doubling to
  `reconnect_max_seconds`, with jitter; reset by the next frame). A read stuck inside a driver cannot be killed, so
  after a stall the stuck thread is abandoned (it closes its source if it ever returns) and a fresh one reconnects.
  A source waiting for its turn to open (`sources.Queued`: FFmpeg opens go one at a time) is not stalled; its
  open's stall clock starts when its turn comes.
- Status listeners get a CameraStatus snapshot on every state change (starting, online, offline, stopped), from
  the capture or watchdog thread (from the caller's thread for `stopped`); exceptions in listeners are logged.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import cv2
import numpy as np

from edge.cameras.memory import tune_allocator
from edge.cameras.sources import (
    FrameSource,
    Interruptible,
    Paced,
    Queued,
    SourceSettings,
    describe_source,
    open_source,
)
from edge.config.model import CameraConfig
from edge.errors import CameraError, NotFoundError

log = logging.getLogger(__name__)

CameraState = Literal["starting", "online", "offline", "stopped"]
SourceFactory = Callable[[SourceSettings], FrameSource]  # a camera's `source` config -> its source
StatusListener = Callable[["CameraStatus"], None]

INITIAL_BACKOFF_SECONDS = 0.5
DEFAULT_STALL_SECONDS = 10.0
FPS_WINDOW_SECONDS = 5.0


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured picture: BGR uint8 image (read-only), per-camera sequence number, wall and monotonic time."""

    image: np.ndarray
    seq: int
    ts: float
    mono: float
    camera_id: str = ""
    _jpeg_cache: dict[int, bytes] = field(default_factory=dict, repr=False)
    _jpeg_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    def jpeg(self, quality: int = 80) -> bytes:
        """The frame as JPEG bytes, encoded once per quality and cached."""
        with self._jpeg_lock:
            cached = self._jpeg_cache.get(quality)
            if cached is None:
                ok, buf = cv2.imencode(".jpg", self.image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
                if not ok:
                    raise CameraError(f"camera {self.camera_id}: JPEG encoding of frame {self.seq} failed")
                cached = self._jpeg_cache[quality] = buf.tobytes()
            return cached


@dataclass
class CameraStatus:
    """A camera's health at one moment (a snapshot; changing it changes nothing)."""

    id: str
    state: CameraState = "stopped"
    source: str = ""
    fps: float = 0.0
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    last_error: str | None = None
    last_frame_at: float | None = None
    width: int | None = None
    height: int | None = None

    @property
    def online(self) -> bool:
        return self.state == "online"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (fps rounded to 0.01)."""
        out = asdict(self)
        out["fps"] = round(self.fps, 2)
        return out


class Backoff:
    """Capped exponential delays with downward jitter: initial, 2x, 4x ... up to maximum, never above it."""

    def __init__(
        self, initial: float = INITIAL_BACKOFF_SECONDS, maximum: float = 30.0, jitter: float = 0.25, rng: Any = None
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt; each call doubles the following one up to the cap."""
        base = min(self.maximum, self.initial * (2.0 ** min(self._attempt, 30)))
        self._attempt += 1
        # Jitter only shortens, so the cap holds and many cameras failing together don't retry in lockstep.
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        """Back to the initial delay (after a success)."""
        self._attempt = 0


def camera_source_factory(cfg: CameraConfig) -> SourceFactory:
    """open_source for this camera: a folder or image (`file` kind) with no `rate` of its own is paced at the
    camera's `fps`, so it delivers (and the studio shows) the rate it is evaluated at, not DEFAULT_FOLDER_RATE."""

    def factory(source: SourceSettings) -> FrameSource:
        if getattr(source, "kind", None) == "file" and getattr(source, "rate", None) is None:
            return open_source(source, rate=cfg.fps)
        return open_source(source)

    return factory


class CameraCapture:
    """One camera's capture thread with a latest-frame slot, status, reconnect with backoff and a stall watchdog."""

    def __init__(
        self,
        cfg: CameraConfig,
        source_factory: SourceFactory = open_source,
        *,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
        initial_backoff: float = INITIAL_BACKOFF_SECONDS,
        fps_window: float = FPS_WINDOW_SECONDS,
    ) -> None:
        tune_allocator()  # before this process's camera and inference threads allocate frames (edge.cameras.memory)
        self.cfg = cfg
        self.id = cfg.id
        self._factory = camera_source_factory(cfg) if source_factory is open_source else source_factory
        self.stall_seconds = stall_seconds
        self._fps_window = fps_window
        self._backoff = Backoff(initial_backoff, cfg.reconnect_max_seconds)
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._latest_taken = True
        self._seq = 0
        self._frame_times: deque[float] = deque(maxlen=256)
        self._status = CameraStatus(id=cfg.id, source=describe_source(cfg.source))
        self._listeners: list[StatusListener] = []
        self._stop = threading.Event()
        self._generation = 0
        self._threads: list[threading.Thread] = []
        self._watchdog: threading.Thread | None = None
        self._source: FrameSource | None = None
        # Monotonic time the current generation entered a source call (open/read), None while outside one.
        self._blocked_since: float | None = None

    # ------------------------------------------------------------------------------------------------ consumers

    def latest(self) -> Frame | None:
        """The newest frame, or None before the first one."""
        with self._cond:
            if self._latest is not None:
                self._latest_taken = True
            return self._latest

    def wait_frame(self, after_seq: int, timeout: float) -> Frame | None:
        """The newest frame once its seq is above after_seq; None on timeout or when the camera stops."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.seq <= after_seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._cond.wait(remaining)
            self._latest_taken = True
            return self._latest

    def status(self) -> CameraStatus:
        """A snapshot of this camera's status, with fps measured over the last few seconds."""
        with self._cond:
            return replace(self._status, fps=self._measured_fps(time.monotonic()))

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call listener(CameraStatus) on every state change."""
        with self._cond:
            self._listeners.append(listener)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads) and not self._stop.is_set()

    # ------------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start capturing in the background (no-op when already running)."""
        if self.running:
            return
        self._stop.clear()
        self._backoff.reset()
        with self._cond:
            self._threads = [t for t in self._threads if t.is_alive()]
        self._set_state("starting")
        self._spawn(initial_delay=0.0)
        self._watchdog = threading.Thread(target=self._watch, name=f"camera-{self.id}-watchdog", daemon=True)
        self._watchdog.start()
        log.info("camera %s: capturing from %s", self.id, self._status.source)

    def request_stop(self) -> None:
        """Ask the threads to stop without waiting (CameraHub stops many cameras in parallel with this)."""
        self._stop.set()
        self._interrupt_source()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the threads to end (at most timeout seconds), then report `stopped`."""
        deadline = time.monotonic() + timeout
        for thread in [*self._threads, self._watchdog]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            log.warning("camera %s: %s still inside a source call after %.1f s; abandoned", self.id, stuck, timeout)
        self._set_state("stopped")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop capturing; interrupts backoff and pacing sleeps; waits at most timeout seconds."""
        self.request_stop()
        self.join(timeout)

    # ------------------------------------------------------------------------------------------------ internals

    def _spawn(self, initial_delay: float) -> None:
        with self._cond:
            self._generation += 1
            generation = self._generation
            self._blocked_since = None
            thread = threading.Thread(
                target=self._run, args=(generation, initial_delay), name=f"camera-{self.id}-{generation}", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _current(self, generation: int) -> bool:
        return not self._stop.is_set() and generation == self._generation

    def _run(self, generation: int, initial_delay: float) -> None:
        if initial_delay > 0:
            self._stop.wait(initial_delay)
        attempt = 0
        while self._current(generation):
            if attempt or initial_delay > 0:
                with self._cond:
                    self._status.reconnects += 1
            attempt += 1
            source: FrameSource | None = None
            try:
                self._mark_blocked(generation, True)
                source = self._factory(self.cfg.source)
                with self._cond:
                    if generation == self._generation:
                        self._source = source
                source.open()
                self._mark_blocked(generation, False)
                had_frame = False
                while self._current(generation):
                    self._mark_blocked(generation, True)
                    image = source.read()
                    self._mark_blocked(generation, False)
                    if not self._current(generation):
                        break
                    self._publish(image, generation)
                    if not had_frame:
                        had_frame = True
                        self._backoff.reset()
            except Exception as err:  # any failure of any source: report it and reconnect, never die
                self._mark_blocked(generation, False)
                if self._current(generation):
                    self._fail(err)
            finally:
                if source is not None:
                    try:
                        source.close()
                    except Exception:
                        log.exception("camera %s: closing %s failed", self.id, self._status.source)
            if not self._current(generation):
                break
            delay = self._backoff.next()
            log.info("camera %s: reconnecting in %.1f s", self.id, delay)
            self._stop.wait(delay)
        log.debug("camera %s: capture thread generation %d ended", self.id, generation)

    def _mark_blocked(self, generation: int, blocked: bool) -> None:
        with self._cond:
            if generation == self._generation:
                self._blocked_since = time.monotonic() if blocked else None

    def _publish(self, image: Any, generation: int) -> None:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", None)
            raise CameraError(f"source returned {type(image).__name__} {shape}, not a BGR uint8 image")
        image.flags.writeable = False
        now_mono, now_ts = time.monotonic(), time.time()
        with self._cond:
            if generation != self._generation:
                return
            self._seq += 1
            if self._latest is not None and not self._latest_taken:
                self._status.dropped += 1
            self._latest = Frame(image, self._seq, now_ts, now_mono, self.id)
            self._latest_taken = False
            self._frame_times.append(now_mono)
            st = self._status
            st.frames += 1
            st.last_frame_at = now_ts
            st.height, st.width = int(image.shape[0]), int(image.shape[1])
            self._cond.notify_all()
        if self._status.state != "online":
            log.info("camera %s: online (%dx%d)", self.id, image.shape[1], image.shape[0])
            self._set_state("online")

    def _fail(self, err: BaseException) -> None:
        message = str(err) if isinstance(err, CameraError) else f"{type(err).__name__}: {err}"
        with self._cond:
            self._status.last_error = message
        log.warning("camera %s: %s", self.id, message)
        self._set_state("offline")

    def _set_state(self, state: CameraState) -> None:
        with self._cond:
            if self._status.state == state:
                return
            self._status.state = state
            snapshot = replace(self._status, fps=self._measured_fps(time.monotonic()))
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("camera %s: status listener %r failed", self.id, listener)

    def _measured_fps(self, now: float) -> float:
        times = self._frame_times
        if len(times) < 2 or now - times[-1] > max(self._fps_window, 2 * (times[-1] - times[-2])):
            return 0.0
        recent = [t for t in times if t >= now - self._fps_window]
        if len(recent) < 2:
            recent = [times[-2], times[-1]]  # slow sources: one interval is the best estimate there is
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0

    def _interrupt_source(self) -> None:
        with self._cond:
            source = self._source
        if isinstance(source, Interruptible):
            try:
                source.interrupt()
            except Exception:
                log.exception("camera %s: interrupting the source failed", self.id)

    def _watch(self) -> None:
        """Detect a source call (open or read) that has not returned for stall_seconds and start afresh."""
        period = min(1.0, self.stall_seconds / 4)
        while not self._stop.wait(period):
            with self._cond:
                since, source = self._blocked_since, self._source
                # A paced source sleeps inside read(): a slow folder rate is not a stall.
                limit = max(self.stall_seconds, 3 * source.frame_interval if isinstance(source, Paced) else 0.0)
                if since is not None and isinstance(source, Queued):
                    # Waiting for its turn to open (other cameras' FFmpeg opens first) is not a stall; the
                    # open itself counts from its turn.
                    waiting, turn_at = source.open_turn
                    since = None if waiting else max(since, turn_at)
                stalled = since is not None and time.monotonic() - since > limit
                if stalled:
                    self._blocked_since = None
            if not stalled:
                continue
            self._fail(CameraError(f"no frame for {limit:g} s (source stalled)"))
            self._interrupt_source()
            # The stuck thread cannot be killed; it sees the generation change when (if) its call returns.
            self._spawn(initial_delay=self._backoff.next())


class CameraHub:
    """Every configured camera's capture; a camera that fails never affects another. Disabled ones stay stopped."""

    def __init__(
        self, cameras: Sequence[CameraConfig], source_factory: SourceFactory = open_source, **capture_options: Any
    ) -> None:
        self.captures: dict[str, CameraCapture] = {
            cfg.id: CameraCapture(cfg, source_factory, **capture_options) for cfg in cameras
        }

    def __iter__(self) -> Iterator[CameraCapture]:
        return iter(self.captures.values())

    def __contains__(self, camera_id: object) -> bool:
        return camera_id in self.captures

    def __enter__(self) -> CameraHub:
        self.start_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def ids(self) -> list[str]:
        """Camera ids in configuration order."""
        return list(self.captures)

    def get(self, camera_id: str) -> CameraCapture | None:
        """The capture of this camera, or None."""
        return self.captures.get(camera_id)

    def require(self, camera_id: str) -> CameraCapture:
        """The capture of this camera; NotFoundError when there is none."""
        capture = self.captures.get(camera_id)
        if capture is None:
            raise NotFoundError(f"no camera {camera_id!r} (cameras: {', '.join(self.captures) or 'none'})")
        return capture

    def start_all(self) -> None:
        """Start every enabled camera."""
        for capture in self.captures.values():
            if not capture.cfg.enabled:
                log.info("camera %s: disabled, not started", capture.id)
                continue
            try:
                capture.start()
            except Exception:  # e.g. no threads left: keep the other cameras going
                log.exception("camera %s: could not start", capture.id)

    def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every camera, in parallel, waiting at most about timeout seconds in all."""
        for capture in self.captures.values():
            capture.request_stop()
        deadline = time.monotonic() + timeout
        for capture in self.captures.values():
            capture.join(max(0.1, deadline - time.monotonic()))

    def statuses(self) -> list[CameraStatus]:
        """Every camera's status, in configuration order."""
        return [capture.status() for capture in self.captures.values()]

    def add_status_listener(self, listener: StatusListener) -> None:
        """Listen to state changes of every camera."""
        for capture in self.captures.values():
            capture.add_status_listener(listener)
