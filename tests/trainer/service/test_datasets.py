"""Dataset archives: good ones are read and every image decoded; bad ones are refused naming the file, keep nothing.
And a device's dataset pulled page by page from its real web API."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from edge.datasets.formats import read_dataset
from edge.datasets.model import Box
from tests.helpers.http_stub import StubServer, json_answer
from tests.trainer.service.conftest import AUTH, make_app, upload
from trainer.service.app import SCHEDULER_KEY
from trainer.service.store import JobStore


def _png(seed: int = 0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (24, 32, 3)).astype(np.uint8)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _folders_members(per_label: int = 3) -> dict[str, bytes]:
    return {
        f"{label}/{label}_{i}.png": _png(i + 10 * n)
        for n, label in enumerate(("full", "empty"))
        for i in range(per_label)
    }


def _nothing_kept(app: Flask) -> None:
    """No dataset recorded, no extracted folder and no upload file left behind."""
    store: JobStore = app.extensions["shelfwatch.trainer.store"]
    assert store.list_datasets() == []
    datasets = store.data_dir / "datasets"
    assert not datasets.exists() or list(datasets.iterdir()) == [], list(datasets.iterdir())
    uploads = store.data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_good_zip_is_validated_and_recorded(client: FlaskClient, colour_zip: bytes) -> None:
    resp = upload(client, colour_zip)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["images"] == 36 and body["format"] == "folders"
    assert sorted(body["labels"]) == ["blue", "green", "red"]
    again = client.get(f"/v1/datasets/{body['id']}", headers=AUTH).get_json()
    assert again["images"] == 36 and again["id"] == body["id"]
    assert [d["id"] for d in client.get("/v1/datasets", headers=AUTH).get_json()["items"]] == [body["id"]]


def test_multipart_tar_gz_upload_with_explicit_format(client: FlaskClient) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in _folders_members().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    resp = client.post(
        "/v1/datasets",
        headers=AUTH,
        data={"file": (io.BytesIO(buf.getvalue()), "shelf.tar.gz")},
        content_type="multipart/form-data",
        query_string={"format": "folders"},
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["images"] == 6


def test_zip_slip_member_is_refused(app: Flask, client: FlaskClient) -> None:
    members = _folders_members()
    members["../../outside.png"] = _png(99)
    resp = upload(client, _zip(members))
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert "../../outside.png" in error
    assert error.startswith("the archive: ") and "/uploads/" not in error  # no server paths in answers
    _nothing_kept(app)
    assert not (Path(app.extensions["shelfwatch.trainer.store"].data_dir).parent / "outside.png").exists()


def test_symlink_member_is_refused(app: Flask, client: FlaskClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in _folders_members().items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("full/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    resp = upload(client, buf.getvalue())
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert "full/link.png" in error and "link" in error.lower()
    _nothing_kept(app)


def test_truncated_zip_is_refused(app: Flask, client: FlaskClient, colour_zip: bytes) -> None:
    resp = upload(client, colour_zip[: len(colour_zip) // 2])
    assert resp.status_code == 400
    assert resp.get_json()["error"]
    _nothing_kept(app)


def test_corrupt_image_is_named(app: Flask, client: FlaskClient) -> None:
    members = _folders_members()
    members["empty/broken.png"] = _png(5)[:40]  # header intact, data cut short
    resp = upload(client, _zip(members))
    assert resp.status_code == 400
    assert "empty/broken.png" in resp.get_json()["error"]
    _nothing_kept(app)


def test_not_an_image_is_named(app: Flask, client: FlaskClient) -> None:
    members = _folders_members()
    members["full/notes.jpg"] = b"this is not a JPEG at all"
    resp = upload(client, _zip(members))
    assert resp.status_code == 400
    assert "full/notes.jpg" in resp.get_json()["error"]
    _nothing_kept(app)


def test_unknown_format_is_refused(app: Flask, client: FlaskClient) -> None:
    resp = upload(client, _zip({"readme.txt": b"hello", "data/values.bin": b"\x00\x01"}))
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert "cannot tell the dataset format of the archive" in error and "pass ?format=" in error
    assert str(app.extensions["shelfwatch.trainer.store"].data_dir) not in error
    _nothing_kept(app)


def test_empty_upload_is_refused(app: Flask, client: FlaskClient) -> None:
    resp = upload(client, b"")
    assert resp.status_code == 400 and "empty" in resp.get_json()["error"]
    _nothing_kept(app)


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_too_large_archive_is_413(tmp_path: Path, colour_zip: bytes, multipart: bool) -> None:
    app = make_app(tmp_path / "t", server={"max_archive_mb": 0.05})
    try:
        client = app.test_client()
        big = colour_zip + b"\0" * (2 * 1024 * 1024)  # over the limit plus the multipart allowance
        if multipart:
            resp = client.post(
                "/v1/datasets",
                headers=AUTH,
                data={"file": (io.BytesIO(big), "big.zip")},
                content_type="multipart/form-data",
            )
        else:
            resp = upload(client, big)
        assert resp.status_code == 413
        assert "limit" in resp.get_json()["error"]
        _nothing_kept(app)
    finally:
        app.extensions[SCHEDULER_KEY].stop()


def test_archive_just_over_the_limit_without_multipart_slack_is_413(tmp_path: Path) -> None:
    app = make_app(tmp_path / "t", server={"max_archive_mb": 0.01})
    try:
        client = app.test_client()
        members = {f"full/f{i}.png": _png(i) for i in range(8)} | {f"empty/e{i}.png": _png(50 + i) for i in range(8)}
        data = _zip(members)
        assert len(data) > 0.01 * 1024 * 1024
        resp = upload(client, data)
        assert resp.status_code == 413
        _nothing_kept(app)
    finally:
        app.extensions[SCHEDULER_KEY].stop()


def test_unknown_dataset_is_404(client: FlaskClient) -> None:
    resp = client.get("/v1/datasets/ds-nope", headers=AUTH)
    assert resp.status_code == 404 and "ds-nope" in resp.get_json()["error"]


# ------------------------------------------------------------------------------------------ pull from a device


@pytest.fixture
def device(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real device web API (store, accounts, werkzeug server) holding 10 tagged and 2 untagged images."""
    from edge.config import EdgeConfig
    from edge.store import DatasetStore
    from edge.web import Services, create_app
    from edge.web.server import WebServer

    config = EdgeConfig(data_dir=tmp_path / "device")
    store = DatasetStore(config.data_dir, config.dataset)
    services = Services(store=store)
    app = create_app(config, services)
    assert services.users is not None
    user = services.users.create("admin", "correct horse battery", is_admin=True)
    token, _ = services.users.issue_token(user.id, "trainer")
    store.create_label("empty", "shelf gap")
    store.create_label("full")
    records = store.add_images([(f"img{i}.png", _png(200 + i)) for i in range(12)])
    for i, record in enumerate(records[:10]):
        label = "empty" if i % 2 else "full"
        boxes = [Box("empty", 0.1, 0.2, 0.5, 0.6)] if i == 1 else []
        store.set_annotations(record.id, [label], boxes)
    server = WebServer(app).start()
    try:
        yield server.url + "/api/v1", token
    finally:
        server.stop()
        store.close()


