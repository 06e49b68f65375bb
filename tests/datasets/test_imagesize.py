"""Image sizes from file headers (no decoding), for every type the formats accept."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.datasets.imagesize import image_size
from edge.errors import DatasetError
from tests.datasets.conftest import write_image


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp", ".tiff"])
def test_header_size_matches_the_written_image(tmp_path: Path, suffix: str) -> None:
    path = write_image(tmp_path / f"x{suffix}", width=37, height=23)
    assert image_size(path) == (37, 23)


def test_truncated_or_foreign_files_are_refused(tmp_path: Path) -> None:
    jpeg = write_image(tmp_path / "x.jpg", width=37, height=23)
    jpeg.write_bytes(jpeg.read_bytes()[:10])
    with pytest.raises(DatasetError, match=r"x\.jpg"):
        image_size(jpeg)
    text = tmp_path / "y.png"
    text.write_text("not an image")
    with pytest.raises(DatasetError, match=r"y\.png cannot be decoded"):
        image_size(text)


def test_stray_bytes_before_a_jpeg_marker_are_skipped_by_reader_and_store(tmp_path: Path) -> None:
    from edge.store.images import validate_image

    jpeg = write_image(tmp_path / "x.jpg", width=37, height=23).read_bytes()
    # libjpeg decodes a file with junk between segments (with a warning); neither size reader may refuse it.
    first_segment_end = 4 + int.from_bytes(jpeg[4:6], "big")  # SOI, then APP0 with its length
    padded = jpeg[:first_segment_end] + b"\x00\x00\x00" + jpeg[first_segment_end:]
    assert cv2.imdecode(np.frombuffer(padded, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (23, 37)
    path = tmp_path / "padded.jpg"
    path.write_bytes(padded)
    assert image_size(path) == (37, 23)
    facts = validate_image(padded, "padded.jpg", max_image_mb=1, max_pixels=10_000)
    assert (facts.width, facts.height) == (37, 23)


def test_a_bmp_declaring_a_negative_width_is_refused(tmp_path: Path) -> None:
    path = write_image(tmp_path / "x.bmp", width=37, height=23)
    data = bytearray(path.read_bytes())
    data[18:22] = (-37).to_bytes(4, "little", signed=True)
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"invalid size -37x23"):
        image_size(path)
