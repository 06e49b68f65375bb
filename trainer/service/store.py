"""The training service's persistent state: datasets and jobs in one SQL database, through SQLAlchemy Core.

By default an SQLite file (WAL) under data_dir that the API process and the worker processes open together (WAL
lets readers go on while a worker writes its progress); or PostgreSQL (`job_store: {kind: postgresql, url}`), which
several API replicas and workers on other machines share. The SQL is one text for both (placeholders adapted to
the driver); every state change is one conditional statement, so concurrent processes cannot both win.

A job moves queued -> training -> exporting / evaluating -> succeeded | failed | cancelled; the terminal states
never change again. Updates from a worker name the worker's pid, so a worker orphaned by a killed server cannot
overwrite what the restarted server decided.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.attributes import attributes
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
        return attributes(self, "id", "images", "labels", "format", "source", "created")


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
        private = ("data", "out", "signing_key", "weights_cache")
        public_spec = {k: v for k, v in self.spec.items() if k not in private and not k.startswith("_")}
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


class _Db:
    """One transaction: `execute(sql, params)` with `?` placeholders whatever the driver, rows as mappings."""

    def __init__(self, conn: Any, qmark: bool) -> None:
        self.conn = conn
        self.qmark = qmark

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Result:
        return _Result(self.conn.exec_driver_sql(sql if self.qmark else sql.replace("?", "%s"), tuple(params)))


class _Result:
    def __init__(self, result: Any) -> None:
        self.result = result
        self.rowcount: int = result.rowcount

    def fetchone(self) -> Any:
        return self.result.mappings().fetchone()

    def fetchall(self) -> list[Any]:
        return list(self.result.mappings().fetchall())


class JobStore:
    """Datasets and jobs in data_dir/trainer.db or in PostgreSQL (`url`); safe from several threads and processes."""

    def __init__(self, data_dir: str | Path, url: str | None = None) -> None:
        from sqlalchemy import create_engine, event

        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / DB_NAME
        self._lock = threading.Lock()
        self.postgres = url is not None
        if url is None:
            from sqlalchemy.pool import NullPool

            # One short-lived connection per operation: workers and the API never share a handle across processes.
            self.engine = create_engine(f"sqlite:///{self.db_path}", poolclass=NullPool, connect_args={"timeout": 30})

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi: Any, _record: Any) -> None:
                dbapi.isolation_level = None  # BEGIN/COMMIT come from SQLAlchemy's own transaction below
                cur = dbapi.cursor()
                for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
                    cur.execute(f"PRAGMA {pragma}")
                cur.close()

            @event.listens_for(self.engine, "begin")
            def _begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlocks
        else:
            self.engine = create_engine(_postgres_url(url), pool_pre_ping=True, pool_size=5, max_overflow=5)
        self._create_schema()

    def _create_schema(self) -> None:
        from sqlalchemy import inspect

        from edge.errors import StoreError

        with self._connect() as db:
            if self.postgres:
                db.execute("CREATE TABLE IF NOT EXISTS trainer_schema (version INTEGER NOT NULL)")
                row = db.execute("SELECT MAX(version) AS version FROM trainer_schema").fetchone()
                version = int(row["version"] or 0)
            else:
                version = int(db.execute("PRAGMA user_version").fetchone()["user_version"])
            if version > SCHEMA_VERSION:
                raise StoreError(f"the job store was written by a newer Shelfwatch (schema {version})")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            inspector = inspect(db.conn)
            for table, column in _ADDED_COLUMNS:
                if column not in {c["name"] for c in inspector.get_columns(table)}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
            if self.postgres:
                db.execute("DELETE FROM trainer_schema")
                db.execute("INSERT INTO trainer_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            else:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _connect(self) -> Iterator[_Db]:
        """One transaction (committed when the block ends, rolled back on an exception)."""
        if self.postgres:
            with self.engine.begin() as conn:
                yield _Db(conn, qmark=False)
            return
        with self._lock, self.engine.begin() as conn:
            yield _Db(conn, qmark=True)

    def _one(self, sql: str, params: Sequence[Any], what: str) -> Any:
        """The one row the query finds; NotFoundError "<what> does not exist" when there is none."""
        with self._connect() as db:
            row = db.execute(sql, params).fetchone()
        if row is None:
            raise NotFoundError(f"{what} does not exist")
        return row

    def _lock_dataset(self, db: _Db, dataset_id: str) -> None:
        """PostgreSQL: hold the dataset's row until the transaction ends, so queueing a job on it and deleting it
        run one after the other and the later statement sees the earlier one's outcome (SQLite: one writer at a
        time already)."""
        if self.postgres:
            db.execute("SELECT id FROM datasets WHERE id = ? FOR UPDATE", (dataset_id,))

    def close(self) -> None:
        """Close the connection pool."""
        self.engine.dispose()

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
        row = self._one(
            "SELECT * FROM datasets WHERE id = ? AND deleted IS NULL", (dataset_id,), f"dataset {dataset_id!r}"
        )
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
            self._lock_dataset(db, dataset_id)
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
        return [r["id"] for r in rows]

    # ---------------------------------------------------------------------------------------------------- jobs

    def add_job(self, dataset_id: str, spec: dict[str, Any], job_id: str | None = None) -> JobRecord:
        """A new queued job."""
        self.get_dataset(dataset_id)
        job_id = job_id or new_id("job")
        stamp = now_iso()
        with self._connect() as db:
            # Only while the dataset is not deleted: a concurrent DELETE and this insert cannot both win.
            self._lock_dataset(db, dataset_id)
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
        return _job(self._one("SELECT * FROM jobs WHERE id = ?", (job_id,), f"job {job_id!r}"))

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
        return bool(row and row["cancel_requested"])

    def recover_after_restart(self) -> list[str]:
        """Fail the jobs a previous server process left running (their worker died with it); returns their ids."""
        with self._connect() as db:
            rows = db.execute("SELECT id FROM jobs WHERE state IN ('training', 'evaluating', 'exporting')").fetchall()
            ids = [r["id"] for r in rows]
            for job_id in ids:
                db.execute(
                    "UPDATE jobs SET state = 'failed', error = ?, eta_seconds = NULL, updated = ? "
                    "WHERE id = ? AND state IN ('training', 'evaluating', 'exporting')",
                    (RESTART_REASON, now_iso(), job_id),
                )
        for job_id in ids:
            log.warning("job %s was running when the trainer stopped: marked failed (%s)", job_id, RESTART_REASON)
        return ids


STORE_URL_ENV = "SHELFWATCH_JOB_STORE_URL"  # how the local queue hands a PostgreSQL URL to its worker processes


def open_job_store(config: Any) -> JobStore:
    """The job store trainer.yaml (`job_store`) names."""
    store = config.job_store
    url = None if isinstance(store, str) else store.url.get_secret_value()
    return JobStore(config.data_dir, url)


def _postgres_url(url: str) -> str:
    """postgresql://... with the psycopg 3 driver SQLAlchemy should use."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def _dataset(row: Any) -> DatasetRecord:
    return DatasetRecord(
        id=row["id"],
        created=row["created"],
        format=row["format"],
        images=int(row["images"]),
        labels=json.loads(row["labels"]),
        path=Path(row["path"]),
        source=row["source"],
    )


def _job(row: Any) -> JobRecord:
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
