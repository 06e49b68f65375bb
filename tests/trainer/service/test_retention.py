"""Deleting datasets: DELETE /v1/datasets/<id> removes files and record (409 while a job uses it), and the
retention sweep deletes datasets unused for `retention.datasets_days`, never one a job still needs."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask.testing import FlaskClient

from tests.trainer.service.conftest import AUTH, make_app, upload, wait_for_state
from trainer.service.app import SCHEDULER_KEY, STORE_KEY
from trainer.service.retention import sweep_datasets
from trainer.service.store import DB_NAME, JobStore


def _dataset(client: FlaskClient, data: bytes) -> str:
    resp = upload(client, data)
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def test_delete_removes_files_and_record_and_refuses_new_jobs(client: FlaskClient, colour_zip: bytes) -> None:
    store: JobStore = client.application.extensions[STORE_KEY]
    dataset = _dataset(client, colour_zip)
    folder = store.data_dir / "datasets" / dataset
    assert folder.is_dir()
    resp = client.delete(f"/v1/datasets/{dataset}", headers=AUTH)
    assert resp.status_code == 204, resp.get_data()
    assert not folder.exists()
    assert client.get(f"/v1/datasets/{dataset}", headers=AUTH).status_code == 404
    assert client.get("/v1/datasets", headers=AUTH).get_json()["items"] == []
    again = client.delete(f"/v1/datasets/{dataset}", headers=AUTH)
    assert again.status_code == 404 and dataset in again.get_json()["error"]
    job = client.post("/v1/jobs", headers=AUTH, json={"dataset": dataset, "task": "classification"})
    assert job.status_code == 404
    assert client.delete("/v1/datasets/ds-nope", headers=AUTH).status_code == 404
    assert client.delete(f"/v1/datasets/{dataset}").status_code == 401


def test_delete_refused_while_a_job_uses_it_then_allowed(client: FlaskClient, colour_zip: bytes) -> None:
    dataset = _dataset(client, colour_zip)
    job = client.post(
        "/v1/jobs", headers=AUTH, json={"dataset": dataset, "task": "classification", "epochs": 400}
    ).get_json()
    wait_for_state(client, job["id"], {"training"})
    refused = client.delete(f"/v1/datasets/{dataset}", headers=AUTH)
    assert refused.status_code == 409 and "job" in refused.get_json()["error"]
    assert client.get(f"/v1/datasets/{dataset}", headers=AUTH).status_code == 200
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=AUTH)
    wait_for_state(client, job["id"], {"cancelled"})
    assert client.delete(f"/v1/datasets/{dataset}", headers=AUTH).status_code == 204
    # The job history still names the deleted dataset.
    assert client.get(f"/v1/jobs/{job['id']}", headers=AUTH).get_json()["dataset"] == dataset


def test_retention_sweep_deletes_only_old_unused_datasets(tmp_path: Path, colour_zip: bytes) -> None:
    app = make_app(tmp_path / "trainer", retention={"datasets_days": 7})
    try:
        client = app.test_client()
        store: JobStore = app.extensions[STORE_KEY]
        old, trained, fresh = (_dataset(client, colour_zip) for _ in range(3))
        job = client.post("/v1/jobs", headers=AUTH, json={"dataset": trained, "task": "classification"}).get_json()
        wait_for_state(client, job["id"], {"succeeded"})
        ten_days_ago = (datetime.now(UTC) - timedelta(days=10)).isoformat().replace("+00:00", "Z")
        with sqlite3.connect(store.data_dir / DB_NAME) as db:
            db.execute("UPDATE datasets SET created = ? WHERE id IN (?, ?)", (ten_days_ago, old, trained))
        assert sweep_datasets(store, 7) == [old]  # `trained` was used by a job 0 days ago
        assert {d.id for d in store.list_datasets()} == {fresh, trained}
        assert not (store.data_dir / "datasets" / old).exists()
        later = datetime.now(UTC) + timedelta(days=8)
        assert set(sweep_datasets(store, 7, now=later)) == {trained, fresh}
        assert store.list_datasets() == []
    finally:
        app.extensions[SCHEDULER_KEY].stop(terminate=True)


def test_schema_1_database_gains_the_deleted_column(tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / DB_NAME) as db:
        db.executescript(
            "CREATE TABLE datasets (id TEXT PRIMARY KEY, created TEXT NOT NULL, format TEXT NOT NULL, "
            "images INTEGER NOT NULL, labels TEXT NOT NULL, path TEXT NOT NULL, source TEXT NOT NULL);"
            "INSERT INTO datasets VALUES ('ds-1', '2026-01-01T00:00:00.000Z', 'folders', 3, '[\"a\"]', '/x', 'upload');"
            "PRAGMA user_version = 1;"
        )
    store = JobStore(data_dir)
    assert [d.id for d in store.list_datasets()] == ["ds-1"]
    store.mark_dataset_deleted("ds-1")
    assert store.list_datasets() == []
