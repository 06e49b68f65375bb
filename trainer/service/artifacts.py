"""Where datasets and bundles live: the local data_dir (default), or S3-compatible object storage shared by API
replicas and workers on other machines (`storage: {kind: s3, ...}`, boto3).

With object storage the data_dir is a cache: the replica that ingests a dataset uploads its folder under
`<prefix>datasets/<id>/`; a worker that trains on it downloads it into its own data_dir first (once: a folder is
renamed into place only when complete); the worker uploads the finished bundle under `<prefix>bundles/<job>/` and
its archive as `<prefix>bundles/<job>.tar.gz`; the replica that serves `GET /v1/jobs/<id>/bundle` or `/report`
downloads them when it does not have them. Deleting a dataset deletes its objects too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from edge.errors import NotFoundError, ShelfwatchError

log = logging.getLogger(__name__)

STORAGE_ENV = "SHELFWATCH_STORAGE"  # how the local queue hands the S3 settings (with secrets) to its workers
DATASETS_DIR = "datasets"
BUNDLES_DIR = "bundles"


class StorageError(ShelfwatchError):
    """The object storage cannot be reached or refused an operation (HTTP 503: try again)."""

    http_status = 503


class Artifacts(Protocol):
    """The operations the service and the workers need on datasets and bundles."""

    remote: bool

    def publish_dataset(self, dataset_id: str) -> None:
        """Make data_dir/datasets/<id> available to every replica and worker."""

    def ensure_dataset(self, dataset_id: str) -> Path:
        """The local folder data_dir/datasets/<id>, fetched when it is not here."""
        ...

    def delete_dataset(self, dataset_id: str) -> None:
        """Remove the dataset's shared copy."""

    def publish_bundle(self, job_id: str, bundle_dir: Path) -> None:
        """Make a finished bundle available to every replica."""

    def ensure_bundle(self, job_id: str) -> Path:
        """The local bundle folder data_dir/bundles/<job>, fetched when it is not here."""
        ...


class LocalArtifacts:
    """Everything stays in data_dir (one machine, or a volume every process mounts)."""

    remote = False

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def publish_dataset(self, dataset_id: str) -> None:
        """Already where everyone reads it."""

    def ensure_dataset(self, dataset_id: str) -> Path:
        return self.data_dir / DATASETS_DIR / dataset_id

    def delete_dataset(self, dataset_id: str) -> None:
        """The folder is removed by the caller."""

    def publish_bundle(self, job_id: str, bundle_dir: Path) -> None:
        """Already where everyone reads it."""

    def ensure_bundle(self, job_id: str) -> Path:
        return self.data_dir / BUNDLES_DIR / job_id


class S3Artifacts:
    """Datasets and bundles in one bucket of an S3-compatible object store; data_dir is the local cache."""

    remote = True

    def __init__(self, data_dir: Path, settings: dict[str, Any]) -> None:
        import boto3
        from botocore.config import Config

        self.data_dir = data_dir
        self.settings = settings
        self.bucket = settings["bucket"]
        self.prefix = settings.get("prefix", "")
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.get("endpoint_url"),
            aws_access_key_id=settings.get("access_key_id"),
            aws_secret_access_key=settings.get("secret_access_key"),
            region_name=settings.get("region") or "us-east-1",
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
        )

    @classmethod
    def from_env(cls, data_dir: Path) -> S3Artifacts | None:
        """The S3 settings a local-queue worker got from its API process, if any."""
        raw = os.environ.get(STORAGE_ENV)
        return cls(data_dir, json.loads(raw)) if raw else None

    def env(self) -> dict[str, str]:
        """The environment that lets a worker process open the same storage."""
        return {STORAGE_ENV: json.dumps(self.settings)}

    # --- datasets ---

    def publish_dataset(self, dataset_id: str) -> None:
        self._upload_tree(self.data_dir / DATASETS_DIR / dataset_id, f"{self.prefix}{DATASETS_DIR}/{dataset_id}/")

    def ensure_dataset(self, dataset_id: str) -> Path:
        return self._ensure_tree(DATASETS_DIR, dataset_id)

    def delete_dataset(self, dataset_id: str) -> None:
        keys = self._keys(f"{self.prefix}{DATASETS_DIR}/{dataset_id}/")
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[start : start + 1000]]
            self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})

    # --- bundles ---

    def publish_bundle(self, job_id: str, bundle_dir: Path) -> None:
        from edge.bundle import pack_bundle

        self._upload_tree(bundle_dir, f"{self.prefix}{BUNDLES_DIR}/{job_id}/")
        with tempfile.TemporaryDirectory(prefix="shelfwatch-pack-") as tmp:
            archive = pack_bundle(bundle_dir, Path(tmp) / f"{job_id}.tar.gz")
            self._call("upload_file", str(archive), self.bucket, f"{self.prefix}{BUNDLES_DIR}/{job_id}.tar.gz")

    def ensure_bundle(self, job_id: str) -> Path:
        return self._ensure_tree(BUNDLES_DIR, job_id)

    # --- plumbing ---

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(*args, **kwargs)
        except (BotoCoreError, ClientError) as err:
            raise StorageError(f"object storage ({self.bucket}): {method} failed: {err}") from err

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._call("list_objects_v2", Bucket=self.bucket, Prefix=prefix, **extra)
            keys += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = page.get("NextContinuationToken")

    def _upload_tree(self, folder: Path, prefix: str) -> None:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self._call("upload_file", str(path), self.bucket, prefix + path.relative_to(folder).as_posix())

    def _ensure_tree(self, kind: str, name: str) -> Path:
        final = self.data_dir / kind / name
        if final.is_dir():
            return final
        prefix = f"{self.prefix}{kind}/{name}/"
        keys = self._keys(prefix)
        if not keys:
            raise NotFoundError(f"{kind[:-1]} {name} is not in the object storage bucket {self.bucket}")
        final.parent.mkdir(parents=True, exist_ok=True)
        # Staged beside the final folder under a name the start-up cleanup knows; renamed only when complete.
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.extracting-", dir=final.parent))
        try:
            for key in keys:
                rel = key[len(prefix) :]
                target = (staging / rel).resolve()
                if not target.is_relative_to(staging.resolve()) or not rel:
                    raise StorageError(f"object storage key {key!r} points outside its folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                self._call("download_file", self.bucket, key, str(target))
            try:
                os.rename(staging, final)
            except OSError:
                if not final.is_dir():  # another process of this machine won the race: its copy is as good
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("fetched %s %s from object storage (%d files)", kind[:-1], name, len(keys))
        return final


def open_artifacts(config: Any, data_dir: Path) -> LocalArtifacts | S3Artifacts:
    """The artifact storage trainer.yaml (`storage`) names."""
    storage = config.storage
    if isinstance(storage, str):
        return LocalArtifacts(data_dir)
    return S3Artifacts(data_dir, storage.settings())
