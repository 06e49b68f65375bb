"""What the trainer API's routes work with, built once from trainer.yaml: store, job queue, limits, keys, tokens.

`open_services` is the start-up of the service: it recovers the jobs a previous process left running, removes
staging folders a killed worker left behind and makes sure a bundle signing key exists. The app factory only
composes these parts with the blueprints; routes reach them through `services()`.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app

from trainer.config import TrainerConfig
from trainer.service.datasets import MAX_PIXELS, UPLOADS_DIR, Limits
from trainer.service.retention import RetentionSweeper
from trainer.service.scheduler import Scheduler
from trainer.service.store import JobStore

log = logging.getLogger(__name__)

MIB = 1024 * 1024
BUNDLES_DIR = "bundles"
SERVICES_KEY = "shelfwatch.trainer.services"


@dataclass
class TrainerServices:
    """The parts one trainer API process serves from."""

    config: TrainerConfig
    data_dir: Path
    store: JobStore
    queue: Scheduler
    limits: Limits
    signing_key: Path
    tokens: list[str]
    sweeper: RetentionSweeper
    recovered: list[str] = field(default_factory=list)

    def start(self) -> None:
        """Start the background parts: the job queue and the dataset retention sweep."""
        self.queue.start()
        self.sweeper.start()


def open_services(config: TrainerConfig, *, runner: str | None = None) -> TrainerServices:
    """Open the store, recover interrupted jobs, ensure a signing key and build the job queue (not started)."""
    from trainer.service.worker import DEFAULT_RUNNER

    data_dir = Path(config.data_dir)
    store = JobStore(data_dir)
    recovered = store.recover_after_restart()
    remove_stale_staging(data_dir)
    signing_key = ensure_signing_key(config, data_dir)
    tokens = [t.get_secret_value() for t in config.server.tokens if t.get_secret_value()]
    if not tokens:
        log.warning("server.tokens is empty: the trainer API refuses every request until a token is configured")
    limits = Limits(
        max_archive_bytes=int(config.server.max_archive_mb * MIB),
        max_image_mb=config.server.max_image_mb,
        max_pixels=MAX_PIXELS,
    )
    queue = Scheduler(store, workers=config.workers, runner=runner or DEFAULT_RUNNER, log_level=config.log_level)
    sweeper = RetentionSweeper(store, config.retention.datasets_days)
    return TrainerServices(config, data_dir, store, queue, limits, signing_key, tokens, sweeper, recovered)


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


def remove_stale_staging(data_dir: Path) -> None:
    """Staging folders a killed worker left behind (a finished bundle is renamed into place, never staged)."""
    for folder in (data_dir / BUNDLES_DIR, data_dir / "datasets"):
        if folder.is_dir():
            for stale in folder.glob(".*-*"):
                if stale.is_dir() and ("staging" in stale.name or "extracting" in stale.name):
                    log.info("removing %s left by an interrupted run", stale)
                    shutil.rmtree(stale, ignore_errors=True)
    uploads = data_dir / UPLOADS_DIR
    if uploads.is_dir():
        shutil.rmtree(uploads, ignore_errors=True)
