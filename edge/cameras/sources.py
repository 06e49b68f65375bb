"""Frame sources: where a camera's pictures come from.

A source is opened, read frame by frame (BGR uint8, height x width x 3) and closed; any failure is a CameraError,
which the capture thread (edge.cameras.capture) turns into a reconnect with backoff. `open_source` picks the
kind from the configured `source` value:

| source value                                  | kind                                              |
|-----------------------------------------------|---------------------------------------------------|
| int, "0", "/dev/video0"                       | V4L2 device (blocks until the device delivers)    |
| rtsp://, rtsps://, http://, https:// URL      | FFmpeg network stream (RTSP over TCP, MJPEG, HLS) |
| a video file                                  | decoded with FFmpeg, loops, paced at native fps    |
| a folder of jpg/jpeg/png/bmp/webp images      | cycled in sorted order at `rate` frames/s          |
| a single image file                           | that image repeated at `rate` frames/s            |
| synthetic: or synthetic:?width=..&period=..   | the procedurally drawn demo shelf                 |

`realtime=False` turns pacing off (files, folders, synthetic) so benchmarks read as fast as decoding allows.
Sources that pace themselves also implement `Interruptible`, so stopping a camera never waits out a pacing sleep.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from edge.cameras.pacing import Pacer
from edge.cameras.synthetic import SyntheticShelfSource
from edge.datasets.imaging import MAX_FRAME_PIXELS, decode_image
from edge.errors import CameraError, ImageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
DEFAULT_FOLDER_RATE = 5.0
# FFmpeg network timeouts: without them a dead RTSP server blocks open()/read() for minutes.
NETWORK_TIMEOUT_MS = 10_000
# Files that claim an absurd or missing frame rate are played at this one.
FALLBACK_FPS = 25.0


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


def describe_source(source: str | int) -> str:
    """A printable, password-free name of a source value."""
    if isinstance(source, int):
        return f"/dev/video{source}"
    return redact_url(source) if source.startswith(URL_SCHEMES) else source


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    """Normalise what a decoder returned to 3-channel BGR uint8."""
    if frame.dtype != np.uint8:
        frame = cv2.convertScaleAbs(frame, alpha=255.0 / max(1.0, float(np.iinfo(frame.dtype).max)))
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


class _CvCaptureSource:
    """Common parts of the sources backed by cv2.VideoCapture."""

    description: str = ""

    def __init__(self) -> None:
        self._cap: cv2.VideoCapture | None = None

    def _require(self) -> cv2.VideoCapture:
        if self._cap is None:
            raise CameraError(f"{self.description}: read before open")
        return self._cap

    def _read_frame(self, failure: str) -> np.ndarray:
        """The next decoded frame as BGR; CameraError `<description>: <failure>` when none came."""
        ok, frame = self._require().read()
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
        """Connect to the stream (gives up after NETWORK_TIMEOUT_MS)."""
        if self.url.startswith(("rtsp://", "rtsps://")):
            # UDP RTSP loses packets on busy Wi-Fi and shows as smeared frames; TCP is what cameras do reliably.
            # OpenCV reads this variable at open time; a value the operator set wins.
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            NETWORK_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            NETWORK_TIMEOUT_MS,
        ]
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.description}: cannot open the stream (unreachable, refused or not a video)")
        self._cap = cap

    def read(self) -> np.ndarray:
        """The next frame of the stream."""
        return self._read_frame("the stream ended or timed out")


class VideoFileSource(_CvCaptureSource):
    """A video file decoded with FFmpeg, looped forever, paced at its native frame rate when realtime."""

    def __init__(self, path: Path, *, realtime: bool = True) -> None:
        super().__init__()
        self.path = path
        self.realtime = realtime
        self.description = str(path)
        self.fps = FALLBACK_FPS
        self.loops = 0
        self._pacer: Pacer | None = None

    def _open_capture(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise CameraError(f"{self.description}: no such video file")
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
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
        ok, frame = cap.read()
        if not ok or frame is None:
            # Reopening is more reliable than seeking to frame 0, which some containers/codecs ignore.
            cap.release()
            self._cap = None
            self._cap = cap = self._open_capture()
            self.loops += 1
            ok, frame = cap.read()
            if not ok or frame is None:
                raise CameraError(f"{self.description}: no decodable frame in the file")
        if self._pacer is not None:
            self._pacer.wait()
        return _as_bgr(frame)

    @property
    def frame_interval(self) -> float:
        """Seconds between frames (0 when not realtime)."""
        return self._pacer.interval if self._pacer is not None else 0.0

    def interrupt(self) -> None:
        """Cut short a pacing wait."""
        if self._pacer is not None:
            self._pacer.interrupt()


class ImageFolderSource:
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
        self._pacer: Pacer | None = None

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
        if self._pacer is not None:
            self._pacer.wait()
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

    @property
    def frame_interval(self) -> float:
        """Seconds between frames (0 when not realtime)."""
        return self._pacer.interval if self._pacer is not None else 0.0

    def interrupt(self) -> None:
        """Cut short a pacing wait."""
        if self._pacer is not None:
            self._pacer.interrupt()


_DEV_VIDEO = re.compile(r"^/dev/video\d+$")


def open_source(source: str | int, *, realtime: bool = True, rate: float | None = None) -> FrameSource:
    """The FrameSource for a configured `source` value (not yet opened); a missing file or folder is a CameraError.

    realtime: pace files, folders and the synthetic shelf like a live camera (False: as fast as they decode).
    rate: frames/s of a folder of images or the synthetic shelf (default 5 and 10).
    """
    if isinstance(source, bool):
        raise CameraError(f"invalid camera source {source!r}")
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        return V4L2Source(int(source))
    text = source.strip()
    if not text:
        raise CameraError("empty camera source")
    if text.startswith("synthetic:"):
        src = SyntheticShelfSource.from_spec(text, realtime=realtime)
        if rate is not None:
            src.fps = rate
        return src
    if text.lower().startswith(URL_SCHEMES):
        return StreamSource(text)
    if _DEV_VIDEO.match(text) or text.startswith("/dev/v4l/"):
        return V4L2Source(text)
    if "://" in text:
        raise CameraError(f"unsupported camera URL scheme in {redact_url(text)!r} (use rtsp, http or https)")
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, rate=rate or DEFAULT_FOLDER_RATE, realtime=realtime)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFolderSource(path, rate=rate or DEFAULT_FOLDER_RATE, realtime=realtime)
        return VideoFileSource(path, realtime=realtime)
    raise CameraError(f"camera source {text!r}: no such file, folder or device")
