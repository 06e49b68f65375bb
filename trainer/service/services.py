"""What the trainer API's routes work with, built once from trainer.yaml: store, job queue, limits, keys, tokens.

`open_services` is the start-up of the service: it recovers the jobs a previous process left running, removes
staging folders a killed worker left behind and makes sure a bundle signing key exists. The app factory only
composes these parts with the blueprints; routes reach them through `services()`.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app

from trainer.config import CeleryQueueConfig, TrainerConfig
from trainer.queue import JobQueue
from trainer.service.artifacts import Artifacts, S3Artifacts, open_artifacts
from trainer.service.datasets import MAX_PIXELS, UPLOADS_DIR, Limits
from trainer.service.retention import RetentionSweeper
from trainer.service.scheduler import Scheduler
from trainer.service.store import RUNNING_STATES, JobStore, open_job_store

log = logging.getLogger(__name__)

MIB = 1024 * 1024
BUNDLES_DIR = "bundles"
SERVICES_KEY = "shelfwatch.trainer.services"
STALE_SHARED_S = 3600.0  # Celery mode: a leftover this old cannot be another replica's upload in progress


@dataclass
class TrainerServices:
    """The parts one trainer API process serves from."""

    config: TrainerConfig
    data_dir: Path
    store: JobStore
    queue: JobQueue
    limits: Limits
    signing_key: Path
    tokens: list[str]
    sweeper: RetentionSweeper
    artifacts: Artifacts
    recovered: list[str] = field(default_factory=list)

    def start(self) -> None:
        """Start the background parts: the job queue and the dataset retention sweep."""
        self.queue.start()
        self.sweeper.start()


def open_services(config: TrainerConfig, *, runner: str | None = None) -> TrainerServices:
    """Open the store, recover interrupted jobs, ensure a signing key and build the job queue (not started).

    Local queue: jobs left running by a previous process are failed (their workers died with it). Celery queue:
    they belong to workers elsewhere and go on."""
    from trainer.service.worker import DEFAULT_RUNNER

    data_dir = Path(config.data_dir)
    store = open_job_store(config)
    artifacts = open_artifacts(config, data_dir)
    queue: JobQueue
    if isinstance(config.queue, CeleryQueueConfig):
        from trainer.queue.celery_queue import CeleryQueue

        # Jobs run on workers of their own: running ones go on across an API restart (their heartbeat decides).
        queue, recovered = CeleryQueue(store, config.queue), []
    else:
        env = artifacts.env() if isinstance(artifacts, S3Artifacts) else None
        queue = Scheduler(
            store, workers=config.workers, runner=runner or DEFAULT_RUNNER, log_level=config.log_level, env=env
        )
        recovered = store.recover_after_restart()
    if isinstance(config.queue, CeleryQueueConfig):
        remove_stale_staging(data_dir, store, min_age_s=STALE_SHARED_S)
    else:
        remove_stale_staging(data_dir)
    signing_key = ensure_signing_key(config, data_dir)
    if config.signing_key is None and (artifacts.remote or not isinstance(config.queue, str)):
        log.warning(
            "signing_key is not configured: this process signs with its own %s; with several machines configure one "
            "key for all (devices trust one public key)",
            signing_key,
        )
    tokens = [t.get_secret_value() for t in config.server.tokens if t.get_secret_value()]
    if not tokens:
        log.warning("server.tokens is empty: the trainer API refuses every request until a token is configured")
    limits = Limits(
        max_archive_bytes=int(config.server.max_archive_mb * MIB),
        max_image_mb=config.server.max_image_mb,
        max_pixels=MAX_PIXELS,
        pull_sources=tuple(config.server.pull_sources),
    )
    sweeper = RetentionSweeper(store, config.retention.datasets_days, artifacts)
    return TrainerServices(config, data_dir, store, queue, limits, signing_key, tokens, sweeper, artifacts, recovered)


def services() -> TrainerServices:
    """The services of the app serving the current request."""
    found: TrainerServices = current_app.extensions[SERVICES_KEY]
    return found


def ensure_signing_key(config: TrainerConfig, data_dir: Path) -> Path:
    """The private key bundles are signed with: the configured one, or one kept under data_dir/bundles/keys/."""
    from trainer.pipeline import TrainSpec, signing_key_for

    configured = Path(config.signing_key.get_secret_value()) if config.signing_key is not None else None
    spec = TrainSpec(
        data=data_dir, fmt=None, task="classification", out=data_dir / BUNDLES_DIR / "_", signing_key=configured
    )
    private, _ = signing_key_for(spec)
    return private


def remove_stale_staging(data_dir: Path, store: JobStore | None = None, *, min_age_s: float = 0.0) -> None:
    """Staging folders a killed worker or upload left behind (a finished bundle is renamed into place, never staged).

    With `store` (Celery queue: workers elsewhere go on across an API restart) the staging folder of a job that is
    still running is kept, and only folders older than `min_age_s` go (another API replica may be mid-upload).
    """
    cutoff = time.time() - min_age_s
    running = {j.id for j in store.list_jobs(limit=100_000) if j.state in RUNNING_STATES} if store else set()
    for folder in (data_dir / BUNDLES_DIR, data_dir / "datasets", data_dir / UPLOADS_DIR):
        if not folder.is_dir():
            continue
        for stale in folder.iterdir():
            if folder.name != UPLOADS_DIR and not (
                stale.name.startswith(".") and ("staging" in stale.name or "extracting" in stale.name)
            ):
                continue
            if stale.name[1:].partition(".staging")[0] in running:
                continue
            try:
                if stale.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            log.info("removing %s left by an interrupted run", stale)
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
