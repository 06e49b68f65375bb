"""Deleting datasets: on request (`DELETE /v1/datasets/<id>`) and by age (`retention.datasets_days`).

A deleted dataset's folder is removed and its row kept with a deletion time and no labels, so the jobs trained on
it still name it; it no longer lists, shows or trains (404). A dataset that a queued or running job uses is never
deleted (409 on request; the sweep skips it). Age counts from the upload or the newest job on it, whichever is later.
"""

from __future__ import annotations

import logging
import shutil
import threading
from datetime import UTC, datetime, timedelta

from edge.timestamps import iso_utc
from trainer.service.artifacts import Artifacts
from trainer.service.datasets import DATASETS_DIR
from trainer.service.store import DatasetRecord, JobStore

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 3600.0


def delete_dataset(store: JobStore, dataset_id: str, artifacts: Artifacts | None = None) -> DatasetRecord:
    """Mark the dataset deleted, then remove its folder (and its object-storage copy); ConflictError while a job
    uses it."""
    record = store.mark_dataset_deleted(dataset_id)
    if artifacts is not None:
        artifacts.delete_dataset(dataset_id)
    # The record's path is the dataset's root inside the archive; the whole extracted folder goes.
    shutil.rmtree(store.data_dir / DATASETS_DIR / dataset_id, ignore_errors=True)
    log.info("dataset %s deleted (%d images)", dataset_id, record.images)
    return record


def sweep_datasets(
    store: JobStore, max_age_days: float, *, now: datetime | None = None, artifacts: Artifacts | None = None
) -> list[str]:
    """Delete every dataset unused for max_age_days; returns their ids."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=max_age_days)
    stamp = iso_utc(cutoff, "milliseconds")
    deleted = []
    for dataset_id in store.datasets_unused_since(stamp):
        try:
            delete_dataset(store, dataset_id, artifacts)
        except Exception as err:  # a job queued on it meanwhile (409) or a vanished row: next sweep decides
            log.info("retention: dataset %s kept: %s", dataset_id, err)
            continue
        deleted.append(dataset_id)
    if deleted:
        log.info("retention: deleted %d datasets unused for %g days", len(deleted), max_age_days)
    return deleted


class RetentionSweeper:
    """A daemon thread that sweeps at start and then every SWEEP_INTERVAL_S (no thread without a retention)."""

    def __init__(
        self,
        store: JobStore,
        max_age_days: float | None,
        artifacts: Artifacts | None = None,
        interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.max_age_days = max_age_days
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RetentionSweeper:
        """Start sweeping (nothing to do when no retention is configured)."""
        if self.max_age_days is not None and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="trainer-retention", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sweeping."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        assert self.max_age_days is not None
        while not self._stop.is_set():
            try:
                sweep_datasets(self.store, self.max_age_days, artifacts=self.artifacts)
            except Exception:  # a transient database error must not end retention for good
                log.exception("retention sweep failed")
            self._stop.wait(self.interval_s)
