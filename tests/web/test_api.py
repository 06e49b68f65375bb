"""Every API route with good and bad input, through the real app, store and folder camera."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from flask.testing import FlaskClient

from tests.helpers.store import dataset_fingerprint
from tests.web.conftest import CAMERA_ID, SignedIn, Studio, create_admin, jpeg_bytes, open_studio

BOX = {"label": "low_stock", "x1": 0.1, "y1": 0.2, "x2": 0.5, "y2": 0.6}


def upload(admin: SignedIn, *files: tuple[str, bytes]) -> Any:
    data = {"file": [(io.BytesIO(content), name) for name, content in files]}
    return admin.post("/api/v1/images", data=data, content_type="multipart/form-data")


def add_images(admin: SignedIn, count: int, first_seed: int = 0) -> list[int]:
    resp = upload(admin, *[(f"img{i}.jpg", jpeg_bytes(first_seed + i)) for i in range(count)])
    assert resp.status_code == 201, resp.json
    return [item["id"] for item in resp.json["items"]]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, shelf_folder: Path) -> Iterator[Studio]:
    """One studio for the checks that change nothing (auth, CSRF, malformed input, paths), with a label and an image."""
    with open_studio(tmp_path_factory.mktemp("shared") / "data", shelf_folder) as studio:
        studio.store.create_label("low_stock")
        studio.store.add_image(jpeg_bytes(0), filename="one.jpg")
        yield studio


@pytest.fixture(scope="module")
def shared_admin(shared: Studio) -> SignedIn:
    """The shared studio's admin, signed in."""
    return create_admin(shared.app.test_client())


def wait_frame(studio: Studio) -> None:
    capture = studio.hub.get(CAMERA_ID)
    assert capture is not None and capture.wait_frame(-1, timeout=10) is not None


# ---- authentication and CSRF on every area ------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/api/v1/cameras"),
    ("GET", f"/api/v1/cameras/{CAMERA_ID}/frame.jpg"),
    ("GET", f"/api/v1/cameras/{CAMERA_ID}/stream.mjpg"),
    ("POST", f"/api/v1/cameras/{CAMERA_ID}/capture"),
    ("GET", f"/api/v1/cameras/{CAMERA_ID}/zones"),
    ("PUT", f"/api/v1/cameras/{CAMERA_ID}/zones"),
    ("GET", "/api/v1/images"),
    ("POST", "/api/v1/images"),
    ("GET", "/api/v1/images/1"),
    ("GET", "/api/v1/images/1/file"),
    ("GET", "/api/v1/images/1/thumb.jpg"),
    ("DELETE", "/api/v1/images/1"),
    ("POST", "/api/v1/images/delete"),
    ("POST", "/api/v1/images/split"),
    ("GET", "/api/v1/images/1/annotations"),
    ("PUT", "/api/v1/images/1/annotations"),
    ("GET", "/api/v1/labels"),
    ("POST", "/api/v1/labels"),
    ("PATCH", "/api/v1/labels/x"),
    ("DELETE", "/api/v1/labels/x"),
    ("GET", "/api/v1/dataset/summary"),
    ("PUT", "/api/v1/dataset/task"),
    ("POST", "/api/v1/dataset/split"),
    ("GET", "/api/v1/dataset/export"),
    ("POST", "/api/v1/dataset/import"),
    ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/auth/tokens"),
    ("POST", "/api/v1/auth/tokens"),
    ("DELETE", "/api/v1/auth/tokens/1"),
    ("DELETE", "/api/v1/auth/token"),
]


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_api_needs_auth(shared: Studio, shared_admin: SignedIn, method: str, url: str) -> None:
    resp = shared.app.test_client().open(url, method=method, json={})
    assert resp.status_code == 401
    assert resp.json == {"error": "sign in or send a bearer token"}


@pytest.mark.parametrize("page", ["/live", "/library", "/tag", "/labels", "/review", "/zones", "/account"])
def test_pages_redirect_to_sign_in(shared: Studio, shared_admin: SignedIn, page: str) -> None:
    anon = shared.app.test_client()
    resp = anon.get(page)
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert shared_admin.get(page).status_code == 200


