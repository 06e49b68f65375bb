"""Image width and height from the file header, without decoding the pixels (readers must stay cheap)."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

from edge.errors import DatasetError

log = logging.getLogger(__name__)

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of a JPEG, PNG, BMP or WebP from its header; other types are decoded with OpenCV."""
    try:
        with path.open("rb") as f:
            head = f.read(32)
            f.seek(0)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                return _checked(path, width, height)
            if head.startswith(b"\xff\xd8"):
                return _checked(path, *_jpeg_size(path, f.read()))
            if head.startswith(b"BM") and len(head) >= 26:
                width, height = struct.unpack("<ii", head[18:26])
                return _checked(path, width, abs(height))
            if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
                return _checked(path, *_webp_size(f.read(64)))
    except OSError as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err
    except (struct.error, IndexError, ValueError) as err:
        raise DatasetError(f"image {path} has a corrupt header: {err}") from err
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


def _checked(path: Path, width: int, height: int) -> tuple[int, int]:
    if width <= 0 or height <= 0:
        raise DatasetError(f"image {path} has an invalid size {width}x{height} in its header")
    return width, height


def _jpeg_size(path: Path, data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
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
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise DatasetError(f"image {path} is a JPEG without a frame header (truncated or corrupt)")


def _webp_size(data: bytes) -> tuple[int, int]:
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
    raise ValueError(f"unknown WebP chunk {chunk!r}")


def _decoded_size(path: Path) -> tuple[int, int]:
    import cv2  # lazy: only for types without a header parser here (TIFF)

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"image {path} cannot be decoded to read its size")
    height, width = image.shape[:2]
    return int(width), int(height)
