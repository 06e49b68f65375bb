"""Frame sources: where a camera's pictures come from, one registry of source kinds.

A source is opened, read frame by frame (BGR uint8, height x width x 3) and closed; any failure is a CameraError,
which the capture thread (edge.cameras.capture) turns into a reconnect with backoff.

Each kind pairs a config model (`kind: Literal[...]` plus its checked fields) with the function that opens it,
registered with `@source_kind`; SOURCE_KINDS feeds both the `cameras[].source` config (a discriminated union, so
`config validate` checks every field) and `open_source`. A plain string is mapped to its kind by the first
registered kind whose `from_plain` claims it:

| source value                                  | kind                                              |
|-----------------------------------------------|---------------------------------------------------|
| synthetic: or synthetic:?width=..&period=..   | `synthetic`: the procedurally drawn demo shelf    |
| rtsp://, rtsps://, http://, https:// URL      | `stream`: FFmpeg network stream (RTSP over TCP, MJPEG, HLS) |
| int, "0", "/dev/video0"                       | `v4l2`: V4L2 device (blocks until the device delivers) |
| a video file                                  | `file`: decoded with FFmpeg, loops, paced at native fps |
| a folder of jpg/jpeg/png/bmp/webp images      | `file`: cycled in sorted order at `rate` frames/s |
| a single image file                           | `file`: that image repeated at `rate` frames/s    |

The mapping form names the kind: `{kind: synthetic, width: 640, period: 30}`, `{kind: file, path: shelf/, rate: 2}`.
A new kind is a config model with a unique `kind` literal, a `from_plain` (or none) and an opener (docs/CAMERAS.md).

`realtime=False` turns pacing off (files, folders, synthetic) so benchmarks read as fast as decoding allows.
Sources that pace themselves also implement `Interruptible`, so stopping a camera never waits out a pacing sleep.

FFmpeg opens (streams and video files) go one at a time through `open_ffmpeg`: OpenCV opens FFmpeg captures one at
a time process-wide anyway, and an RTSP open sets its own FFmpeg options for that open only. Such sources are
`Queued`: while one waits for its turn the camera's stall watchdog does not count the wait (docs/CAMERAS.md, RTSP).
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, TypeVar, Union, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cv2
import numpy as np
from pydantic import Field, ValidationError, field_validator

from edge.cameras.pacing import Pacer
from edge.datasets.imaging import MAX_FRAME_PIXELS, decode_image
from edge.errors import CameraError, ImageError, validation_message
from edge.strict import StrictModel

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
DEFAULT_FOLDER_RATE = 5.0
# FFmpeg network timeouts: without them a dead RTSP server blocks open()/read() for minutes.
NETWORK_TIMEOUT_MS = 10_000
# Files that claim an absurd or missing frame rate are played at this one.
FALLBACK_FPS = 25.0
# FFmpeg decoding threads per camera. Its default (one per core + 1, frame-threaded) gives every camera 3 threads
# and a frame pool each: 8 720p H.264 cameras held 86 MB instead of 56 MB and 24 threads. One thread decodes a 720p
# frame in a few ms, far within a camera's frame interval (docs/BENCHMARKS.md, issue 15).
DECODER_THREADS = 1
# Frame buffers each cv2 capture decodes into again (FramePool): the newest frame (which its pipeline may be
# evaluating) and the one before, free again once evaluated; a third measured no more reuse and held ~20 MB more
# for 8 cameras. Beyond that a capture decodes into new arrays as before.
FRAME_POOL_BUFFERS = 2
# FFmpeg's options for an RTSP open (OpenCV reads them from OPENCV_FFMPEG_CAPTURE_OPTIONS when a capture opens; an
# operator's own value in the environment wins). TCP: UDP RTSP loses packets on busy Wi-Fi (smeared frames).
# analyzeduration 0 + probesize 32: no stream probing beyond the SDP and the first packet. FFmpeg's default probing
# decodes ~8 frames to estimate the frame rate and decoder delay, 4-5.5 s of a 2 fps camera, and OpenCV opens one
# capture at a time, so 8 such cameras took 44 s to come up (the last ones past the 10 s stall limit). Probed this
# way each opens in ~0.5 s, with the parameter sets in the SDP or only in the stream before key frames (the decoder
# learns them there): tests/cameras/test_rtsp.py, docs/CAMERAS.md "RTSP".
RTSP_CAPTURE_OPTIONS = "rtsp_transport;tcp|analyzeduration;0|probesize;32"
CAPTURE_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ffmpeg_turn = threading.Lock()


@runtime_checkable
class FrameSource(Protocol):
    """Where frames come from: open, then read BGR uint8 frames (raising CameraError on failure), then close."""

    description: str

    def open(self) -> None:
        """Connect / open the device or file; raise CameraError when that is impossible."""

    def read(self) -> np.ndarray:
        """The next frame as a BGR uint8 array (H x W x 3); raise CameraError when none can be had."""
        ...

    def close(self) -> None:
        """Release the device or file; safe to call twice."""


@runtime_checkable
class Interruptible(Protocol):
    """Optional capability: a source whose blocking wait can be cut short from another thread."""

    def interrupt(self) -> None:
        """Make a pending or later read return promptly (the caller is shutting the source down)."""


@runtime_checkable
class Queued(Protocol):
    """Optional capability: a source whose open waits for its turn behind other sources' opens."""

    @property
    def open_turn(self) -> tuple[bool, float]:
        """(waiting for its turn now, monotonic time its last open got its turn; 0.0 before any)."""
        ...


