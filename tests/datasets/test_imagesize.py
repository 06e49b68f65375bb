"""Image sizes from file headers (no decoding), for every type the formats accept."""

from __future__ import annotations

from pathlib import Path

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