@pytest.mark.parametrize(("method", "url"), [(m, u) for m, u in PROTECTED if m != "GET"])
def test_unsafe_calls_need_the_csrf_token(shared_admin: SignedIn, method: str, url: str) -> None:
    missing = shared_admin.client.open(url, method=method, json={})
    wrong = shared_admin.client.open(url, method=method, json={}, headers={"X-CSRF-Token": "forged"})
    for resp in (missing, wrong):
        assert resp.status_code == 403 and "CSRF" in resp.json["error"]


def test_csrf_refusal_changes_nothing(admin: SignedIn, studio: Studio) -> None:
    resp = admin.client.post("/api/v1/labels", json={"name": "low_stock"}, headers={"X-CSRF-Token": "forged"})
    assert resp.status_code == 403
    assert studio.store.list_labels() == []


# ---- generic errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/api/v1/labels"),
        ("PATCH", "/api/v1/labels/low_stock"),
        ("PUT", "/api/v1/images/1/annotations"),
        ("PUT", f"/api/v1/cameras/{CAMERA_ID}/zones"),
        ("PUT", "/api/v1/dataset/task"),
        ("POST", "/api/v1/dataset/split"),
        ("POST", "/api/v1/images/delete"),
        ("POST", "/api/v1/images/split"),
        ("POST", "/api/v1/auth/tokens"),
    ],
)
@pytest.mark.parametrize("body", ["{not json", "", "[1, 2]", '"text"'])
def test_malformed_json_is_400(shared: Studio, shared_admin: SignedIn, method: str, url: str, body: str) -> None:
    before = dataset_fingerprint(shared.store)
    resp = shared_admin.client.open(
        url, method=method, data=body, content_type="application/json", headers={"X-CSRF-Token": shared_admin.csrf}
    )
    assert resp.status_code == 400
    assert resp.is_json and resp.json["error"]
    assert dataset_fingerprint(shared.store) == before


def test_unknown_api_route_and_method_answer_json(admin: SignedIn) -> None:
    resp = admin.get("/api/v1/nothing-here")
    assert resp.status_code == 404 and resp.is_json and "error" in resp.json
    resp = admin.put("/api/v1/images", json={})
    assert resp.status_code == 405 and resp.is_json
    page = admin.get("/no-such-page")
    assert page.status_code == 404 and "text/html" in page.content_type and "Back to the studio" in page.text


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/images/../../etc/passwd",
        "/api/v1/images/..%2F..%2Fshelfwatch.db/file",
        "/api/v1/images/1/../../../users.sqlite3",
        "/static/../__init__.py",
        "/static/..%2F__init__.py",
        "/static/%2e%2e/security.py",
        f"/api/v1/cameras/..%2F{CAMERA_ID}/frame.jpg",
        "/api/v1/labels/..%2F..%2Fetc",
    ],
)
def test_paths_with_dotdot_never_reach_files(shared_admin: SignedIn, url: str) -> None:
    resp = shared_admin.get(url)
    assert resp.status_code in (400, 404)
    assert b"import" not in resp.data and b"SQLite" not in resp.data


def test_static_files_are_public_and_local(client: FlaskClient) -> None:
    resp = client.get("/static/app.css")
    assert resp.status_code == 200 and b"--accent" in resp.data
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]


# ---- cameras and capture -------------------------------------------------------------------------------------------


def test_cameras_list_status_and_frame(admin: SignedIn, studio: Studio) -> None:
    wait_frame(studio)
    cams = admin.get("/api/v1/cameras").json
    assert [c["id"] for c in cams] == [CAMERA_ID]
    assert cams[0]["name"] == "Aisle 1" and cams[0]["status"] in ("online", "starting") and "fps" in cams[0]
    frame = admin.get(f"/api/v1/cameras/{CAMERA_ID}/frame.jpg")
    assert frame.status_code == 200 and frame.content_type == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, 480, 3)
    for url in ("/api/v1/cameras/nope", "/api/v1/cameras/nope/frame.jpg", "/api/v1/cameras/nope/stream.mjpg"):
        assert admin.get(url).status_code == 404
    assert admin.post("/api/v1/cameras/nope/capture").status_code == 404


