"""Image intake: format sniffing, header sizes, truncation, limits, hashes, atomic writes."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import cv2
import pytest

from edge.datasets.imaging import read_header
from edge.errors import ImageError, ImageTooLargeError
from edge.store.images import TEMP_PREFIX, remove_stale_temp_files, validate_image, write_atomic
from tests.store.helpers import encode, image_array, image_bytes

LIMITS = {"max_image_mb": 1.0, "max_pixels": 200_000}


@pytest.mark.parametrize(("ext", "sniffed"), [(".jpg", "jpg"), (".png", "png"), (".bmp", "bmp"), (".webp", "webp")])
def test_every_supported_format_is_sniffed_sized_and_decoded(ext: str, sniffed: str) -> None:
    data = image_bytes(1, ext, width=70, height=30)
    header = read_header(data, f"a{ext}")
    assert (header.ext, header.width, header.height) == (sniffed, 70, 30)
    facts = validate_image(data, f"a{ext}", **LIMITS)
    assert (facts.ext, facts.width, facts.height, facts.size) == (sniffed, 70, 30, len(data))
    assert len(facts.sha256) == 64


def test_tiff_is_sized_from_its_header_and_decoded() -> None:
    data = image_bytes(2, ".tiff", width=20, height=10)
    assert read_header(data, "a.tif").ext == "tif"
    assert validate_image(data, "a.tif", **LIMITS).width == 20


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is not an image", "not a supported image"),
        (b"GIF89a" + b"\x00" * 50, "not a supported image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "header is damaged"),
    ],
)
def test_non_images_are_refused_with_the_file_name(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=rf"bad\.jpg: .*{message}"):
        validate_image(data, "bad.jpg", **LIMITS)


def test_truncated_jpeg_and_png_are_refused() -> None:
    jpeg = image_bytes(3, ".jpg")
    with pytest.raises(ImageError, match="truncated"):
        validate_image(jpeg[: len(jpeg) // 2], "half.jpg", **LIMITS)
    png = image_bytes(3, ".png")
    with pytest.raises(ImageError, match=r"half\.png"):
        validate_image(png[: len(png) // 2], "half.png", **LIMITS)


def test_corrupt_pixel_data_is_refused() -> None:
    png = bytearray(image_bytes(4, ".png"))
    png[60:200] = b"\x00" * 140  # the compressed IDAT stream, header and IEND intact
    with pytest.raises(ImageError, match="could not be decoded"):
        validate_image(bytes(png), "broken.png", **LIMITS)


def test_file_size_and_pixel_limits_raise_image_too_large() -> None:
    data = image_bytes(5, ".png", width=100, height=100)
    with pytest.raises(ImageTooLargeError, match=r"big\.png: .* MiB"):
        validate_image(data, "big.png", max_image_mb=len(data) / 2 / 1024 / 1024, max_pixels=10**6)
    with pytest.raises(ImageTooLargeError, match=r"big\.png: 100x100 pixels"):
        validate_image(data, "big.png", max_image_mb=1.0, max_pixels=9_999)
    assert issubclass(ImageTooLargeError, ImageError)


def test_decompression_bomb_is_refused_from_the_header_before_decoding() -> None:
    # A PNG header that claims 100000 x 100000 pixels followed by nothing: refused on the size, not on decoding.
    png = bytearray(image_bytes(6, ".png"))
    png[16:24] = (100_000).to_bytes(4, "big") * 2
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")  # a real bomb carries a valid IHDR checksum
    with pytest.raises(ImageTooLargeError, match="100000x100000"):
        validate_image(bytes(png), "bomb.png", **LIMITS)


def test_perceptual_hash_survives_reencoding_and_brightening_but_separates_different_images() -> None:
    base = validate_image(image_bytes(7), "a.jpg", **LIMITS)
    brighter = validate_image(encode(cv2.add(image_array(7), 30), ".png"), "b.png", **LIMITS)
    other = validate_image(image_bytes(8), "c.jpg", **LIMITS)
    assert base.sha256 != brighter.sha256
    assert (base.phash ^ brighter.phash).bit_count() <= 4
    assert (base.phash ^ other.phash).bit_count() > 10


def test_write_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "ab" / "file.bin"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_stale_temp_files_are_swept_but_fresh_ones_kept(tmp_path: Path) -> None:
    folder = tmp_path / "ab"
    folder.mkdir()
    stale, fresh = folder / f"{TEMP_PREFIX}old", folder / f"{TEMP_PREFIX}new"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (0, 0))
    assert remove_stale_temp_files(tmp_path) == 1
    assert not stale.exists() and fresh.exists()
