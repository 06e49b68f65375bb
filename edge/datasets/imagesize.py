"""Image width and height from the file header, without decoding the pixels (readers must stay cheap)."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

from edge.errors import DatasetError

log = logging.getLogger(__name__)


def sniff_format(data: bytes) -> str | None:
    """The file extension of a supported image format, from its magic bytes; None when not an image we accept."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tif"
    return None


def header_size(data: bytes, ext: str) -> tuple[int, int] | None:
    """Width and height from the file header without decoding; None when the header does not say (TIFF, damage)."""
    try:
        if ext == "png":
            if data[12:16] != b"IHDR":
                return None
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if ext == "jpg":
            return _jpeg_size(data)
        if ext == "bmp":
            w, h = struct.unpack("<ii", data[18:26])
            return int(w), abs(int(h))  # a negative height means top-down rows
        if ext == "webp":
            return _webp_size(data)
    except (struct.error, IndexError):
        return None
    return None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of a JPEG, PNG, BMP or WebP from its header; other types are decoded with OpenCV."""
    try:
        with path.open("rb") as f:
            head = f.read(32)
            ext = sniff_format(head)
            # A JPEG's frame header may sit after large metadata segments: read on for it.
            size = header_size(head + f.read() if ext == "jpg" else head, ext) if ext else None
    except OSError as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err
    if size is not None:
        width, height = size
        if width <= 0 or height <= 0:
            raise DatasetError(f"image {path} has an invalid size {width}x{height} in its header")
        return width, height
    if ext == "jpg":
        raise DatasetError(f"image {path} is a JPEG without a frame header (truncated or corrupt)")
    return _decoded_size(path)


def image_suffix(path: Path) -> str:
    """The file suffix an image's content calls for (`.jpg`, `.png`, ...), for files stored without one."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err
    if head.startswith(b"\x89PNG"):
        return ".png"
    if head.startswith(b"BM"):
        return ".bmp"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return ".webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return ".tiff"
    return ".jpg"


# SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:  # stray bytes before a marker: libjpeg skips them with a warning, so do we
            pos += 1
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > n:
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        b = data[21:25]
        width = 1 + (((b[1] & 0x3F) << 8) | b[0])
        height = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return width, height
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    return None


def _decoded_size(path: Path) -> tuple[int, int]:
    import cv2  # lazy: only for types without a header parser here (TIFF)

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"image {path} cannot be decoded to read its size")
    height, width = image.shape[:2]
    return int(width), int(height)