def test_mjpeg_stream_of_a_camera_that_stops_ends(admin: SignedIn, studio: Studio) -> None:
    wait_frame(studio)
    capture = studio.hub.get(CAMERA_ID)
    assert capture is not None
    capture.stop()
    resp = admin.get(f"/api/v1/cameras/{CAMERA_ID}/stream.mjpg", buffered=False)
    parts: list[bytes] = []
    # The last frame, then the end: a stopped camera answers wait_frame at once, which used to spin forever.
    reader = threading.Thread(target=lambda: parts.extend(resp.response), daemon=True)
    reader.start()
    reader.join(timeout=30)
    ended = not reader.is_alive()
    studio.app.extensions["shelfwatch.stopping"].set()  # ends the stream if it did not end on its own
    reader.join(timeout=5)
    resp.close()
    assert ended, "the stream of a stopped camera did not end"
    assert len(parts) == 1 and parts[0].startswith(b"--shelfwatchframe")


def test_mjpeg_stream_sends_jpeg_parts(admin: SignedIn, studio: Studio) -> None:
    wait_frame(studio)
    resp = admin.get(f"/api/v1/cameras/{CAMERA_ID}/stream.mjpg", buffered=False)
    try:
        assert resp.status_code == 200 and resp.mimetype == "multipart/x-mixed-replace"
        chunks = iter(resp.response)
        first = next(chunks)
        second = next(chunks)
    finally:
        resp.close()
    for part in (first, second):
        head, _, body = part.partition(b"\r\n\r\n")
        assert head.startswith(b"--shelfwatchframe") and b"image/jpeg" in head
        assert cv2.imdecode(np.frombuffer(body[:-2], np.uint8), cv2.IMREAD_COLOR) is not None


def test_capture_stores_the_current_frame(admin: SignedIn, studio: Studio) -> None:
    wait_frame(studio)
    resp = admin.post(f"/api/v1/cameras/{CAMERA_ID}/capture")
    assert resp.status_code == 201
    body = resp.json
    assert set(body) == {"id", "sha256", "width", "height", "duplicate_of"}
    assert (body["width"], body["height"]) == (480, 360) and body["duplicate_of"] is None
    record = studio.store.get_image(body["id"])
    assert record.camera == CAMERA_ID and record.sha256 == body["sha256"]
    # The frame's own capture time is kept (what a reviewer sorts and filters by), not left empty.
    frame = studio.hub.require(CAMERA_ID).latest()
    assert frame is not None and record.captured_at is not None
    captured = datetime.fromisoformat(record.captured_at.replace("Z", "+00:00")).timestamp()
    assert abs(captured - frame.ts) < 60


def test_capture_from_a_stopped_camera_is_503(admin: SignedIn, studio: Studio) -> None:
    wait_frame(studio)
    studio.hub.stop_all()
    resp = admin.post(f"/api/v1/cameras/{CAMERA_ID}/capture")
    assert resp.status_code == 503 and "stopped" in resp.json["error"]
    assert studio.store.list_images()[1] == 0
    assert admin.get("/api/v1/cameras").json[0]["status"] == "stopped"


def test_capture_without_running_camera_is_503(admin: SignedIn, studio: Studio) -> None:
    studio.services.cameras = None
    resp = admin.post(f"/api/v1/cameras/{CAMERA_ID}/capture")
    assert resp.status_code == 503 and "not running" in resp.json["error"]
    assert studio.store.list_images()[1] == 0


def test_zones_round_trip_and_validation(admin: SignedIn, studio: Studio) -> None:
    url = f"/api/v1/cameras/{CAMERA_ID}/zones"
    assert admin.get(url).json == {"camera": CAMERA_ID, "zones": []}
    zones = [
        {"id": "top", "name": "Top shelf", "polygon": [[0, 0], [1, 0], [1, 0.3], [0, 0.3]]},
        {"id": "corner", "polygon": [[0.5, 0.5], [0.9, 0.6], [0.6, 0.9]]},
    ]
    resp = admin.put(url, json={"zones": zones})
    assert resp.status_code == 200
    assert [z["id"] for z in resp.json["zones"]] == ["top", "corner"]
    assert admin.get(url).json["zones"][0]["name"] == "Top shelf"
    assert [z.id for z in studio.store.get_zones(CAMERA_ID)] == ["top", "corner"]
    bad_bodies = [
        {"zones": [{"id": "a", "polygon": [[0, 0], [1.5, 0], [1, 1]]}]},  # outside 0..1
        {"zones": [{"id": "a", "polygon": [[0, 0], [1, 1]]}]},  # two points
        {"zones": [{"id": "Bad Id!", "polygon": [[0, 0], [1, 0], [1, 1]]}]},
        {"zones": [zones[0], zones[0]]},  # duplicate id
        {"zones": "none"},
        {},
    ]
    for body in bad_bodies:
        resp = admin.put(url, json=body)
        assert resp.status_code == 400, body
        assert resp.json["error"]
    assert [z.id for z in studio.store.get_zones(CAMERA_ID)] == ["top", "corner"]  # nothing changed
    assert admin.put("/api/v1/cameras/nope/zones", json={"zones": []}).status_code == 404
    assert admin.put(url, json={"zones": []}).json["zones"] == []


