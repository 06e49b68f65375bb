"""Hostile images through the device's upload: refused by header before decoding, damage told apart from trailers."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from edge.config.model import MAX_ZONES_PER_CAMERA
from tests.helpers.hostile import half_jpeg_with_end_marker, small_image, tiff_declaring
from tests.web.conftest import CAMERA_ID, SignedIn, Studio


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


def _import(admin: SignedIn, name: str, content: bytes) -> Any:
    data = {"file": (io.BytesIO(content), name), "format": "coco"}
    return admin.post("/api/v1/dataset/import", data=data, content_type="multipart/form-data")


def _coco_zip(doc: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("annotations.json", json.dumps(doc))
        zf.writestr("a.jpg", small_image(".jpg", 64, 48))
    return buf.getvalue()


GOOD_COCO = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 20, 20]}],
    "categories": [{"id": 1, "name": "gap"}],
}


def test_import_file_names_with_nul_or_300_characters_are_400(admin: SignedIn, studio: Studio) -> None:
    for name in ("bad\x00name.zip", "x" * 300 + ".zip"):
        resp = _import(admin, name, _coco_zip(GOOD_COCO))
        assert resp.status_code == 201, (name[:20], resp.json)  # our own name on disk: the client's is a label
    bad = _import(admin, "x" * 300 + ".zip", _coco_zip({**GOOD_COCO, "images": [{"id": [1], "file_name": "a.jpg"}]}))
    assert bad.status_code == 400 and "'id' must be an integer or a string" in bad.json["error"]
    assert len(bad.json["error"]) < 400  # the 300-character name is shortened in the message


def test_coco_with_malformed_shapes_is_400_naming_the_problem(admin: SignedIn, studio: Studio) -> None:
    before = studio.store.list_images()[1]
    seg = {**GOOD_COCO, "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [1, 2, 3]}]}
    resp = _import(admin, "seg.zip", _coco_zip(seg))
    assert resp.status_code == 400 and "'segmentation' must be a list of polygons" in resp.json["error"]
    ids = {**GOOD_COCO, "annotations": [{"id": 1, "image_id": [1], "category_id": 1, "bbox": [1, 1, 2, 2]}]}
    resp = _import(admin, "ids.zip", _coco_zip(ids))
    assert resp.status_code == 400 and "'image_id' must be an integer or a string" in resp.json["error"]
    assert studio.store.list_images()[1] == before


def test_the_zone_count_per_camera_is_capped(admin: SignedIn, studio: Studio) -> None:
    def zones(n: int) -> dict[str, Any]:
        return {"zones": [{"id": f"z{i}", "polygon": [[0, 0], [0.5, 0], [0.5, 1]]} for i in range(n)]}

    url = f"/api/v1/cameras/{CAMERA_ID}/zones"
    too_many = admin.put(url, json=zones(MAX_ZONES_PER_CAMERA + 1))
    assert too_many.status_code == 400 and f"at most {MAX_ZONES_PER_CAMERA}" in too_many.json["error"]
    assert admin.put(url, json=zones(MAX_ZONES_PER_CAMERA)).status_code == 200