@runtime_checkable
class Paced(Protocol):
    """Optional capability: a source that sleeps inside read() to deliver frames at a steady rate."""

    @property
    def frame_interval(self) -> float:
        """Seconds between frames when paced; 0 when unpaced."""
        ...


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and status."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def open_ffmpeg(
    target: str, params: list[int], options: str | None = None, turn: Callable[[bool], None] | None = None
) -> cv2.VideoCapture:
    """`cv2.VideoCapture(target, CAP_FFMPEG, params)`, one open at a time, with `options` (FFmpeg's
    `key;value|key;value` open options) for this open only unless OPENCV_FFMPEG_CAPTURE_OPTIONS is set in the
    environment (then that applies to every open). `turn(True)` is called while waiting, `turn(False)` once it
    is this open's turn."""
    if turn is not None:
        turn(True)
    with _ffmpeg_turn:
        if turn is not None:
            turn(False)
        if options is None or os.environ.get(CAPTURE_OPTIONS_ENV) is not None:
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        os.environ[CAPTURE_OPTIONS_ENV] = options
        try:
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        finally:
            os.environ.pop(CAPTURE_OPTIONS_ENV, None)


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    """Normalise what a decoder returned to 3-channel BGR uint8."""
    if frame.dtype != np.uint8:
        frame = cv2.convertScaleAbs(frame, alpha=255.0 / max(1.0, float(np.iinfo(frame.dtype).max)))
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def _refs_of_an_array_only_a_list_holds() -> int:
    probe = [np.empty(0)]
    return sys.getrefcount(probe[0])  # 2 on CPython: the list's and getrefcount's argument


_ONLY_IN_A_LIST = _refs_of_an_array_only_a_list_holds()