# ---- upload and library ------------------------------------------------------------------------------------------


def test_upload_one_and_many(admin: SignedIn, studio: Studio) -> None:
    resp = upload(admin, ("one.jpg", jpeg_bytes(1)))
    assert resp.status_code == 201 and resp.json["stored"] == 1
    resp = upload(admin, ("a.jpg", jpeg_bytes(2)), ("b.jpg", jpeg_bytes(3)), ("one-again.jpg", jpeg_bytes(1)))
    assert resp.status_code == 201 and resp.json["stored"] == 2
    assert resp.json["items"][2]["duplicate_of"] == resp.json["items"][2]["id"]
    assert studio.store.list_images()[1] == 3


def test_undecodable_upload_is_400_naming_the_file_and_stores_nothing(admin: SignedIn, studio: Studio) -> None:
    good = jpeg_bytes(5)
    for name, content in [
        ("notes.jpg", b"this is not an image"),
        ("truncated.jpg", good[: len(good) // 2]),
        ("empty.png", b""),
    ]:
        resp = upload(admin, ("fine.jpg", good), (name, content))
        assert resp.status_code == 400, name
        assert name in resp.json["error"]
    assert studio.store.list_images()[1] == 0


def test_oversized_uploads_are_413(admin: SignedIn, studio: Studio) -> None:
    # Over the store's per-image limit (1 MiB here): 413 naming the file.
    noise = np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", noise)
    assert ok and 1024 * 1024 < len(png.tobytes()) < 2 * 1024 * 1024
    resp = upload(admin, ("small.jpg", jpeg_bytes(1)), ("huge.png", png.tobytes()))
    assert resp.status_code == 413 and "huge.png" in resp.json["error"]
    # Over the request limit (web.max_upload_mb = 2 here): 413 before anything is read.
    resp = upload(admin, ("a.png", png.tobytes()), ("b.png", png.tobytes()))
    assert resp.status_code == 413 and "limit" in resp.json["error"]
    assert studio.store.list_images()[1] == 0


def test_upload_without_file_is_400(admin: SignedIn) -> None:
    resp = admin.post("/api/v1/images", data={"other": "x"}, content_type="multipart/form-data")
    assert resp.status_code == 400 and "'file'" in resp.json["error"]


def test_upload_keeps_only_the_base_name(admin: SignedIn, studio: Studio) -> None:
    resp = upload(admin, ("../../etc/evil.jpg", jpeg_bytes(7)))
    assert resp.status_code == 201
    assert studio.store.get_image(resp.json["items"][0]["id"]).filename == "evil.jpg"


def test_library_paging_and_filters(admin: SignedIn, studio: Studio) -> None:
    ids = add_images(admin, 5)
    studio.store.create_label("low_stock")
    studio.store.create_label("none")
    assert admin.put(f"/api/v1/images/{ids[0]}/annotations", json={"tags": ["none"]}).status_code == 200
    assert admin.put(f"/api/v1/images/{ids[1]}/annotations", json={"boxes": [BOX]}).status_code == 200
    page = admin.get("/api/v1/images?page=1&page_size=2").json
    assert page["total"] == 5 and page["page_size"] == 2 and len(page["items"]) == 2
    assert page["items"][0]["id"] == ids[-1]  # newest first
    assert admin.get("/api/v1/images?page=3&page_size=2").json["items"][0]["id"] == ids[0]
    assert admin.get("/api/v1/images?tagged=true").json["total"] == 2
    assert admin.get("/api/v1/images?tagged=false").json["total"] == 3
    assert [i["id"] for i in admin.get("/api/v1/images?label=low_stock").json["items"]] == [ids[1]]
    assert admin.get("/api/v1/images?order=oldest&page_size=1").json["items"][0]["id"] == ids[0]
    for bad in ("page=0", "page=x", "page_size=100000", "tagged=maybe", "split=holdout", "order=random"):
        resp = admin.get(f"/api/v1/images?{bad}")
        assert resp.status_code == 400, bad
    assert admin.get("/api/v1/images?label=nope").status_code == 404


def test_image_detail_file_thumb_and_delete(admin: SignedIn, studio: Studio) -> None:
    (image_id,) = add_images(admin, 1)
    detail = admin.get(f"/api/v1/images/{image_id}").json
    assert detail["width"] == 320 and detail["tagged"] is False
    file = admin.get(f"/api/v1/images/{image_id}/file")
    assert file.status_code == 200 and file.content_type == "image/jpeg" and file.data == jpeg_bytes(0)
    thumb = admin.get(f"/api/v1/images/{image_id}/thumb.jpg")
    assert thumb.status_code == 200 and cv2.imdecode(np.frombuffer(thumb.data, np.uint8), 1).shape[1] == 320
    for url in ("/api/v1/images/999", "/api/v1/images/999/file", "/api/v1/images/999/thumb.jpg"):
        assert admin.get(url).status_code == 404
    assert admin.get("/api/v1/images/abc").status_code == 404
    assert admin.delete("/api/v1/images/999").status_code == 404
    thumbs = list((studio.config.data_dir / "web_thumbs").iterdir())
    assert [p.name for p in thumbs] == [f"{detail['sha256']}.jpg"]
    assert admin.delete(f"/api/v1/images/{image_id}").json["deleted"] == 1  # (+ "trash": its trash entry)
    assert admin.get(f"/api/v1/images/{image_id}").status_code == 404
    assert not thumbs[0].exists()  # the cached thumbnail goes with the image


HUGE_ID = 2**70  # past SQLite's INTEGER range


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", f"/api/v1/images/{HUGE_ID}", None, 404),
        ("GET", f"/api/v1/images/{HUGE_ID}/thumb.jpg", None, 404),
        ("PUT", f"/api/v1/images/{HUGE_ID}/annotations", {"tags": []}, 404),
        ("DELETE", f"/api/v1/images/{HUGE_ID}", None, 404),
        ("DELETE", f"/api/v1/auth/tokens/{HUGE_ID}", None, 404),
        ("POST", "/api/v1/images/delete", {"ids": [HUGE_ID]}, 400),
        ("POST", "/api/v1/images/split", {"ids": [HUGE_ID], "split": "train"}, 400),
    ],
)
def test_ids_past_the_database_range_are_a_clear_4xx(
    shared_admin: SignedIn, method: str, url: str, body: Any, status: int
) -> None:
    resp = shared_admin.client.open(url, method=method, json=body, headers={"X-CSRF-Token": shared_admin.csrf})
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert "error" in resp.json


