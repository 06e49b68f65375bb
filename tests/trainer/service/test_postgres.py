"""The job store on a real PostgreSQL (initdb + pg_ctl on a free port): the same contract as on SQLite, shared by
two API replicas, with a job run by a real worker process that reaches the store through the environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.trainer.service.conftest import AUTH, make_app, upload, wait_for_state
from tests.trainer.service.servers import PostgresServer
from trainer.service.app import SCHEDULER_KEY, STORE_KEY
from trainer.service.store import DatasetRecord, JobStore, now_iso

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def _fresh(postgres: PostgresServer, tmp_path: Path) -> JobStore:
    store = JobStore(tmp_path / "pg", postgres.url)
    with store.engine.begin() as conn:  # each test starts with empty tables
        conn.exec_driver_sql("DELETE FROM jobs")
        conn.exec_driver_sql("DELETE FROM datasets")
    return store


def test_store_contract_on_postgres(postgres: PostgresServer, tmp_path: Path) -> None:
    store = _fresh(postgres, tmp_path)
    other = JobStore(tmp_path / "pg2", postgres.url)  # a second process's view (another replica)
    record = DatasetRecord("ds-1", now_iso(), "folders", 3, ["a", "b"], tmp_path / "d", "upload")
    store.add_dataset(record)
    assert [d.id for d in other.list_datasets()] == ["ds-1"] and other.get_dataset("ds-1").labels == ["a", "b"]
    job = store.add_job("ds-1", {"epochs": 2})
    assert other.get_job(job.id).state == "queued" and other.next_queued().id == job.id  # type: ignore[union-attr]
    assert store.claim(job.id, 11, "w1") is True
    assert other.claim(job.id, 12, "w2") is False  # delivered twice, runs once
    assert other.report_progress(job.id, 11, "training", {"fraction": 0.5}, 3.0) is True
    assert store.report_progress(job.id, 12, "training", {"fraction": 0.9}, 1.0) is False  # not w2's job
    assert store.get_job(job.id).progress == {"fraction": 0.5} and store.get_job(job.id).worker == "w1"
    with pytest.raises(Exception, match="used by a queued or running job"):
        other.mark_dataset_deleted("ds-1")
    assert store.finish(job.id, "succeeded", pid=11, metrics={"accuracy": 1.0}) is True
    assert other.finish(job.id, "failed", error="late") is False  # terminal states never change
    assert other.get_job(job.id).metrics == {"accuracy": 1.0}
    second = store.add_job("ds-1", {})
    assert store.claim(second.id, 13, "w3")
    assert [j.id for j in other.fail_silent_jobs("9999-01-01T00:00:00.000Z")] == [second.id]
    assert "stopped reporting" in (store.get_job(second.id).error or "")
    other.mark_dataset_deleted("ds-1")
    assert store.list_datasets() == [] and store.get_job(job.id).dataset == "ds-1"
    with pytest.raises(Exception, match="does not exist"):
        store.add_job("ds-1", {})
    store.close()
    other.close()


def test_two_api_replicas_share_one_postgres_store(postgres: PostgresServer, tmp_path: Path, colour_zip: bytes) -> None:
    _fresh(postgres, tmp_path).close()
    shared = tmp_path / "shared"  # one data_dir volume (datasets and bundles), one job store
    store = {"job_store": {"kind": "postgresql", "url": postgres.url}}
    first: Flask = make_app(shared, **store)
    second: Flask = make_app(shared, **store)
    try:
        a, b = first.test_client(), second.test_client()
        dataset = upload(a, colour_zip).get_json()["id"]
        assert b.get(f"/v1/datasets/{dataset}", headers=AUTH).get_json()["images"] == 36
        job = b.post("/v1/jobs", headers=AUTH, json={"dataset": dataset, "task": "classification"}).get_json()
        done = wait_for_state(a, job["id"], {"succeeded", "failed", "cancelled"})
        assert done["state"] == "succeeded", done  # run once, by one replica's worker, seen by both
        assert b.get(f"/v1/jobs/{job['id']}/bundle", headers=AUTH).status_code == 200
        assert first.extensions[STORE_KEY].postgres is True
    finally:
        first.extensions[SCHEDULER_KEY].stop(terminate=True)
        second.extensions[SCHEDULER_KEY].stop(terminate=True)