class FramePool:
    """Frame buffers a cv2 capture decodes into again once nothing else holds them.

    The device's allocator (edge.cameras.memory) maps every frame-sized block afresh and unmaps it when it is
    freed, so a capture that decoded into a new array every frame paid a 720p BGR frame's 675 page faults (pages
    zeroed and mapped, then unmapped) each time: 3.2 against 1.4 ms of CPU a 720p H.264 frame on the two-core VM
    (docs/BENCHMARKS.md, issue 15). A buffer goes back to work only when the pool holds the last reference to it:
    no Frame, crop (a numpy view keeps its base alive), snapshot or encoder refers to it any more, and nothing can
    get a new reference but through those. Otherwise the capture decodes into a new array, which the pool keeps
    in place of the oldest busy one (at most `size` buffers); a frame of another size replaces them all (a camera's
    new resolution).
    """

    def __init__(self, size: int = FRAME_POOL_BUFFERS) -> None:
        self.size = size
        self.reused = 0  # frames decoded into a pooled buffer
        self._buffers: list[np.ndarray] = []

    def free(self) -> np.ndarray | None:
        """A pooled buffer that nothing else holds (writeable again), or None."""
        for i in range(len(self._buffers)):
            if sys.getrefcount(self._buffers[i]) <= _ONLY_IN_A_LIST:
                buffer = self._buffers[i]
                buffer.flags.writeable = True
                return buffer
        return None

    def read(self, cap: cv2.VideoCapture) -> tuple[bool, np.ndarray | None]:
        """`cap.read()` into a free pooled buffer when there is one; a new frame array may join the pool."""
        buffer = self.free()
        ok, frame = cap.read(buffer) if buffer is not None else cap.read()
        if not ok or frame is None:
            return False, None
        if buffer is not None and frame is buffer:
            self.reused += 1
        elif frame.base is None and frame.flags.owndata:
            if self._buffers and self._buffers[0].shape != frame.shape:
                self._buffers.clear()
            if len(self._buffers) >= self.size:
                self._buffers.pop(0)  # all busy: the oldest leaves the pool (its holder keeps it), the new one joins
            self._buffers.append(frame)
        return True, frame


class _CvCaptureSource:
    """Common parts of the sources backed by cv2.VideoCapture."""

    description: str = ""

    def __init__(self) -> None:
        self._cap: cv2.VideoCapture | None = None
        self._waiting = False
        self._turn_at = 0.0
        self._pool = FramePool()

    @property
    def open_turn(self) -> tuple[bool, float]:
        """(waiting for its turn to open now, when its last open got its turn): see `Queued`."""
        return self._waiting, self._turn_at

    def _turn(self, waiting: bool) -> None:
        self._waiting = waiting
        if not waiting:
            self._turn_at = time.monotonic()

    def _require(self) -> cv2.VideoCapture:
        if self._cap is None:
            raise CameraError(f"{self.description}: read before open")
        return self._cap

    def _read_frame(self, failure: str) -> np.ndarray:
        """The next decoded frame as BGR; CameraError `<description>: <failure>` when none came."""
        ok, frame = self._pool.read(self._require())
        if not ok or frame is None:
            raise CameraError(f"{self.description}: {failure}")
        return _as_bgr(frame)

    def close(self) -> None:
        """Release the capture."""
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class V4L2Source(_CvCaptureSource):
    """A local camera through Video4Linux2 (USB webcams, CSI cameras with a V4L2 driver)."""

    def __init__(self, device: int | str) -> None:
        super().__init__()
        self.device = device
        self.description = describe_source(device)

    def open(self) -> None:
        """Open the device."""
        if isinstance(self.device, str) and not Path(self.device).exists():
            raise CameraError(f"{self.description}: no such video device")
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.description}: cannot open the V4L2 device (busy, unplugged or no permission?)")
        # A one-frame driver queue: we want the newest picture, not one from a second ago.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    def read(self) -> np.ndarray:
        """Block until the device delivers the next frame."""
        return self._read_frame("the device returned no frame")