def test_thumbnails_made_on_several_threads_at_once_all_succeed(tmp_path: Path) -> None:
    from edge.web.images import _make_thumb

    source = tmp_path / "photo.jpg"
    source.write_bytes(jpeg_bytes(3))
    target = tmp_path / "thumbs" / "photo.jpg"
    errors: list[BaseException] = []

    def make() -> None:
        try:
            _make_thumb(source, target)
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    for _ in range(10):  # each round races four writers of the same thumbnail
        threads = [threading.Thread(target=make) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert [p.name for p in target.parent.iterdir()] == ["photo.jpg"]  # no temp file left behind
    assert cv2.imdecode(np.fromfile(target, np.uint8), 1).shape[1] == 320


def test_thumbnail_of_an_image_whose_file_is_gone_is_404(admin: SignedIn, studio: Studio) -> None:
    (image_id,) = add_images(admin, 1)
    studio.store.image_path(image_id).unlink()
    resp = admin.get(f"/api/v1/images/{image_id}/thumb.jpg")
    assert resp.status_code == 404 and "missing" in resp.json["error"]


def test_bulk_delete_and_split(admin: SignedIn, studio: Studio) -> None:
    ids = add_images(admin, 4)
    assert admin.post("/api/v1/images/split", json={"ids": ids[:2], "split": "test"}).status_code == 200
    assert {studio.store.get_image(i).split for i in ids[:2]} == {"test"}
    assert admin.post("/api/v1/images/split", json={"ids": ids, "split": "holdout"}).status_code == 400
    assert admin.post("/api/v1/images/split", json={"ids": [999], "split": "train"}).status_code == 404
    assert admin.post("/api/v1/images/delete", json={"ids": []}).status_code == 400
    assert admin.post("/api/v1/images/delete", json={"ids": ["x"]}).status_code == 400
    assert admin.post("/api/v1/images/delete", json={"ids": [*ids[:3], 999]}).json["deleted"] == 3
    assert studio.store.list_images()[1] == 1


# ---- annotations -------------------------------------------------------------------------------------------------


def test_annotations_round_trip(admin: SignedIn, studio: Studio) -> None:
    (image_id,) = add_images(admin, 1)
    studio.store.create_label("low_stock")
    studio.store.create_label("none")
    body = {"tags": ["none"], "boxes": [BOX, {**BOX, "x1": 0.0, "x2": 1.0}]}
    resp = admin.put(f"/api/v1/images/{image_id}/annotations", json=body)
    assert resp.status_code == 200
    got = admin.get(f"/api/v1/images/{image_id}/annotations").json
    assert got["tags"] == ["none"] and got["boxes"][0] == BOX and len(got["boxes"]) == 2
    cleared = {"tags": [], "boxes": [], "nothing_to_box": False}
    assert admin.put(f"/api/v1/images/{image_id}/annotations", json={}).json == cleared
    # A photo with nothing to box: tagged without boxes; boxes with the mark are a 400 that changes nothing.
    marked = admin.put(f"/api/v1/images/{image_id}/annotations", json={"nothing_to_box": True})
    assert marked.status_code == 200 and marked.json["nothing_to_box"] is True
    assert admin.get(f"/api/v1/images/{image_id}").json["tagged"] is True
    refused = admin.put(f"/api/v1/images/{image_id}/annotations", json={"nothing_to_box": True, "boxes": [BOX]})
    assert refused.status_code == 400 and "nothing_to_box" in refused.json["error"]
    assert admin.get(f"/api/v1/images/{image_id}/annotations").json["nothing_to_box"] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"boxes": [{**BOX, "x2": 1.2}]}, "less than or equal to 1"),
        ({"boxes": [{**BOX, "y1": -0.1}]}, "greater than or equal to 0"),
        ({"boxes": [{**BOX, "x1": 0.6}]}, "x1=0.6 must be less than x2=0.5"),
        ({"boxes": [{**BOX, "y2": 0.2}]}, "y1"),
        ({"boxes": [{**BOX, "x1": "left"}]}, "x1"),
        ({"boxes": [{"label": "low_stock"}]}, "x1"),
        ({"boxes": [{**BOX, "label": "ghost"}]}, "ghost"),
        ({"tags": ["ghost"]}, "ghost"),
        ({"tags": "low_stock"}, "tags"),
    ],
)
def test_bad_annotations_are_400_and_keep_the_old_ones(
    admin: SignedIn, studio: Studio, body: dict[str, Any], message: str
) -> None:
    (image_id,) = add_images(admin, 1)
    studio.store.create_label("low_stock")
    assert admin.put(f"/api/v1/images/{image_id}/annotations", json={"boxes": [BOX]}).status_code == 200
    resp = admin.put(f"/api/v1/images/{image_id}/annotations", json=body)
    assert resp.status_code == 400
    assert message in resp.json["error"]
    assert len(studio.store.get_annotations(image_id).boxes) == 1


