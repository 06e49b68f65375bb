"""The training service's persistent state: datasets and jobs in one SQLite database (WAL) under data_dir.

The API process and the worker processes open the same file; WAL lets readers go on while a worker writes its
progress. A job moves queued -> training -> exporting / evaluating -> succeeded | failed | cancelled; the terminal
states never change again. Updates from a worker name the worker's pid, so a worker orphaned by a killed server
cannot overwrite what the restarted server decided.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ConflictError, NotFoundError
from edge.timestamps import utc_now_iso

log = logging.getLogger(__name__)

DB_NAME = "trainer.db"
SCHEMA_VERSION = 3
RUNNING_STATES = ("training", "evaluating", "exporting")
TERMINAL_STATES = ("succeeded", "failed", "cancelled")
JOB_STATES = ("queued", *RUNNING_STATES, *TERMINAL_STATES)
RESTART_REASON = "trainer restarted during training"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    format TEXT NOT NULL,
    images INTEGER NOT NULL,
    labels TEXT NOT NULL,
    path TEXT NOT NULL,
    source TEXT NOT NULL,
    deleted TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL REFERENCES datasets(id),
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    eta_seconds REAL,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    warnings TEXT NOT NULL DEFAULT '[]',
    bundle TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    worker TEXT,
    heartbeat TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created);
"""


# Columns later schemas added (all TEXT, NULL for old rows): schema 2 `datasets.deleted` (a deleted dataset keeps
# its row, which its jobs still name), schema 3 `jobs.worker` and `jobs.heartbeat` (who runs a job, last sign of life).
_ADDED_COLUMNS = (("datasets", "deleted"), ("jobs", "worker"), ("jobs", "heartbeat"))


now_iso = functools.partial(utc_now_iso, "milliseconds")  # the job store's timestamps: UTC, milliseconds, Z


def new_id(prefix: str) -> str:
    """A short random id such as `job-3f2a9c1d0b4e`."""
    return f"{prefix}-{secrets.token_hex(6)}"


@dataclass
class DatasetRecord:
    """An uploaded or pulled dataset, validated and kept under data_dir/datasets/<id>."""

    id: str
    created: str
    format: str
    images: int
    labels: list[str]
    path: Path
    source: str

    def as_dict(self) -> dict[str, Any]:
        """What the API shows (the server-side path stays private)."""
        return {
            "id": self.id,
            "images": self.images,
            "labels": self.labels,
            "format": self.format,
            "source": self.source,
            "created": self.created,
        }