class StreamSource(_CvCaptureSource):
    """A network stream through FFmpeg: RTSP (forced to TCP unless configured otherwise), MJPEG over HTTP, HLS."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.description = redact_url(url)

    def open(self) -> None:
        """Connect to the stream (gives up after NETWORK_TIMEOUT_MS once its turn to open came)."""
        rtsp = self.url.lower().startswith(("rtsp://", "rtsps://"))
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            NETWORK_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            NETWORK_TIMEOUT_MS,
            cv2.CAP_PROP_N_THREADS,
            DECODER_THREADS,
        ]
        cap = open_ffmpeg(self.url, params, RTSP_CAPTURE_OPTIONS if rtsp else None, self._turn)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.description}: cannot open the stream (unreachable, refused or not a video)")
        self._cap = cap

    def read(self) -> np.ndarray:
        """The next frame of the stream."""
        return self._read_frame("the stream ended or timed out")


class _PacedSource:
    """A source that sleeps in read() to keep its frame rate when realtime (a Pacer; None when unpaced)."""

    _pacer: Pacer | None = None

    def _pace(self) -> None:
        if self._pacer is not None:
            self._pacer.wait()

    @property
    def frame_interval(self) -> float:
        """Seconds between frames (0 when not realtime)."""
        return self._pacer.interval if self._pacer is not None else 0.0

    def interrupt(self) -> None:
        """Cut short a pacing wait."""
        if self._pacer is not None:
            self._pacer.interrupt()


class VideoFileSource(_CvCaptureSource, _PacedSource):
    """A video file decoded with FFmpeg, looped forever, paced at its native frame rate when realtime."""

    def __init__(self, path: Path, *, realtime: bool = True) -> None:
        super().__init__()
        self.path = path
        self.realtime = realtime
        self.description = str(path)
        self.fps = FALLBACK_FPS
        self.loops = 0

    def _open_capture(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise CameraError(f"{self.description}: no such video file")
        cap = open_ffmpeg(str(self.path), [cv2.CAP_PROP_N_THREADS, DECODER_THREADS], None, self._turn)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.description}: not a video FFmpeg can decode")
        return cap

    def open(self) -> None:
        """Open the file and read its frame rate."""
        self._cap = self._open_capture()
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and 0.5 <= fps <= 240 else FALLBACK_FPS
        self._pacer = Pacer(1.0 / self.fps) if self.realtime else None

    def read(self) -> np.ndarray:
        """The next frame; at the end, start again from the first."""
        cap = self._require()
        ok, frame = self._pool.read(cap)
        if not ok or frame is None:
            # Reopening is more reliable than seeking to frame 0, which some containers/codecs ignore.
            cap.release()
            self._cap = None
            self._cap = cap = self._open_capture()
            self.loops += 1
            ok, frame = self._pool.read(cap)
            if not ok or frame is None:
                raise CameraError(f"{self.description}: no decodable frame in the file")
        self._pace()
        return _as_bgr(frame)


class ImageFolderSource(_PacedSource):
    """Still images cycled in sorted name order at `rate` frames/s; undecodable files are skipped with a warning.

    The folder is listed again at the start of each cycle, so images added while running join the rotation.
    """

    def __init__(self, path: Path, *, rate: float = DEFAULT_FOLDER_RATE, realtime: bool = True) -> None:
        if rate <= 0 or not math.isfinite(rate):
            raise CameraError(f"{path}: the image rate must be a positive number of frames per second")
        self.path = path
        self.rate = rate
        self.realtime = realtime
        self.description = str(path)
        self.cycles = 0
        self._files: list[Path] = []
        self._pos = 0
        self._pending: np.ndarray | None = None
        self._warned: set[tuple[Path, float, int]] = set()

    def _list(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise CameraError(f"{self.description}: no such folder")
        files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise CameraError(
                f"{self.description}: no images in the folder (expected {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        return files

    def open(self) -> None:
        """List the images and find the first decodable one (none at all is a CameraError)."""
        self._files = self._list()
        self._pos = 0
        self._pending = self._next_image()
        self._pacer = Pacer(1.0 / self.rate) if self.realtime else None

    def read(self) -> np.ndarray:
        """The next decodable image (waits for its turn when realtime)."""
        if not self._files:
            raise CameraError(f"{self.description}: read before open")
        image, self._pending = self._pending, None
        if image is None:
            image = self._next_image()
        self._pace()
        return image

    def _next_image(self) -> np.ndarray:
        tried = 0
        while True:
            if self._pos >= len(self._files):
                self._files = self._list()
                self._pos = 0
                self.cycles += 1
            path = self._files[self._pos]
            self._pos += 1
            image = self._decode(path)
            if image is not None:
                return image
            tried += 1
            if tried >= len(self._files):
                raise CameraError(f"{self.description}: none of the {len(self._files)} images could be decoded")

    def _decode(self, path: Path) -> np.ndarray | None:
        try:
            # The one decode path: a huge or foreign file in the folder is skipped by its header, never decoded.
            _, image = decode_image(path.read_bytes(), path.name, max_pixels=MAX_FRAME_PIXELS)
        except (OSError, cv2.error, ImageError) as err:
            log.debug("reading %s failed: %s", path, err)
            image = None
        if image is None:
            # Warn once per file version, not on every cycle.
            try:
                st = path.stat()
                key = (path, st.st_mtime, st.st_size)
            except OSError:
                key = (path, 0.0, -1)
            if key not in self._warned:
                self._warned.add(key)
                log.warning("%s: skipping %s: not a decodable image", self.description, path.name)
            return None
        return image

    def close(self) -> None:
        """Forget the listing."""
        self._files = []
        self._pending = None


_DEV_VIDEO = re.compile(r"^/dev/video\d+$")


# --- the registry: one config model and one opener per kind ---------------------------------------------------


class SourceSettings(StrictModel):
    """What every source kind's config has: its `kind`, how it prints, and its plain-string form."""

    kind: str

    @classmethod
    def from_plain(cls, text: str) -> dict[str, Any] | None:
        """The mapping form of a plain `source:` string this kind claims, else None (CameraError when malformed)."""
        return None

    def plain(self) -> str | int | None:
        """The plain string this config is written as (`config show`), or None when only the mapping says it all."""
        return None

    def describe(self) -> str:
        """A printable, password-free name of the source (status, logs)."""
        plain = self.plain()
        return str(plain) if plain is not None else self.kind