def test_annotations_of_unknown_image_are_404(admin: SignedIn, studio: Studio) -> None:
    studio.store.create_label("low_stock")
    assert admin.get("/api/v1/images/999/annotations").status_code == 404
    assert admin.put("/api/v1/images/999/annotations", json={"boxes": [BOX]}).status_code == 404


# ---- labels ------------------------------------------------------------------------------------------------------


def test_labels_create_rename_describe_delete(admin: SignedIn, studio: Studio) -> None:
    listing = admin.get("/api/v1/labels").json
    assert listing["items"] == [] and listing["has_other"] is False
    assert listing["suggested_other"]["name"] == "none"
    resp = admin.post("/api/v1/labels", json={"name": "low", "description": "shelf area with gaps"})
    assert resp.status_code == 201 and resp.json["description"] == "shelf area with gaps" and resp.json["color"]
    assert admin.post("/api/v1/labels", json={"name": "LOW"}).status_code == 409
    assert admin.post("/api/v1/labels", json={"name": ""}).status_code == 400
    assert admin.post("/api/v1/labels", json={"name": "a/b"}).status_code == 400
    assert admin.post("/api/v1/labels", json={"name": "x", "color": "red"}).status_code == 400
    assert admin.post("/api/v1/labels", json={"name": "none"}).status_code == 201
    assert admin.get("/api/v1/labels").json["has_other"] is True

    (image_id,) = add_images(admin, 1)
    boxed = admin.put(f"/api/v1/images/{image_id}/annotations", json={"boxes": [{**BOX, "label": "low"}]})
    assert boxed.status_code == 200
    renamed = admin.patch("/api/v1/labels/low", json={"name": "low_stock", "description": "gaps"})
    assert renamed.status_code == 200 and renamed.json["name"] == "low_stock" and renamed.json["boxes"] == 1
    assert studio.store.get_annotations(image_id).boxes[0].label == "low_stock"
    assert admin.get("/api/v1/labels/low_stock").json["description"] == "gaps"
    assert admin.patch("/api/v1/labels/low_stock", json={"name": "none"}).status_code == 409
    assert admin.patch("/api/v1/labels/ghost", json={"description": "x"}).status_code == 404
    assert admin.get("/api/v1/labels/ghost").status_code == 404

    in_use = admin.delete("/api/v1/labels/low_stock")
    assert in_use.status_code == 409 and "used by" in in_use.json["error"]
    assert studio.store.get_label("low_stock").boxes == 1
    assert admin.delete("/api/v1/labels/low_stock?force=true").status_code == 200
    assert studio.store.get_annotations(image_id).boxes == []
    assert admin.delete("/api/v1/labels/ghost").status_code == 404


