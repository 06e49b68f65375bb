"""The one way images enter the appliance: header read by Pillow, allow-list and pixel limit, then decode.

Every path that turns bytes into pixels (upload, capture, predict, dataset import, the trainer's datasets and pull,
HTTP snapshot cameras) calls `decode_image`; readers that only need a size call `image_size`. The invariants:

- the header is read by Pillow's `Image.open`, which parses headers only and allocates no pixels, and is tried only
  with the plugins on `ALLOWED_FORMATS`; the format's magic bytes must agree, so the pixel decoder behind it
  (libjpeg-turbo through simplejpeg for JPEG, OpenCV for the others) only ever sees an allowed format;
- width x height from that header is checked against the caller's pixel limit before any decoder runs (a 930 KB
  deflate TIFF declaring 30000x30000 is refused in milliseconds instead of allocating 2.7 GB);
- a damaged file is refused instead of decoded into grey: JPEG decodes in libjpeg's strict mode (half a JPEG
  followed by an `FFD9` end marker is "premature end of data segment"), PNG chunks are CRC-checked to `IEND`;
  bytes after a complete image (JPEG trailers written by some cameras) are accepted.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from edge.errors import DatasetError, ImageError, ImageTooLargeError

log = logging.getLogger(__name__)

# Pillow format name -> the extension the store gives the file.
ALLOWED_FORMATS: dict[str, str] = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "WEBP": "webp", "TIFF": "tif"}
SUPPORTED = "JPEG, PNG, BMP, WebP or TIFF"
# A ceiling for any Pillow use in this process (Pillow refuses twice this in Image.open); callers pass their own,
# lower limit (dataset.max_pixels) to every function here.
Image.MAX_IMAGE_PIXELS = 100_000_000
# Frames from a camera folder and stored images being re-read (thumbnails): 40 MP is past any camera's sensor.
MAX_FRAME_PIXELS = 40_000_000

# Magic bytes per allowed format: what OpenCV's decoder picks by, so Pillow's verdict and the decoder's agree.
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "BMP": (b"BM",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
}
# libjpeg warnings that leave the picture whole (junk between segments); any other warning means missing data.
_HARMLESS_JPEG_WARNINGS = ("extraneous bytes before marker",)
# EXIF orientation -> how to turn the stored rows into the displayed picture (what OpenCV's imread does for JPEG).
_ORIENTATION: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda p: p[:, ::-1],
    3: lambda p: p[::-1, ::-1],
    4: lambda p: p[::-1, :],
    5: lambda p: p.swapaxes(0, 1),
    6: lambda p: p.swapaxes(0, 1)[:, ::-1],
    7: lambda p: p.swapaxes(0, 1)[::-1, ::-1],
    8: lambda p: p.swapaxes(0, 1)[::-1, :],
}


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding its pixels."""

    format: str  # Pillow's name: JPEG, PNG, BMP, WEBP, TIFF
    ext: str  # jpg, png, bmp, webp, tif
    width: int
    height: int
    orientation: int = 1  # EXIF orientation (JPEG)


def _magic_ok(fmt: str, data: bytes) -> bool:
    if fmt == "WEBP":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return data.startswith(_MAGIC[fmt])


def read_header(data: bytes, name: str, *, max_pixels: int | None = None) -> ImageHeader:
    """The header of one image in `data`; ImageError naming `name` when it is not an allowed image or too large."""
    if not data:
        raise ImageError(f"{name}: the file is empty")
    return _open_header(io.BytesIO(data), name, max_pixels)