S = TypeVar("S", bound=SourceSettings)
SourceOpener = Callable[[Any, bool, float | None], "FrameSource"]


@dataclass(frozen=True)
class SourceKind:
    """A registered kind: its config model and the function that builds its (not yet opened) FrameSource."""

    config: type[SourceSettings]
    open: SourceOpener


SOURCE_KINDS: dict[str, SourceKind] = {}


def source_kind(config: type[S]) -> Callable[[Callable[[S, bool, float | None], FrameSource]], Any]:
    """Register `config` (its `kind` literal names it) with the decorated opener(config, realtime, rate)."""
    kind = config.model_fields["kind"].default
    if not isinstance(kind, str) or kind in SOURCE_KINDS:
        raise ValueError(f"source kind {kind!r} needs a unique `kind` literal with a default")

    def register(opener: Callable[[S, bool, float | None], FrameSource]) -> Any:
        SOURCE_KINDS[kind] = SourceKind(config, opener)
        return opener

    return register


class SyntheticSourceConfig(SourceSettings):
    """The procedurally drawn demo shelf (edge.cameras.synthetic)."""

    kind: Literal["synthetic"] = "synthetic"
    width: int = Field(1280, ge=32, description="Frame width in pixels.")
    height: int = Field(720, ge=32, description="Frame height in pixels.")
    rows: int = Field(4, ge=1, le=12, description="Shelf rows drawn.")
    period: float = Field(60.0, gt=0, description="Seconds of one sell-out and restock cycle.")
    seed: int = Field(0, description="Product layout seed.")
    fps: float = Field(10.0, gt=0, description="Frames per second delivered.")

    PREFIX: ClassVar[str] = "synthetic:"

    @classmethod
    def from_plain(cls, text: str) -> dict[str, Any] | None:
        """`synthetic:` or `synthetic:?width=..&height=..&rows=..&period=..&seed=..&fps=..`."""
        if not text.startswith(cls.PREFIX):
            return None
        query = text[len(cls.PREFIX) :].lstrip("/").lstrip("?")
        known = [name for name in cls.model_fields if name != "kind"]
        options: dict[str, Any] = {"kind": "synthetic"}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in known:
                raise CameraError(f"synthetic source: unknown option {key!r} (known: {', '.join(sorted(known))})")
            convert = int if cls.model_fields[key].annotation is int else float
            try:
                options[key] = convert(value)
            except ValueError:
                raise CameraError(f"synthetic source: {key}={value!r} is not a valid {convert.__name__}") from None
        return options

    def plain(self) -> str:
        """`synthetic:` with the options that were given, in field order."""
        given = [
            (name, self._text(getattr(self, name)))
            for name in type(self).model_fields
            if name in self.model_fields_set and name != "kind"
        ]
        return self.PREFIX + (f"?{urlencode(given)}" if given else "")

    @staticmethod
    def _text(value: float) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)


