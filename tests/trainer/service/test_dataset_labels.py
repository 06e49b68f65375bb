"""The trainer's /v1/datasets refuses what the device refuses: alias bombs in data.yaml, label names the device's
own rule (edge.store.validation.check_label_name) rejects, images declaring too many pixels."""

from __future__ import annotations

import io
import zipfile

from flask import Flask
from flask.testing import FlaskClient

from edge.store.validation import MAX_LABEL_NAME
from tests.helpers.hostile import tiff_declaring, yaml_alias_bomb, yolo_zip_with
from tests.trainer.service.conftest import upload
from trainer.service.store import JobStore


def _nothing_kept(app: Flask) -> None:
    store: JobStore = app.extensions["shelfwatch.trainer.store"]
    assert store.list_datasets() == []
    datasets = store.data_dir / "datasets"
    assert not datasets.exists() or list(datasets.iterdir()) == []


def test_a_yolo_zip_whose_data_yaml_nests_aliases_is_400_and_stores_nothing(app: Flask, client: FlaskClient) -> None:
    # The zip nested aliases 8 deep: 201 after 10 s at 1.9 GB, multi-MB label names in trainer.db.
    resp = upload(client, yolo_zip_with(yaml_alias_bomb(depth=8, width=10)), format="yolo")
    assert resp.status_code == 400
    assert "aliases (*name) are not allowed" in resp.get_json()["error"]
    _nothing_kept(app)


def test_label_names_are_checked_as_the_device_checks_them(app: Flask, client: FlaskClient) -> None:
    long_name = "x" * (MAX_LABEL_NAME + 1)
    resp = upload(client, yolo_zip_with(f"names: [{long_name}, ok]\n"), format="yolo")
    assert resp.status_code == 400
    assert f"longer than {MAX_LABEL_NAME} characters" in resp.get_json()["error"]
    resp = upload(client, yolo_zip_with('names: ["a/b", ok]\n'), format="yolo")
    assert resp.status_code == 400 and "must not contain '/'" in resp.get_json()["error"]
    _nothing_kept(app)
    ok = upload(client, yolo_zip_with("names: [gap, ok]\n"), format="yolo")
    assert ok.status_code == 201 and ok.get_json()["labels"] == ["gap", "ok"]


def test_a_tiff_declaring_900_million_pixels_is_413_from_its_header(app: Flask, client: FlaskClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("empty/bomb.tif", tiff_declaring(30000, 30000, complete=False))
        zf.writestr("full/ok.tif", tiff_declaring(40, 30))
    resp = upload(client, buf.getvalue(), format="folders")
    assert resp.status_code == 413 and "30000x30000 pixels" in resp.get_json()["error"]
    _nothing_kept(app)
