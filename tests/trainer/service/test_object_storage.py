"""Datasets and bundles in S3-compatible object storage (a real SeaweedFS), with the job store in a real PostgreSQL:
two API replicas with data_dirs of their own (no shared disk). A dataset uploaded to one is trained by the other's
worker, which fetches it from the bucket; the bundle it uploads is served, verified, by the first; deleting the
dataset removes its objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from edge.bundle import generate_keypair, verify_bundle
from tests.trainer.service.conftest import AUTH, make_app, upload, wait_for_state
from tests.trainer.service.servers import S3_BUCKET, S3_KEY, S3_SECRET, PostgresServer, SeaweedS3
from trainer.service.app import SCHEDULER_KEY

pytestmark = pytest.mark.slow


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[SeaweedS3]:
    with SeaweedS3(tmp_path / "seaweed") as server:
        yield server


def _keys(s3: SeaweedS3, prefix: str) -> list[str]:
    client = boto3.client(
        "s3", endpoint_url=s3.endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )  # fmt: skip
    return [o["Key"] for o in client.list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix).get("Contents", [])]


def test_replicas_without_a_shared_disk_share_datasets_and_bundles(
    tmp_path: Path, s3: SeaweedS3, colour_zip: bytes
) -> None:
    key = tmp_path / "bundle-signing.key"  # several machines sign with one configured key (docs/SCALE.md)
    key.write_bytes(generate_keypair()[0])
    with PostgresServer() as postgres:
        shared = {
            "job_store": {"kind": "postgresql", "url": postgres.url},
            "storage": s3.storage(),
            "signing_key": str(key),
        }
        first = make_app(tmp_path / "replica-a", **shared)
        first.extensions[SCHEDULER_KEY].stop()  # only the second replica's worker runs jobs
        second = make_app(tmp_path / "replica-b", **shared)
        try:
            a, b = first.test_client(), second.test_client()
            dataset = upload(a, colour_zip).get_json()["id"]
            assert len(_keys(s3, f"t/datasets/{dataset}/")) == 36
            assert not (tmp_path / "replica-b" / "datasets" / dataset).exists()
            job = b.post("/v1/jobs", headers=AUTH, json={"dataset": dataset, "task": "classification"}).get_json()
            done = wait_for_state(b, job["id"], {"succeeded", "failed", "cancelled"})
            assert done["state"] == "succeeded", done
            assert (tmp_path / "replica-b" / "datasets" / dataset).is_dir()  # fetched by the worker
            assert f"t/bundles/{job['id']}.tar.gz" in _keys(s3, "t/bundles/")
            assert not (tmp_path / "replica-a" / "bundles" / job["id"]).exists()
            resp = a.get(f"/v1/jobs/{job['id']}/bundle", headers=AUTH)  # replica A fetches it from the bucket
            assert resp.status_code == 200, resp.get_data()[:300]
            archive = tmp_path / "bundle.tar.gz"
            archive.write_bytes(resp.get_data())
            key = a.get("/v1/signing-key", headers=AUTH).get_json()["public_key"]
            assert verify_bundle(archive, [key]).labels == ["blue", "green", "red"]
            assert a.get(f"/v1/jobs/{job['id']}/report", headers=AUTH).get_json()["tiny"] is True
            assert a.delete(f"/v1/datasets/{dataset}", headers=AUTH).status_code == 204
            assert _keys(s3, f"t/datasets/{dataset}/") == []
        finally:
            second.extensions[SCHEDULER_KEY].stop(terminate=True)