@source_kind(SyntheticSourceConfig)
def _open_synthetic(cfg: SyntheticSourceConfig, realtime: bool, rate: float | None) -> FrameSource:
    from edge.cameras.synthetic import SyntheticShelfSource

    options = cfg.model_dump(exclude={"kind"})
    if rate is not None:
        options["fps"] = rate
    return SyntheticShelfSource(**options, realtime=realtime)


class StreamSourceConfig(SourceSettings):
    """A network stream FFmpeg reads: RTSP (over TCP), MJPEG or HLS over HTTP(S)."""

    kind: Literal["stream"] = "stream"
    url: str = Field(min_length=8, description="rtsp://, rtsps://, http:// or https:// URL (credentials allowed).")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.lower().startswith(URL_SCHEMES):
            raise ValueError(f"unsupported camera URL scheme in {redact_url(v)!r} (use rtsp, http or https)")
        return v

    @classmethod
    def from_plain(cls, text: str) -> dict[str, Any] | None:
        """Any rtsp(s):// or http(s):// URL."""
        return {"kind": "stream", "url": text} if text.lower().startswith(URL_SCHEMES) else None

    def plain(self) -> str:
        """The URL."""
        return self.url

    def describe(self) -> str:
        """The URL without its password."""
        return redact_url(self.url)


@source_kind(StreamSourceConfig)
def _open_stream(cfg: StreamSourceConfig, realtime: bool, rate: float | None) -> FrameSource:
    return StreamSource(cfg.url)


