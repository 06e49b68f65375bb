"""Jobs through the API: queued -> stages -> succeeded with a downloadable verified bundle; cancel; bad requests.
Most use the injected tiny runner (real worker process, real signed bundle); one runs the real run_training."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from edge.bundle import verify_bundle
from tests.trainer.service.conftest import AUTH, make_app, upload, wait_for_state
from trainer.service.app import SCHEDULER_KEY
from trainer.service.store import JobStore


def _dataset(client: FlaskClient, colour_zip: bytes) -> str:
    resp = upload(client, colour_zip)
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def _job(client: FlaskClient, dataset: str, **params: object) -> dict:
    resp = client.post("/v1/jobs", headers=AUTH, json={"dataset": dataset, "task": "classification", **params})
    assert resp.status_code == 201, resp.get_json()
    return dict(resp.get_json())


def _verify_download(client: FlaskClient, job_id: str, tmp_path: Path) -> object:
    resp = client.get(f"/v1/jobs/{job_id}/bundle", headers=AUTH)
    assert resp.status_code == 200 and resp.mimetype == "application/gzip"
    archive = tmp_path / f"{job_id}.tar.gz"
    archive.write_bytes(resp.get_data())
    key = client.get("/v1/signing-key", headers=AUTH).get_json()["public_key"]
    return verify_bundle(archive, [key])


def test_job_runs_to_success_with_progress_and_a_verified_bundle(
    client: FlaskClient, colour_zip: bytes, tmp_path: Path
) -> None:
    dataset = _dataset(client, colour_zip)
    job = _job(client, dataset, epochs=5, seed=3, name="aisle-7")
    assert job["state"] == "queued" and job["params"]["seed"] == 3 and "data" not in job["params"]
    done = wait_for_state(client, job["id"], {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded", done
    assert done["metrics"] == {"accuracy": 1.0, "steps": 5}
    assert done["warnings"] == ["tiny runner: not a trained model"]
    assert done["progress"]["fraction"] == 1.0 and done["eta_seconds"] is None and done["error"] is None
    manifest = _verify_download(client, job["id"], tmp_path)
    assert manifest.name == "aisle-7" and manifest.labels == ["blue", "green", "red"]  # type: ignore[attr-defined]
    report = client.get(f"/v1/jobs/{job['id']}/report", headers=AUTH)
    assert report.status_code == 200 and report.get_json()["tiny"] is True
    html = client.get(f"/v1/jobs/{job['id']}/report?format=html", headers=AUTH)
    assert html.status_code == 200 and html.mimetype == "text/html" and b"tiny report" in html.get_data()
    listed = client.get("/v1/jobs?state=succeeded", headers=AUTH).get_json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_cancel_a_running_job_stops_it_and_leaves_no_bundle(app: Flask, client: FlaskClient, colour_zip: bytes) -> None:
    dataset = _dataset(client, colour_zip)
    job = _job(client, dataset, epochs=1000)  # 50 s of steps: only a cancel ends it within the wait
    running = wait_for_state(client, job["id"], {"training"}, until=lambda j: bool(j["progress"].get("epoch")))
    assert running["progress"]["stage"] == "training" and running["progress"]["epochs"] == 1000
    resp = client.post(f"/v1/jobs/{job['id']}/cancel", headers=AUTH)
    assert resp.status_code == 202 and resp.get_json()["cancel_requested"] is True
    done = wait_for_state(client, job["id"], {"succeeded", "failed", "cancelled"}, timeout=60)
    assert done["state"] == "cancelled" and done["error"] == "cancelled on request"
    assert done["progress"]["epoch"] < 1000
    store: JobStore = app.extensions["shelfwatch.trainer.store"]
    bundles = store.data_dir / "bundles"
    assert not (bundles / job["id"]).exists()
    assert [p.name for p in bundles.iterdir() if p.name != "keys"] == []  # no staging leftovers either
    assert client.get(f"/v1/jobs/{job['id']}/bundle", headers=AUTH).status_code == 409


def test_cancel_a_queued_job_and_the_queue_goes_on(client: FlaskClient, colour_zip: bytes) -> None:
    dataset = _dataset(client, colour_zip)
    first = _job(client, dataset, epochs=1000)
    second = _job(client, dataset, epochs=2)
    third = _job(client, dataset, epochs=2)
    wait_for_state(client, first["id"], {"training"})
    cancelled = client.post(f"/v1/jobs/{second['id']}/cancel", headers=AUTH).get_json()
    assert cancelled["state"] == "cancelled" and "before it started" in cancelled["error"]
    client.post(f"/v1/jobs/{first['id']}/cancel", headers=AUTH)
    assert wait_for_state(client, first["id"], {"cancelled", "failed", "succeeded"})["state"] == "cancelled"
    assert wait_for_state(client, third["id"], {"cancelled", "failed", "succeeded"})["state"] == "succeeded"
    # cancelling a finished job changes nothing
    again = client.post(f"/v1/jobs/{third['id']}/cancel", headers=AUTH).get_json()
    assert again["state"] == "succeeded"


def test_failing_job_reports_the_reason(app: Flask, client: FlaskClient, colour_zip: bytes) -> None:
    import shutil

    dataset = _dataset(client, colour_zip)
    store: JobStore = app.extensions["shelfwatch.trainer.store"]
    shutil.rmtree(store.get_dataset(dataset).path)  # the data vanished from the server's disk
    job = _job(client, dataset, epochs=1)
    done = wait_for_state(client, job["id"], {"succeeded", "failed", "cancelled"})
    assert done["state"] == "failed"
    assert "does not exist" in done["error"]
    assert client.get(f"/v1/jobs/{job['id']}/bundle", headers=AUTH).status_code == 409


def test_bad_job_requests(client: FlaskClient, colour_zip: bytes) -> None:
    dataset = _dataset(client, colour_zip)
    cases = [
        ({"dataset": dataset, "task": "segmentation"}, 400, "task"),
        ({"dataset": dataset, "task": "classification", "learning_rate": 3}, 400, "learning_rate"),
        ({"dataset": dataset, "task": "classification", "epochs": 0}, 400, "epochs"),
        ({"dataset": dataset, "task": "classification", "weights": "/etc/shadow"}, 400, "weights"),
        ({"dataset": dataset, "task": "classification", "name": "../x"}, 400, "name"),
        ({"dataset": "ds-missing", "task": "classification"}, 404, "ds-missing"),
    ]
    for body, status, word in cases:
        resp = client.post("/v1/jobs", headers=AUTH, json=body)
        assert resp.status_code == status, (body, resp.get_json())
        assert word in resp.get_json()["error"], resp.get_json()
    assert client.get("/v1/jobs/job-nope", headers=AUTH).status_code == 404
    assert client.get("/v1/jobs?state=dreaming", headers=AUTH).status_code == 400
    assert client.get("/v1/jobs", headers=AUTH).get_json()["items"] == []


@pytest.mark.slow
def test_real_training_job_end_to_end(tmp_path: Path, colour_zip: bytes) -> None:
    """trainer.pipeline.run_training in the worker: random-init squeezenet at 64 px, two views per image."""
    app = make_app(tmp_path / "t", runner=None)
    try:
        client = app.test_client()
        dataset = _dataset(client, colour_zip)
        job = _job(client, dataset, backbone="squeezenet1_1", weights="none", input_size=64, views=2, seed=1)
        seen_states: set[str] = set()
        done = wait_for_state(client, job["id"], {"succeeded", "failed", "cancelled"}, timeout=280)
        seen_states.add(done["state"])
        assert done["state"] == "succeeded", done
        assert done["metrics"]["accuracy"] >= 0.6  # chance is 0.33
        assert any("RANDOM INITIALISATION" in w for w in done["warnings"])
        manifest = _verify_download(client, job["id"], tmp_path)
        assert manifest.labels == ["blue", "green", "red"]  # type: ignore[attr-defined]
        assert manifest.base.weights == "random"  # type: ignore[attr-defined]
        report = client.get(f"/v1/jobs/{job['id']}/report", headers=AUTH).get_json()
        assert report["metrics"]["accuracy"] == done["metrics"]["accuracy"]
        with tarfile.open(tmp_path / f"{job['id']}.tar.gz") as tar:
            assert {"manifest.json", "manifest.sig", "model.onnx", "report.html"} <= set(tar.getnames())
    finally:
        app.extensions[SCHEDULER_KEY].stop()
