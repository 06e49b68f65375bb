"""The one image intake (edge.datasets.imaging): Pillow headers, allow-list, pixel limits before decoding, damage."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from edge.datasets.imaging import decode_image, image_size, read_header
from edge.errors import DatasetError, ImageError, ImageTooLargeError
from tests.datasets.conftest import write_image
from tests.helpers.hostile import DECLARING, half_jpeg_with_end_marker, pgm_declaring, small_image

LIMIT = 50_000_000


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp", ".tiff"])
def test_header_size_matches_the_written_image(tmp_path: Path, suffix: str) -> None:
    path = write_image(tmp_path / f"x{suffix}", width=37, height=23)
    assert image_size(path) == (37, 23)
    header, pixels = decode_image(path.read_bytes(), path.name, max_pixels=LIMIT)
    assert (header.width, header.height) == (37, 23) and pixels.shape == (23, 37, 3)


def test_truncated_or_foreign_files_are_refused(tmp_path: Path) -> None:
    jpeg = write_image(tmp_path / "x.jpg", width=37, height=23)
    jpeg.write_bytes(jpeg.read_bytes()[:10])
    with pytest.raises(DatasetError, match=r"x\.jpg"):
        image_size(jpeg)
    text = tmp_path / "y.png"
    text.write_text("not an image")
    with pytest.raises(DatasetError, match=r"y\.png: not a supported image"):
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
    with pytest.raises(DatasetError, match=r"x\.bmp"):
        image_size(path)


@pytest.mark.parametrize("ext", sorted(DECLARING))
def test_every_accepted_format_declaring_too_many_pixels_is_refused_from_its_header(tmp_path: Path, ext: str) -> None:
    # A few hundred bytes that declare 16000x16000 (256 MB of pixels; a WebP frame header cannot say more):
    # refused as too large, never handed to a decoder. Before Pillow read the headers, TIFF went to the decoder.
    from edge.store.images import validate_image

    data = DECLARING[ext](16000, 16000)
    assert len(data) < 100_000
    assert read_header(DECLARING[ext](9000, 9000), "big").width == 9000  # headers alone are read fine
    with pytest.raises(ImageTooLargeError, match=r"bomb: (16000x16000|256000000) pixels is over the limit of 50000000"):
        decode_image(data, "bomb", max_pixels=LIMIT)
    with pytest.raises(ImageTooLargeError, match=r"bomb\.\w+: (16000x16000|256000000) pixels"):
        validate_image(data, f"bomb.{ext}", max_image_mb=20, max_pixels=LIMIT)
    path = tmp_path / f"bomb.{ext}"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=r"bomb\.\w+: (16000x16000|256000000) pixels is over the limit of 50000000"):
        image_size(path, max_pixels=LIMIT)
    # Without a caller's limit, Pillow's ceiling (twice Image.MAX_IMAGE_PIXELS) still refuses it.
    with pytest.raises(DatasetError, match=r"bomb\.\w+: (16000x16000|256000000) pixels is over the limit of 200000000"):
        image_size(path)


def test_formats_off_the_allow_list_never_reach_a_decoder(tmp_path: Path) -> None:
    # OpenCV decodes PGM (and EXR, HDR, JPEG 2000, ...); the readers used to hand unknown types to cv2.imread.
    pgm = pgm_declaring(40, 1)
    assert cv2.imdecode(np.frombuffer(pgm, np.uint8), cv2.IMREAD_UNCHANGED).shape == (1, 40)
    path = tmp_path / "x.jpg"
    path.write_bytes(pgm)
    with pytest.raises(DatasetError, match=r"x\.jpg: not a supported image"):
        image_size(path)
    gif = io.BytesIO()
    Image.new("L", (8, 8)).save(gif, "GIF")
    for data in (pgm, gif.getvalue()):
        with pytest.raises(ImageError, match="not a supported image"):
            decode_image(data, "x", max_pixels=LIMIT)


def test_half_a_jpeg_with_an_end_marker_is_refused_and_trailing_bytes_are_accepted() -> None:
    from edge.store.images import validate_image

    with pytest.raises(ImageError, match=r"half\.jpg: the JPEG could not be decoded: truncated or corrupt"):
        validate_image(half_jpeg_with_end_marker(), "half.jpg", max_image_mb=1, max_pixels=LIMIT)
    whole = small_image(".jpg", 120, 90)
    trailing = whole + b"camera trailer bytes after the end marker" * 4
    facts = validate_image(trailing, "trailer.jpg", max_image_mb=1, max_pixels=LIMIT)
    assert (facts.width, facts.height) == (120, 90)
    assert facts.phash == validate_image(whole, "whole.jpg", max_image_mb=1, max_pixels=LIMIT).phash


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_opencv_applies_it(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, size=(30, 50, 3), dtype=np.uint8), (0, 0), 3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", exif=exif, quality=95)
    data = buf.getvalue()
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    _, pixels = decode_image(data, "x.jpg", max_pixels=LIMIT)
    assert pixels.shape == expected.shape
    assert np.abs(pixels.astype(int) - expected).max() <= 2
    _, gray = decode_image(data, "x.jpg", max_pixels=LIMIT, gray=True)
    assert gray.shape == expected.shape[:2]