class V4L2SourceConfig(SourceSettings):
    """A local V4L2 video device."""

    kind: Literal["v4l2"] = "v4l2"
    device: int | str = Field(description="Device index (0) or path (/dev/video0, /dev/v4l/by-id/...).")

    @field_validator("device")
    @classmethod
    def _device(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("a device index is 0 or more")
        if isinstance(v, str) and not (v.strip().isdigit() or _DEV_VIDEO.match(v) or v.startswith("/dev/v4l/")):
            raise ValueError(f"{v!r} is not a V4L2 device (an index, /dev/videoN or /dev/v4l/...)")
        return v

    @classmethod
    def from_plain(cls, text: str) -> dict[str, Any] | None:
        """A device index ("0") or a /dev/videoN or /dev/v4l/ path."""
        if text.isdigit() or _DEV_VIDEO.match(text) or text.startswith("/dev/v4l/"):
            return {"kind": "v4l2", "device": text}
        return None

    def plain(self) -> str | int:
        """The device as written."""
        return self.device

    def describe(self) -> str:
        """The device path (an index reads as /dev/videoN)."""
        return f"/dev/video{self.device}" if isinstance(self.device, int) else self.device


@source_kind(V4L2SourceConfig)
def _open_v4l2(cfg: V4L2SourceConfig, realtime: bool, rate: float | None) -> FrameSource:
    device = cfg.device
    return V4L2Source(int(device) if isinstance(device, str) and device.strip().isdigit() else device)


class FileSourceConfig(SourceSettings):
    """A video file (looped), an image, or a folder of images; which one is decided when the camera opens it."""

    kind: Literal["file"] = "file"
    path: str = Field(min_length=1, description="Video file, image file or folder of jpg/jpeg/png/bmp/webp images.")
    rate: float | None = Field(
        None, gt=0, description="Frames/s of a folder or image (default: the camera's fps); a video plays at its own."
    )

    @classmethod
    def from_plain(cls, text: str) -> dict[str, Any]:
        """Anything else that is not a URL: a path."""
        if "://" in text:
            raise CameraError(f"unsupported camera URL scheme in {redact_url(text)!r} (use rtsp, http or https)")
        return {"kind": "file", "path": text}

    def plain(self) -> str | None:
        """The path, when no rate is set."""
        return self.path if self.rate is None else None

    def describe(self) -> str:
        """The path."""
        return self.path


@source_kind(FileSourceConfig)
def _open_file(cfg: FileSourceConfig, realtime: bool, rate: float | None) -> FrameSource:
    path = Path(cfg.path).expanduser()
    rate = rate or cfg.rate or DEFAULT_FOLDER_RATE
    if path.is_dir():
        return ImageFolderSource(path, rate=rate, realtime=realtime)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFolderSource(path, rate=rate, realtime=realtime)
        return VideoFileSource(path, realtime=realtime)
    raise CameraError(f"camera source {cfg.path!r}: no such file, folder or device")


if TYPE_CHECKING:
    SourceConfig = SourceSettings
else:
    # The `cameras[].source` type: every registered kind's config, told apart by `kind`.
    SourceConfig = Annotated[Union[tuple(k.config for k in SOURCE_KINDS.values())], Field(discriminator="kind")]  # noqa: UP007


def plain_source(source: str | int) -> dict[str, Any]:
    """The mapping form of a plain `source:` value: the first registered kind that claims the string decides."""
    if isinstance(source, bool) or not isinstance(source, str | int):
        raise CameraError(f"invalid camera source {source!r}")
    if isinstance(source, int):
        return {"kind": "v4l2", "device": source}
    text = source.strip()
    if not text:
        raise CameraError("empty camera source")
    for kind in SOURCE_KINDS.values():
        mapping = kind.config.from_plain(text)
        if mapping is not None:
            return mapping
    raise CameraError(f"camera source {text!r}: no source kind takes it")


def source_config(source: str | int | SourceSettings) -> SourceSettings:
    """The config of a `source` value: a kind's config as it is, a plain string or int mapped to its kind."""
    if isinstance(source, SourceSettings):
        return source
    mapping = plain_source(source)
    try:
        return SOURCE_KINDS[mapping["kind"]].config.model_validate(mapping)
    except ValidationError as err:
        problems = validation_message(err)
        raise CameraError(f"camera source {describe_source(source)!r}: {problems}") from None


def describe_source(source: str | int | SourceSettings) -> str:
    """A printable, password-free name of a source value."""
    if isinstance(source, SourceSettings):
        return source.describe()
    if isinstance(source, int):
        return f"/dev/video{source}"
    return redact_url(source) if source.startswith(URL_SCHEMES) else source


def open_source(source: str | int | SourceSettings, *, realtime: bool = True, rate: float | None = None) -> FrameSource:
    """The FrameSource for a configured `source` (not yet opened); a malformed value or missing path is a CameraError.

    realtime: pace files, folders and the synthetic shelf like a live camera (False: as fast as they decode).
    rate: frames/s of a folder of images or the synthetic shelf (default: the config's, else 5 and 10).
    """
    cfg = source_config(source)
    return SOURCE_KINDS[cfg.kind].open(cfg, realtime, rate)