# ---- dataset: summary, task, split, export, import -----------------------------------------------------------


def tag_dataset(admin: SignedIn, studio: Studio, count: int = 16) -> list[int]:
    ids = add_images(admin, count)
    studio.store.create_label("low_stock")
    studio.store.create_label("none")
    for n, image_id in enumerate(ids):
        tag = "low_stock" if n % 2 else "none"
        body: dict[str, Any] = {"tags": [tag], "boxes": [BOX] if n < 4 else []}
        assert admin.put(f"/api/v1/images/{image_id}/annotations", json=body).status_code == 200
    return ids


def test_summary_verdict_turns_ready(admin: SignedIn, studio: Studio) -> None:
    empty = admin.get("/api/v1/dataset/summary").json
    assert empty["ready"] is False and empty["images"] == 0 and empty["problems"]
    tag_dataset(admin, studio)
    assert admin.put("/api/v1/dataset/task", json={"task": "classification"}).status_code == 200
    summary = admin.get("/api/v1/dataset/summary").json
    assert summary["task"] == "classification" and summary["ready"] is True and summary["problems"] == []
    # 8 images tagged low_stock, plus 2 tagged none that carry a low_stock box (an image counts for every label it
    # carries, as a tag or on a box).
    assert summary["per_label"]["low_stock"]["images"] == 10 and summary["tagged"] == 16
    detection = admin.put("/api/v1/dataset/task", json={"task": "detection"}).json
    # The 4 low_stock boxes meet this fixture's detection minimum; the `none` tag marks negative photos and needs
    # no boxes of its own (issue 11: it used to block the detector with "label 'none' has 0 boxes").
    assert detection["ready"] is True and not any("'none'" in p for p in detection["problems"]), detection
    assert admin.get("/api/v1/dataset/summary?task=classification").json["ready"] is True
    assert admin.put("/api/v1/dataset/task", json={"task": "segmentation"}).status_code == 400
    assert admin.get("/api/v1/dataset/summary?task=segmentation").status_code == 400