@dataclass
class JobRecord:
    """One training job and its last known status."""

    id: str
    dataset: str
    spec: dict[str, Any]
    state: str
    created: str
    updated: str
    progress: dict[str, Any] = field(default_factory=dict)
    eta_seconds: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    bundle: str | None = None
    cancel_requested: bool = False
    pid: int | None = None
    worker: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the job reached a terminal state."""
        return self.state in TERMINAL_STATES

    def as_dict(self) -> dict[str, Any]:
        """The job status the API returns."""
        public_spec = {k: v for k, v in self.spec.items() if k not in ("data", "out", "signing_key", "weights_cache")}
        return {
            "id": self.id,
            "dataset": self.dataset,
            "state": self.state,
            "progress": self.progress,
            "eta_seconds": self.eta_seconds,
            "metrics": self.metrics,
            "error": self.error,
            "warnings": self.warnings,
            "cancel_requested": self.cancel_requested,
            "params": public_spec,
            "bundle_ready": self.state == "succeeded" and self.bundle is not None,
            "worker": self.worker,
            "created": self.created,
            "updated": self.updated,
        }


class JobStore:
    """Datasets and jobs in data_dir/trainer.db; safe to use from several threads and processes."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / DB_NAME
        self._lock = threading.Lock()
        with self._connect() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                from edge.errors import StoreError

                raise StoreError(f"{self.db_path} was written by a newer Shelfwatch (schema {version})")
            db.executescript(_SCHEMA)
            for table, column in _ADDED_COLUMNS:
                present = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per operation: workers and the API never share a handle across processes.
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            with self._lock:
                yield db
        finally:
            db.close()

    # ------------------------------------------------------------------------------------------------ datasets

    def add_dataset(self, record: DatasetRecord) -> DatasetRecord:
        """Record a validated dataset."""
        with self._connect() as db:
            db.execute(
                "INSERT INTO datasets (id, created, format, images, labels, path, source) VALUES (?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.created,
                    record.format,
                    record.images,
                    json.dumps(record.labels),
                    str(record.path),
                    record.source,
                ),
            )
        return record

    def get_dataset(self, dataset_id: str) -> DatasetRecord:
        """One dataset; NotFoundError when unknown or deleted."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM datasets WHERE id = ? AND deleted IS NULL", (dataset_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"dataset {dataset_id!r} does not exist")
        return _dataset(row)

    def list_datasets(self) -> list[DatasetRecord]:
        """Every dataset that is not deleted, newest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM datasets WHERE deleted IS NULL ORDER BY created DESC").fetchall()
        return [_dataset(r) for r in rows]

    def mark_dataset_deleted(self, dataset_id: str) -> DatasetRecord:
        """Mark a dataset deleted (its files are the caller's to remove); ConflictError while an unfinished job uses
        it, NotFoundError when unknown. One statement, so a job cannot be queued on it in between."""
        record = self.get_dataset(dataset_id)
        with self._connect() as db:
            cur = db.execute(
                "UPDATE datasets SET deleted = ?, labels = '[]' WHERE id = ? AND deleted IS NULL AND NOT EXISTS "
                "(SELECT 1 FROM jobs WHERE jobs.dataset = datasets.id "
                "AND state NOT IN ('succeeded', 'failed', 'cancelled'))",
                (now_iso(), dataset_id),
            )
        if cur.rowcount != 1:
            self.get_dataset(dataset_id)  # deleted by someone else meanwhile: 404
            raise ConflictError(f"dataset {dataset_id!r} is used by a queued or running job; cancel it first")
        return record

    def datasets_unused_since(self, cutoff: str) -> list[str]:
        """Ids of datasets created before `cutoff` with no job since then and no unfinished job (retention)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id FROM datasets WHERE deleted IS NULL AND created < ? AND NOT EXISTS "
                "(SELECT 1 FROM jobs WHERE jobs.dataset = datasets.id "
                "AND (jobs.created >= ? OR state NOT IN ('succeeded', 'failed', 'cancelled'))) ORDER BY created",
                (cutoff, cutoff),
            ).fetchall()
        return [r[0] for r in rows]

    # ---------------------------------------------------------------------------------------------------- jobs

    def add_job(self, dataset_id: str, spec: dict[str, Any], job_id: str | None = None) -> JobRecord:
        """A new queued job."""
        self.get_dataset(dataset_id)
        job_id = job_id or new_id("job")
        stamp = now_iso()
        with self._connect() as db:
            # Only while the dataset is not deleted: a concurrent DELETE and this insert cannot both win.
            cur = db.execute(
                "INSERT INTO jobs (id, dataset, spec, state, created, updated) SELECT ?,?,?,?,?,? "
                "WHERE EXISTS (SELECT 1 FROM datasets WHERE id = ? AND deleted IS NULL)",
                (job_id, dataset_id, json.dumps(spec), "queued", stamp, stamp, dataset_id),
            )
        if cur.rowcount != 1:
            raise NotFoundError(f"dataset {dataset_id!r} does not exist")
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> JobRecord:
        """One job; NotFoundError when unknown."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"job {job_id!r} does not exist")
        return _job(row)

    def list_jobs(self, *, state: str | None = None, limit: int = 100) -> list[JobRecord]:
        """Jobs, newest first; optionally only those in one state."""
        with self._connect() as db:
            if state:
                rows = db.execute(
                    "SELECT * FROM jobs WHERE state = ? ORDER BY created DESC LIMIT ?", (state, limit)
                ).fetchall()
            else:
                rows = db.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [_job(r) for r in rows]

    def next_queued(self, exclude: set[str] | frozenset[str] = frozenset()) -> JobRecord | None:
        """The oldest queued job that nobody asked to cancel and that is not in `exclude` (already starting)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE state = 'queued' AND cancel_requested = 0 ORDER BY created"
            ).fetchall()
        for row in rows:
            if row["id"] not in exclude:
                return _job(row)
        return None

    def claim(self, job_id: str, pid: int, worker: str | None = None) -> bool:
        """Mark a queued job as training in process `pid` of `worker`; False when it is no longer queued (so a job
        delivered twice runs once)."""
        stamp = now_iso()
        with self._connect() as db:
            cur = db.execute(
                "UPDATE jobs SET state = 'training', pid = ?, worker = ?, heartbeat = ?, updated = ? "
                "WHERE id = ? AND state = 'queued' AND cancel_requested = 0",
                (pid, worker, stamp, stamp, job_id),
            )
        return cur.rowcount == 1

    def heartbeat(self, job_id: str, pid: int) -> bool:
        """A running job's worker is alive; False when the job is no longer this worker's."""
        with self._connect() as db:
            cur = db.execute(
                "UPDATE jobs SET heartbeat = ? WHERE id = ? AND pid = ? AND state IN ('training', 'evaluating', "
                "'exporting')",
                (now_iso(), job_id, pid),
            )
        return cur.rowcount == 1

    def fail_silent_jobs(self, cutoff: str) -> list[JobRecord]:
        """Fail every running job whose worker's last heartbeat is older than `cutoff` (killed or lost worker)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE state IN ('training', 'evaluating', 'exporting') "
                "AND COALESCE(heartbeat, updated) < ?",
                (cutoff,),
            ).fetchall()
        failed = []
        for row in rows:
            job = _job(row)
            reason = f"the training worker {job.worker or job.pid} stopped reporting (killed or lost); resubmit the job"
            with self._connect() as db:
                cur = db.execute(
                    "UPDATE jobs SET state = 'failed', error = ?, eta_seconds = NULL, updated = ? "
                    "WHERE id = ? AND state IN ('training', 'evaluating', 'exporting') "
                    "AND COALESCE(heartbeat, updated) < ?",
                    (reason, now_iso(), job.id, cutoff),
                )
            if cur.rowcount == 1:
                log.warning("job %s: %s", job.id, reason)
                failed.append(self.get_job(job.id))
        return failed

    def report_progress(
        self, job_id: str, pid: int, state: str, progress: dict[str, Any], eta_seconds: float | None
    ) -> bool:
        """Store a running job's progress; False when the job is no longer this worker's to update."""
        with self._connect() as db:
            cur = db.execute(
                "UPDATE jobs SET state = ?, progress = ?, eta_seconds = ?, updated = ? "
                "WHERE id = ? AND pid = ? AND state IN ('training', 'evaluating', 'exporting')",
                (state, json.dumps(progress), eta_seconds, now_iso(), job_id, pid),
            )
        return cur.rowcount == 1

    def finish(
        self,
        job_id: str,
        state: str,
        *,
        pid: int | None = None,
        error: str | None = None,
        metrics: dict[str, Any] | None = None,
        warnings: list[str] | None = None,
        bundle: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Move a job that is not finished yet to a terminal state; False when it already was (or is not pid's)."""
        assert state in TERMINAL_STATES
        sets = ["state = ?", "updated = ?", "error = ?", "eta_seconds = NULL"]
        params: list[Any] = [state, now_iso(), error]
        for column, value in (("metrics", metrics), ("warnings", warnings), ("progress", progress)):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(json.dumps(value))
        if bundle is not None:
            sets.append("bundle = ?")
            params.append(bundle)
        where = "id = ? AND state NOT IN ('succeeded', 'failed', 'cancelled')"
        params.append(job_id)
        if pid is not None:
            where += " AND pid = ?"
            params.append(pid)
        with self._connect() as db:
            cur = db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE {where}", params)  # noqa: S608 - fixed columns
        return cur.rowcount == 1

    def request_cancel(self, job_id: str) -> JobRecord:
        """Ask a job to stop: a queued job is cancelled at once, a running one when its worker next checks."""
        job = self.get_job(job_id)
        if job.finished:
            return job
        with self._connect() as db:
            db.execute("UPDATE jobs SET cancel_requested = 1, updated = ? WHERE id = ?", (now_iso(), job_id))
        if job.state == "queued":
            with self._connect() as db:
                db.execute(
                    "UPDATE jobs SET state = 'cancelled', error = 'cancelled before it started', updated = ? "
                    "WHERE id = ? AND state = 'queued'",
                    (now_iso(), job_id),
                )
        return self.get_job(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked this job to stop."""
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def recover_after_restart(self) -> list[str]:
        """Fail the jobs a previous server process left running (their worker died with it); returns their ids."""
        with self._connect() as db:
            rows = db.execute("SELECT id FROM jobs WHERE state IN ('training', 'evaluating', 'exporting')").fetchall()
            ids = [r[0] for r in rows]
            for job_id in ids:
                db.execute(
                    "UPDATE jobs SET state = 'failed', error = ?, eta_seconds = NULL, updated = ? "
                    "WHERE id = ? AND state IN ('training', 'evaluating', 'exporting')",
                    (RESTART_REASON, now_iso(), job_id),
                )
        for job_id in ids:
            log.warning("job %s was running when the trainer stopped: marked failed (%s)", job_id, RESTART_REASON)
        return ids


def _dataset(row: sqlite3.Row) -> DatasetRecord:
    return DatasetRecord(
        id=row["id"],
        created=row["created"],
        format=row["format"],
        images=int(row["images"]),
        labels=json.loads(row["labels"]),
        path=Path(row["path"]),
        source=row["source"],
    )


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        dataset=row["dataset"],
        spec=json.loads(row["spec"]),
        state=row["state"],
        created=row["created"],
        updated=row["updated"],
        progress=json.loads(row["progress"]),
        eta_seconds=row["eta_seconds"],
        metrics=json.loads(row["metrics"]),
        error=row["error"],
        warnings=json.loads(row["warnings"]),
        bundle=row["bundle"],
        cancel_requested=bool(row["cancel_requested"]),
        pid=row["pid"],
        worker=row["worker"],
    )
