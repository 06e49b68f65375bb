"""Hostile images through the device's upload: refused by header before decoding, damage told apart from trailers."""

from __future__ import annotations

import io
from typing import Any

from tests.helpers.hostile import half_jpeg_with_end_marker, small_image, tiff_declaring
from tests.web.conftest import SignedIn, Studio


def upload(admin: SignedIn, *files: tuple[str, bytes]) -> Any:
    data = {"file": [(io.BytesIO(content), name) for name, content in files]}
    return admin.post("/api/v1/images", data=data, content_type="multipart/form-data")


def test_a_tiff_declaring_900_million_pixels_is_413_from_its_header(admin: SignedIn, studio: Studio) -> None:
    # The 930 KB deflate TIFF of 30000x30000 took 6 s and 1.95 GB before its 413; the header says enough.
    resp = upload(admin, ("bomb.tif", tiff_declaring(30000, 30000, complete=False)))
    assert resp.status_code == 413
    assert "bomb.tif: 30000x30000 pixels is over the limit" in resp.json["error"]
    assert studio.store.list_images()[1] == 0


def test_half_a_jpeg_is_refused_and_a_jpeg_with_a_trailer_is_stored(admin: SignedIn, studio: Studio) -> None:
    half = upload(admin, ("half.jpg", half_jpeg_with_end_marker()))
    assert half.status_code == 400 and "half.jpg: the JPEG could not be decoded" in half.json["error"]
    trailer = upload(admin, ("trailer.jpg", small_image(".jpg", 64, 48) + b"\x00maker notes after EOI" * 3))
    assert trailer.status_code == 201 and trailer.json["stored"] == 1
    assert studio.store.list_images()[1] == 1


def test_more_files_than_the_form_allows_says_so_not_too_large(admin: SignedIn, studio: Studio) -> None:
    tiny = small_image(".jpg", 8, 8)
    resp = upload(admin, *[(f"i{n}.jpg", tiny) for n in range(1001)])
    assert resp.status_code == 413
    error = resp.json["error"]
    assert "more than 1000 files" in error and "MiB" not in error
    assert studio.store.list_images()[1] == 0