def test_auto_split(admin: SignedIn, studio: Studio) -> None:
    tag_dataset(admin, studio, 10)
    resp = admin.post("/api/v1/dataset/split", json={"test_fraction": 0.2})
    assert resp.status_code == 200
    splits = resp.json["summary"]["splits"]
    assert splits["auto"] == 0 and splits["train"] == 8 and splits["test"] == 2
    assert admin.post("/api/v1/dataset/split", json={"test_fraction": 1.5}).status_code == 400


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "csv", "folders"])
def test_export_zip_per_format(admin: SignedIn, studio: Studio, fmt: str) -> None:
    tag_dataset(admin, studio, 4)
    resp = admin.get(f"/api/v1/dataset/export?format={fmt}")
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert f"dataset-{fmt}.zip" in resp.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
    assert sum(n.endswith(".jpg") for n in names) == 4
    assert not any(n.startswith("/") or ".." in n for n in names)


def test_export_coco_contents_match(admin: SignedIn, studio: Studio) -> None:
    tag_dataset(admin, studio, 6)
    with zipfile.ZipFile(io.BytesIO(admin.get("/api/v1/dataset/export?format=coco").data)) as zf:
        (ann_name,) = [n for n in zf.namelist() if n.endswith(".json")]
        coco = json.loads(zf.read(ann_name))
    assert {c["name"] for c in coco["categories"]} == {"low_stock", "none"}
    assert len(coco["images"]) == 6 and len(coco["annotations"]) >= 4


def test_export_bad_format_is_400(admin: SignedIn) -> None:
    for fmt in ("pdf", "../coco", ""):
        resp = admin.get(f"/api/v1/dataset/export?format={fmt}")
        assert resp.status_code == 400 and "format" in resp.json["error"]


def _import(admin: SignedIn, name: str, content: bytes, fmt: str = "auto") -> Any:
    data = {"file": (io.BytesIO(content), name), "format": fmt}
    return admin.post("/api/v1/dataset/import", data=data, content_type="multipart/form-data")


def test_import_round_trip_from_export(admin: SignedIn, studio: Studio, tmp_path: Any) -> None:
    tag_dataset(admin, studio, 5)
    exported = admin.get("/api/v1/dataset/export?format=yolo").data
    studio.store.delete_images([r.id for r in studio.store.list_images()[0]])
    resp = _import(admin, "back.zip", exported, "yolo")
    assert resp.status_code == 201, resp.json
    assert resp.json["imported"]["images"] == 5 and resp.json["format"] == "yolo"
    assert studio.store.summary()["per_label"]["low_stock"]["boxes"] == 4
    again = _import(admin, "back.zip", exported)  # detected; nothing new
    assert again.status_code == 201 and again.json["imported"]["images"] == 0 and again.json["format"] == "yolo"


def _tar_with(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_bad_archives_are_400_naming_the_problem(admin: SignedIn, studio: Studio) -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("../escape.jpg", jpeg_bytes(1))
    cases = [
        ("escape.zip", zipped.getvalue(), ".."),
        ("escape.tar.gz", _tar_with("../../evil.txt", b"x"), ".."),
        ("garbage.zip", b"PK\x03\x04 not really a zip", "garbage.zip"),
        ("notes.txt", b"hello", "expected a .zip or .tar.gz"),
        ("empty.zip", _empty_zip(), "empty.zip"),
    ]
    for name, content, message in cases:
        resp = _import(admin, name, content)
        assert resp.status_code == 400, (name, resp.json)
        assert message in resp.json["error"], resp.json
        assert "shelfwatch-import-" not in resp.json["error"]  # names the upload, not a temp folder
    assert _import(admin, "x.zip", _empty_zip(), fmt="pdf").status_code == 400
    resp = admin.post("/api/v1/dataset/import", data={"format": "coco"}, content_type="multipart/form-data")
    assert resp.status_code == 400
    assert studio.store.list_images()[1] == 0 and studio.store.list_labels() == []


def _empty_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w"):
        pass
    return buf.getvalue()


def test_pages_render_for_a_signed_in_user(admin: SignedIn, studio: Studio) -> None:
    tag_dataset(admin, studio, 2)
    live = admin.get("/live").text
    assert "Aisle 1" in live and f"/api/v1/cameras/{CAMERA_ID}/stream.mjpg" in live and "Capture" in live
    tag_page = admin.get("/tag").text
    assert '"name": "low_stock"' in tag_page and "<canvas" in tag_page
    assert "Train" in admin.get("/review").text
    assert admin.get("/tag/999").status_code == 404
    assert admin.get("/zones/nope").status_code == 404
    assert admin.get("/").headers["Location"].endswith("/live")
