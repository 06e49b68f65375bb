"""Image intake: header sanity, decoding, size limits, sha256 and perceptual hash, and atomic file writes.

Validation happens before anything is stored: the header is read first so that a decompression bomb is refused
before the decoder allocates its pixels, then the whole file is decoded (an image we cannot decode is an image the
trainer and the device cannot use either).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.datasets.imaging import decode_image
from edge.errors import ImageTooLargeError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class ImageFacts:
    """What validation learned about one image file."""

    sha256: str
    ext: str
    width: int
    height: int
    size: int
    phash: int


def dhash(gray: np.ndarray) -> int:
    """64-bit difference hash of a greyscale image: robust to re-encoding, scaling and brightness changes."""
    import cv2

    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return (a ^ b).bit_count()


def validate_image(data: bytes, name: str, *, max_image_mb: float, max_pixels: int) -> ImageFacts:
    """Check that `data` is one decodable image within the limits; raise ImageError naming `name` otherwise."""
    size = len(data)
    if size > max_image_mb * MIB:
        raise ImageTooLargeError(f"{name}: {size / MIB:.1f} MiB is over the {max_image_mb:g} MiB image limit")
    # One decode path for every intake: header by Pillow (allow-list, pixel limit) before any pixel is allocated.
    header, decoded = decode_image(data, name, max_pixels=max_pixels, gray=True)
    ext = header.ext
    height, width = int(decoded.shape[0]), int(decoded.shape[1])
    return ImageFacts(
        sha256=hashlib.sha256(data).hexdigest(),
        ext=ext,
        width=width,
        height=height,
        size=size,
        phash=dhash(decoded),
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temp_files(images_dir: Path, older_than_s: float = 3600.0) -> int:
    """Delete temp files a crash left behind; returns how many."""
    removed = 0
    if not images_dir.is_dir():
        return 0
    # Only old ones: another process sharing this data_dir (the CLI beside the daemon) may be writing right now.
    cutoff = time.time() - older_than_s
    for tmp in images_dir.glob(f"*/{TEMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
    if removed:
        log.warning("removed %s temp files left by an interrupted write in %s", removed, images_dir)
    return removed