def _open_header(fp: IO[bytes], name: str, max_pixels: int | None) -> ImageHeader:
    # Pillow seeks in the file (a JPEG's frame header may follow megabytes of metadata, a TIFF's IFD sits wherever
    # its offset says) and reads headers only.
    try:
        with Image.open(fp, formats=list(ALLOWED_FORMATS)) as im:
            fmt = str(im.format)
            width, height = (int(v) for v in im.size)
            orientation = _orientation(im) if fmt == "JPEG" else 1
    except Image.DecompressionBombError as err:
        size, limit = _bomb_size(fp, err), max_pixels or 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageTooLargeError(f"{name}: {size} pixels is over the limit of {limit} pixels") from err
    except Image.UnidentifiedImageError as err:
        # Pillow hides why each plugin gave up: an allowed format's magic bytes mean its header is damaged.
        fp.seek(0)
        head = fp.read(16)
        claimed = next((fmt for fmt in ALLOWED_FORMATS if _magic_ok(fmt, head)), None)
        if claimed is not None:
            raise ImageError(f"{name}: the {_label(claimed)} header is damaged (no image size found)") from err
        raise ImageError(f"{name}: not a supported image ({SUPPORTED} expected)") from err
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError) as err:
        # Pillow's plugins raise all of these on a damaged header.
        raise ImageError(f"{name}: the image header is damaged ({err})") from err
    fp.seek(0)
    if fmt not in ALLOWED_FORMATS or not _magic_ok(fmt, fp.read(16)):
        raise ImageError(f"{name}: not a supported image ({SUPPORTED} expected)")
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: the {_label(fmt)} header declares an invalid size {width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(f"{name}: {width}x{height} pixels is over the limit of {max_pixels} pixels")
    return ImageHeader(fmt, ALLOWED_FORMATS[fmt], width, height, orientation)


def _bomb_size(fp: IO[bytes], err: Exception) -> str:
    """'WxH' of a header Image.open refused past Image.MAX_IMAGE_PIXELS: its plugin read alone (header only)."""
    fp.seek(0)
    head = fp.read(16)
    for fmt in ALLOWED_FORMATS:
        if _magic_ok(fmt, head) and fmt in Image.OPEN:
            fp.seek(0)
            with contextlib.suppress(Exception), Image.OPEN[fmt][0](fp, "") as im:
                return f"{im.size[0]}x{im.size[1]}"
    # The WebP plugin checks inside its own open: Pillow's message holds the pixel count.
    found = re.search(r"\((\d+) pixels\)", str(err))
    return found.group(1) if found else "too many"


def _label(fmt: str) -> str:
    return "WebP" if fmt == "WEBP" else fmt


def _orientation(im: Any) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def decode_image(data: bytes, name: str, *, max_pixels: int, gray: bool = False) -> tuple[ImageHeader, np.ndarray]:
    """Header checks, then the pixels (BGR uint8, or greyscale); ImageError naming `name` when refused."""
    header = read_header(data, name, max_pixels=max_pixels)
    pixels: np.ndarray | None
    if header.format == "JPEG":
        pixels = _decode_jpeg(data, name, gray=gray, orientation=header.orientation)
    else:
        if header.format == "PNG":
            _verify_png(data, name)
        import cv2

        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if pixels is None or pixels.size == 0:
        raise ImageError(f"{name}: the image could not be decoded (corrupt or unsupported {header.ext.upper()} data)")
    if pixels.shape[0] * pixels.shape[1] > max_pixels:  # a header that lied
        raise ImageTooLargeError(
            f"{name}: {pixels.shape[1]}x{pixels.shape[0]} pixels is over the limit of {max_pixels} pixels"
        )
    return header, pixels


def _decode_jpeg(data: bytes, name: str, *, gray: bool, orientation: int) -> np.ndarray:
    import simplejpeg

    colorspace = "GRAY" if gray else "BGR"
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True)
    except ValueError as err:
        message = str(err)
        if not any(w in message.lower() for w in _HARMLESS_JPEG_WARNINGS):
            raise ImageError(f"{name}: the JPEG could not be decoded: truncated or corrupt ({message})") from err
        # simplejpeg refuses these while reading the header, strict or not; OpenCV's libjpeg skips them (and
        # applies the EXIF orientation itself).
        import cv2

        flag = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
        if decoded is None:
            raise ImageError(f"{name}: the JPEG file is corrupt ({message})") from err
        return np.asarray(decoded)
    if gray and pixels.ndim == 3:
        pixels = pixels[:, :, 0]
    return _apply_orientation(np.ascontiguousarray(pixels), orientation)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    turn = _ORIENTATION.get(orientation)
    return pixels if turn is None else np.ascontiguousarray(turn(pixels))


def _verify_png(data: bytes, name: str) -> None:
    # libpng returns a half-grey picture for a cut-off file; Pillow's verify walks every chunk's CRC up to IEND.
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            im.verify()
    except Exception as err:
        raise ImageError(f"{name}: the PNG could not be decoded: truncated or corrupt ({err})") from err


def image_size(path: Path, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of an image file from its header alone; DatasetError naming the file when unusable."""
    try:
        with path.open("rb") as f:
            header = _open_header(f, f"image {path}", max_pixels)
    except OSError as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err
    except ImageError as err:
        raise DatasetError(str(err)) from err
    return header.width, header.height


def image_suffix(path: Path) -> str:
    """The file suffix an image's content calls for (`.jpg`, `.png`, ...), for files stored without one."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err
    for fmt, suffix in (("PNG", ".png"), ("BMP", ".bmp"), ("WEBP", ".webp"), ("TIFF", ".tiff")):
        if _magic_ok(fmt, head):
            return suffix
    return ".jpg"
