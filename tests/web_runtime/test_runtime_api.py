"""The runtime REST routes over a real agent: models, predict, events, status, metrics, and their auth."""

from __future__ import annotations

import re
import shutil
import struct
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from edge.events import EventDraft
from tests.helpers.hostile import half_jpeg_with_end_marker, tiff_declaring
from tests.helpers.tiny_bundle import solid_image
from tests.web_runtime.conftest import CAMERA_ID, Bundles, Device, jpeg, make_config, start_device, upload_file

RED = (0, 0, 255)  # BGR
GREEN = (0, 255, 0)


def install(client: FlaskClient, device: Device, tar: Path, activate: bool = True) -> dict:
    resp = client.post(
        "/api/v1/models" + ("?activate=true" if activate else ""),
        data=upload_file(tar.read_bytes(), tar.name),
        headers=device.auth,
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


# ------------------------------------------------------------------------------------------------ auth


@pytest.fixture(scope="module")
def shared_device(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles, shelf_folder: Path) -> Iterator[Device]:
    """One device for the read-only auth checks (starting an agent per case would only cost time)."""
    dev = start_device(make_config(tmp_path_factory.mktemp("auth") / "data", bundles.public_key, shelf_folder))
    try:
        yield dev
    finally:
        dev.agent.stop()


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/v1/models"),
        ("POST", "/api/v1/models"),
        ("POST", "/api/v1/models/cls-1/activate"),
        ("POST", "/api/v1/models/rollback"),
        ("GET", "/api/v1/models/cls-1/files/pr_curve.png"),
        ("POST", "/api/v1/predict"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/events/00000000-0000-4000-8000-000000000000"),
        ("GET", "/api/v1/events/00000000-0000-4000-8000-000000000000/snapshot.jpg"),
        ("GET", "/api/v1/status"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/training"),
        ("POST", "/api/v1/training"),
        ("GET", "/api/v1/training/run-x"),
        ("POST", "/api/v1/training/run-x/cancel"),
    ],
)
def test_every_runtime_route_needs_auth(shared_device: Device, method: str, url: str) -> None:
    client = shared_device.app.test_client()
    resp = client.open(url, method=method)
    assert resp.status_code == 401
    bad = client.open(url, method=method, headers={"Authorization": "Bearer sw_not-a-token"})
    assert bad.status_code == 401


@pytest.mark.parametrize("url", ["/models", "/events", "/status", "/training"])
def test_pages_redirect_anonymous_and_render_for_users(client: FlaskClient, device: Device, url: str) -> None:
    assert client.get(url).status_code == 302
    page = client.get(url, headers=device.auth)
    assert page.status_code == 200
    assert b"<h1>" in page.data and b"runtime.css" in page.data


def test_session_users_need_csrf_on_runtime_posts(client: FlaskClient, device: Device) -> None:
    login = client.get("/login")
    token = re.search(rb'name="csrf-token" content="([^"]+)"', login.data)
    assert token is not None
    resp = client.post(
        "/login",
        data={"csrf_token": token.group(1).decode(), "username": "admin", "password": "correct horse battery"},
    )
    assert resp.status_code == 302
    assert client.post("/api/v1/models/rollback").status_code == 403  # no CSRF header
    assert client.get("/api/v1/models").status_code == 200


# ------------------------------------------------------------------------------------------------ models


def test_models_upload_activate_rollback(client: FlaskClient, device: Device, bundles: Bundles) -> None:
    assert client.get("/api/v1/models", headers=device.auth).get_json()["items"] == []
    first = install(client, device, bundles.cls1_tar)
    assert first["version"] == "cls-1" and first["active"] == "cls-1"
    assert device.agent.slot.current is not None and device.agent.slot.current.version == "cls-1"

    second = install(client, device, bundles.cls2_tar, activate=False)
    assert second["active"] == "cls-1"  # installed, not running
    listed = {row["version"]: row for row in second["items"]}
    assert listed["cls-2"]["active"] is False and listed["cls-2"]["task"] == "classification"
    assert listed["cls-1"]["labels"] == ["red", "green"]

    act = client.post("/api/v1/models/cls-2/activate", headers=device.auth)
    assert act.status_code == 200
    assert act.get_json()["active"] == "cls-2" and act.get_json()["previous"] == "cls-1"
    assert device.agent.slot.current is not None and device.agent.slot.current.version == "cls-2"

    back = client.post("/api/v1/models/rollback", headers=device.auth)
    assert back.status_code == 200 and back.get_json()["active"] == "cls-1"
    assert device.agent.slot.current is not None and device.agent.slot.current.version == "cls-1"

    unknown = client.post("/api/v1/models/nope/activate", headers=device.auth)
    assert unknown.status_code == 404


def test_rollback_without_previous_is_409(client: FlaskClient, device: Device, bundles: Bundles) -> None:
    install(client, device, bundles.cls1_tar)
    resp = client.post("/api/v1/models/rollback", headers=device.auth)
    assert resp.status_code == 409
    assert "no previous" in resp.get_json()["error"]


def test_bundle_signed_by_an_untrusted_key_is_refused(client: FlaskClient, device: Device, bundles: Bundles) -> None:
    install(client, device, bundles.cls1_tar)
    resp = client.post(
        "/api/v1/models", data=upload_file(bundles.stranger_tar.read_bytes(), "evil.tar.gz"), headers=device.auth
    )
    assert resp.status_code == 400
    assert "bundle refused" in resp.get_json()["error"] and "signature" in resp.get_json()["error"]
    listing = client.get("/api/v1/models", headers=device.auth).get_json()
    assert [row["version"] for row in listing["items"]] == ["cls-1"] and listing["active"] == "cls-1"
    assert listing["last_refusal"] is not None and "signature" in listing["last_refusal"]["reason"]
    status = client.get("/api/v1/status", headers=device.auth).get_json()
    assert status["model"]["version"] == "cls-1"
    assert status["last_refusal"] is not None


def test_tampered_and_truncated_bundles_are_refused(
    client: FlaskClient, device: Device, bundles: Bundles, tmp_path: Path
) -> None:
    install(client, device, bundles.cls1_tar)
    tampered_dir = tmp_path / "tampered"
    shutil.copytree(bundles.cls2, tampered_dir)
    onnx_file = tampered_dir / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    tampered_tar = tmp_path / "tampered.tar.gz"
    with tarfile.open(tampered_tar, "w:gz") as tf:
        for path in sorted(tampered_dir.rglob("*")):
            tf.add(path, path.relative_to(tampered_dir).as_posix(), recursive=False)
    resp = client.post("/api/v1/models", data=upload_file(tampered_tar.read_bytes(), "t.tar.gz"), headers=device.auth)
    assert resp.status_code == 400
    assert "model.onnx" in resp.get_json()["error"]

    truncated = bundles.cls2_tar.read_bytes()[: len(bundles.cls2_tar.read_bytes()) // 2]
    resp = client.post("/api/v1/models", data=upload_file(truncated, "cut.tar.gz"), headers=device.auth)
    assert resp.status_code == 400

    empty = client.post("/api/v1/models", data=b"", headers=device.auth | {"Content-Type": "application/gzip"})
    assert empty.status_code == 400
    listing = client.get("/api/v1/models", headers=device.auth).get_json()
    assert [row["version"] for row in listing["items"]] == ["cls-1"] and listing["active"] == "cls-1"
    # The running model keeps answering.
    answer = client.post("/api/v1/predict", data=jpeg(solid_image(RED)), headers=device.auth)
    assert answer.status_code == 200 and answer.get_json()["label"] == "red"


def test_raw_body_upload_installs(client: FlaskClient, device: Device, bundles: Bundles) -> None:
    resp = client.post(
        "/api/v1/models?activate=1",
        data=bundles.det1_tar.read_bytes(),
        headers=device.auth | {"Content-Type": "application/gzip"},
    )
    assert resp.status_code == 201 and resp.get_json()["active"] == "det-1"


# ------------------------------------------------------------------------------------------------ predict


def test_predict_without_a_model_is_409(client: FlaskClient, device: Device) -> None:
    resp = client.post("/api/v1/predict", data=upload_file(jpeg(solid_image(RED)), "a.jpg"), headers=device.auth)
    assert resp.status_code == 409
    assert "no model is active" in resp.get_json()["error"]


def test_predict_classification(client: FlaskClient, device: Device, bundles: Bundles) -> None:
    install(client, device, bundles.cls1_tar)
    red = client.post("/api/v1/predict", data=upload_file(jpeg(solid_image(RED)), "red.jpg"), headers=device.auth)
    assert red.status_code == 200
    body = red.get_json()
    assert body["label"] == "red" and body["score"] > 0.9
    assert set(body["label_scores"]) == {"red", "green"}
    assert abs(sum(body["label_scores"].values()) - 1.0) < 1e-4
    assert body["model"]["version"] == "cls-1"
    green = client.post("/api/v1/predict", data=jpeg(solid_image(GREEN)), headers=device.auth)  # raw body
    assert green.status_code == 200 and green.get_json()["label"] == "green"


def test_predict_detection(client: FlaskClient, device: Device, bundles: Bundles) -> None:
    install(client, device, bundles.det1_tar)
    image = np.full((64, 64, 3), 230, dtype=np.uint8)
    image[:, :32] = 0  # the left half is dark: "empty" there
    resp = client.post("/api/v1/predict", data=upload_file(jpeg(image), "shelf.jpg"), headers=device.auth)
    assert resp.status_code == 200
    detections = resp.get_json()["detections"]
    empty = [d for d in detections if d["label"] == "empty"]
    assert len(empty) == 1 and empty[0]["score"] > 0.9
    x1, _, x2, _ = empty[0]["bbox"]
    assert x2 <= 0.55 and 0.0 <= x1 < x2
    strict = client.post("/api/v1/predict?threshold=0.999", data=jpeg(image), headers=device.auth)
    assert all(d["score"] >= 0.999 for d in strict.get_json()["detections"])


def test_predict_bad_input(client: FlaskClient, device: Device, bundles: Bundles) -> None:
    install(client, device, bundles.cls1_tar)
    garbage = client.post("/api/v1/predict", data=upload_file(b"not an image", "x.jpg"), headers=device.auth)
    assert garbage.status_code == 400 and "not a supported image" in garbage.get_json()["error"]
    empty = client.post("/api/v1/predict", data=b"", headers=device.auth)
    assert empty.status_code == 400
    no_field = client.post("/api/v1/predict", data={"other": "x"}, headers=device.auth)
    assert no_field.status_code == 400 and "'file'" in no_field.get_json()["error"]
    bad_threshold = client.post("/api/v1/predict?threshold=2", data=jpeg(solid_image(RED)), headers=device.auth)
    assert bad_threshold.status_code == 400
    # A 160 KB PNG declaring 56 million pixels (the limit is 50 million) is refused from its header, not decoded.
    bomb = client.post("/api/v1/predict", data=png_declaring(8000, 7000), headers=device.auth)
    assert bomb.status_code == 413 and "8000x7000 pixels" in bomb.get_json()["error"]
    # A deflate TIFF declaring 30000x30000 answered 200 after 17 s at 5.5 GB: its header is read like the others.
    tiff = client.post("/api/v1/predict", data=tiff_declaring(30000, 30000, complete=False), headers=device.auth)
    assert tiff.status_code == 413 and "30000x30000 pixels" in tiff.get_json()["error"]
    half = client.post("/api/v1/predict", data=half_jpeg_with_end_marker(), headers=device.auth)
    assert half.status_code == 400 and "truncated or corrupt" in half.get_json()["error"]


def png_declaring(width: int, height: int) -> bytes:
    """A valid black RGB PNG of width x height, compressed row by row (never held decoded in memory)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = bytes(1 + width * 3)  # filter byte + black pixels
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------------------------ events


def _record(device: Device, zone: str, phase: str, with_snapshot: bool = True) -> str:
    event = device.agent.events.record(
        EventDraft(phase, CAMERA_ID, zone, "empty", 0.91, (0.1, 0.2, 0.3, 0.4), "2026-11-21T12:00:00Z", "m", "v1")
    )
    if with_snapshot:
        device.agent.snapshots.save(event.id, solid_image((10, 200, 10), 80, 60))
    return event.id


def test_events_list_filters_pages_and_snapshots(client: FlaskClient, device: Device) -> None:
    ids = [_record(device, "top", "start"), _record(device, "low", "start"), _record(device, "top", "end", False)]
    everything = client.get("/api/v1/events", headers=device.auth).get_json()
    assert everything["total"] == 3
    assert [e["id"] for e in everything["items"]] == ids[::-1]  # newest first
    assert everything["items"][0]["has_snapshot"] is False and everything["items"][1]["has_snapshot"] is True

    top = client.get("/api/v1/events?zone=top", headers=device.auth).get_json()
    assert {e["id"] for e in top["items"]} == {ids[0], ids[2]} and top["total"] == 2
    starts = client.get("/api/v1/events?phase=start&camera=aisle-1", headers=device.auth).get_json()
    assert {e["id"] for e in starts["items"]} == {ids[0], ids[1]}
    page2 = client.get("/api/v1/events?page=2&page_size=2", headers=device.auth).get_json()
    assert [e["id"] for e in page2["items"]] == [ids[0]] and page2["total"] == 3
    assert client.get("/api/v1/events?phase=middle", headers=device.auth).status_code == 400
    assert client.get("/api/v1/events?page=0", headers=device.auth).status_code == 400

    one = client.get(f"/api/v1/events/{ids[1]}", headers=device.auth).get_json()
    assert one["zone"] == "low" and one["snapshot"] == f"/api/v1/events/{ids[1]}/snapshot.jpg"
    snap = client.get(one["snapshot"], headers=device.auth)
    assert snap.status_code == 200 and snap.mimetype == "image/jpeg" and snap.data[:2] == b"\xff\xd8"
    assert client.get(f"/api/v1/events/{ids[2]}/snapshot.jpg", headers=device.auth).status_code == 404
    assert client.get("/api/v1/events/nope", headers=device.auth).status_code == 404
    assert client.get("/api/v1/events/..%2F..%2Fetc/snapshot.jpg", headers=device.auth).status_code == 404


# ------------------------------------------------------------------------------------------------ status, metrics


def test_status_reports_device_cameras_model_and_mqtt(client: FlaskClient, device: Device, bundles: Bundles) -> None:
    before = client.get("/api/v1/status", headers=device.auth).get_json()
    assert before["device"] == device.config.device_id and before["model"] is None
    install(client, device, bundles.det1_tar)
    status = client.get("/api/v1/status", headers=device.auth).get_json()
    assert status["runtime"] == "running"
    assert status["model"]["version"] == "det-1" and status["model"]["engine"] == "onnxruntime"
    assert status["model"]["precision"] == "fp32"
    assert status["mqtt"] == {"enabled": False, "connected": False, "outbox": 0}
    cams = {c["id"]: c for c in status["cameras"]}
    assert CAMERA_ID in cams and "fps" in cams[CAMERA_ID]["capture"] and "dropped" in cams[CAMERA_ID]["capture"]
    assert "evaluated_fps" in cams[CAMERA_ID]["pipeline"]
    assert status["training"] is None


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$")


def parse_prometheus(text: str) -> dict[str, list[tuple[str, float]]]:
    """Samples by metric name; fails on any line that is not valid exposition format."""
    samples: dict[str, list[tuple[str, float]]] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, f"{name} typed twice"
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        samples.setdefault(match.group(1), []).append((match.group(2) or "", float(match.group(3))))
    return samples


def test_metrics_prometheus_text(client: FlaskClient, device: Device, bundles: Bundles) -> None:
    install(client, device, bundles.det1_tar)
    resp = client.get("/metrics", headers=device.auth)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse_prometheus(resp.get_data(as_text=True))
    assert any('version="det-1"' in labels for labels, _ in samples["shelfwatch_model_info"])
    assert samples["shelfwatch_outbox_depth"] == [("", 0.0)]
    assert any(CAMERA_ID in labels for labels, _ in samples["shelfwatch_capture_fps"])
    assert any(CAMERA_ID in labels for labels, _ in samples["shelfwatch_evaluated_fps"])
    assert any(CAMERA_ID in labels for labels, _ in samples["shelfwatch_camera_dropped_frames_total"])
    assert samples["shelfwatch_models_installed"] == [("", 1.0)]


# ------------------------------------------------------------------------------------------------ without an agent


def test_web_without_an_agent_predicts_and_reports_from_the_repository(
    tmp_path: Path, bundles: Bundles, shelf_folder: Path
) -> None:
    from edge.model_repository import ModelRepository
    from edge.store import DatasetStore
    from edge.web import Services, create_app

    config = make_config(tmp_path / "data", bundles.public_key, shelf_folder)
    store = DatasetStore(config.data_dir, config.dataset)
    models = ModelRepository.from_config(config)
    services = Services(store=store, models=models)
    app = create_app(config, services)
    assert services.users is not None
    token, _ = services.users.issue_token(services.users.create_first_admin("admin", "long enough password").id)
    auth = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    try:
        assert client.post("/api/v1/predict", data=jpeg(solid_image(RED)), headers=auth).status_code == 409
        models.install(bundles.cls1, activate=True)
        answer = client.post("/api/v1/predict", data=jpeg(solid_image(GREEN)), headers=auth)
        assert answer.status_code == 200 and answer.get_json()["label"] == "green"
        models.install(bundles.cls2, activate=True)  # the loaded model follows the active version
        assert (
            client.post("/api/v1/predict", data=jpeg(solid_image(RED)), headers=auth).get_json()["model"]["version"]
            == "cls-2"
        )
        status = client.get("/api/v1/status", headers=auth).get_json()
        assert status["model"]["version"] == "cls-2" and status["runtime"].startswith("not running")
        samples = parse_prometheus(client.get("/metrics", headers=auth).get_data(as_text=True))
        assert samples["shelfwatch_models_installed"] == [("", 2.0)]
        assert any('version="cls-2"' in labels for labels, _ in samples["shelfwatch_model_info"])
        assert client.get("/api/v1/events", headers=auth).status_code == 503
    finally:
        store.close()