def test_pull_from_device_pages_through_tagged_images(app: Flask, client: FlaskClient, device: tuple[str, str]) -> None:
    url, token = device
    resp = client.post("/v1/datasets", headers=AUTH, json={"source": {"url": url, "token": token, "page_size": 3}})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["images"] == 10 and body["format"] == "coco"
    assert body["labels"][:2] == ["empty", "full"]
    store: JobStore = app.extensions["shelfwatch.trainer.store"]
    ds = read_dataset(store.get_dataset(body["id"]).path, "coco")
    tags = sorted(t for s in ds.samples for t in s.tags)
    assert tags == ["empty"] * 5 + ["full"] * 5
    boxes = [b for s in ds.samples for b in s.boxes]
    assert len(boxes) == 1 and boxes[0].label == "empty" and abs(boxes[0].x2 - 0.5) < 1e-3


def test_pull_with_a_bad_device_token_is_refused_and_keeps_nothing(
    app: Flask, client: FlaskClient, device: tuple[str, str]
) -> None:
    url, _ = device
    resp = client.post("/v1/datasets", headers=AUTH, json={"source": {"url": url, "token": "nope"}})
    assert resp.status_code == 400
    assert "401" in resp.get_json()["error"]
    _nothing_kept(app)


def test_pull_request_is_validated(client: FlaskClient) -> None:
    resp = client.post("/v1/datasets", headers=AUTH, json={"source": {"url": "file:///etc", "token": "x"}})
    assert resp.status_code == 400 and "http" in resp.get_json()["error"]
    resp = client.post("/v1/datasets", headers=AUTH, json={"source": {"url": "http://x/api/v1"}})
    assert resp.status_code == 400 and "token" in resp.get_json()["error"]


@pytest.mark.parametrize(
    ("labels", "images", "message"),
    [
        ({"items": [{"title": "empty"}]}, {"items": [], "total": 0}, "label list is malformed"),
        ({"items": [{"name": "empty"}]}, {"items": [{"name": "img0.png"}], "total": 1}, "has no numeric id"),
        ({"items": []}, {"items": ["img0.png"], "total": 1}, "has no numeric id"),
    ],
)
def test_pull_from_a_device_answering_malformed_records_is_400(
    app: Flask, client: FlaskClient, labels: dict[str, Any], images: dict[str, Any], message: str
) -> None:
    answers = {"labels": labels, "images": images}

    with StubServer(lambda path: json_answer(200, answers["labels" if "/labels" in path else "images"])) as device:
        resp = client.post("/v1/datasets", headers=AUTH, json={"source": {"url": f"{device.url}/api/v1", "token": "t"}})
    assert resp.status_code == 400 and message in resp.get_json()["error"]
    _nothing_kept(app)
