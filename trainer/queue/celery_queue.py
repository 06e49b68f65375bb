"""Training jobs on Celery workers with a Redis broker.

The API stores the job (queued) and sends a task naming only its id; a worker (`shelfwatch trainer worker -c
trainer.yaml`, any machine that reaches the broker, the job store and the data) claims it in the job store, which
lets exactly one delivery run it, and runs it exactly as the local worker does: progress, cancel checks and the
outcome go through the job store, so the API answers from the store whoever runs the job.

Workers use the solo pool (one job per worker process: a training run already uses every core it is given), take
one message at a time (prefetch 1) and acknowledge it after the job (acks_late), so a message waits in Redis until a
worker is really free. A running job's worker writes a heartbeat into the job store every HEARTBEAT_S; the API
fails a job whose heartbeat is older than `queue.lost_after_s` with the reason ("the training worker ... stopped
reporting (killed or lost); resubmit the job"). A killed worker's message is redelivered by Redis after the
visibility timeout and then finds the job no longer queued: it is never run twice. At API start every job still
queued in the store is sent again (a crash between storing and sending loses nothing; duplicates are inert).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.timestamps import iso_utc
from trainer.config import CeleryQueueConfig, TrainerConfig
from trainer.service.artifacts import open_artifacts
from trainer.service.store import JobStore, open_job_store

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

TASK_NAME = "shelfwatch.trainer.run_job"
HEARTBEAT_S = 2.0
WATCH_INTERVAL_S = 1.0
VISIBILITY_TIMEOUT_S = 12 * 3600


def celery_app(queue: CeleryQueueConfig) -> Celery:
    """The Celery app both sides use: broker, queue name and the settings above."""
    from celery import Celery

    app = Celery("shelfwatch-trainer", broker=queue.broker_url.get_secret_value())
    app.conf.update(
        task_default_queue=queue.queue_name,
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


class CeleryQueue:
    """The API side: sends queued jobs to the workers and fails jobs whose worker stopped beating."""

    def __init__(self, store: JobStore, queue: CeleryQueueConfig) -> None:
        self.store = store
        self.config = queue
        self.app = celery_app(queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, job_id: str) -> None:
        """Send the job's id to the workers."""
        self.app.send_task(TASK_NAME, args=[job_id], queue=self.config.queue_name)

    def cancel(self, job_id: str) -> None:
        """Nothing to send: the worker reads the cancel request from the job store at every training step."""

    def start(self) -> CeleryQueue:
        """Re-send the jobs still queued in the store, then watch heartbeats."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="trainer-celery-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self, *, terminate: bool = True) -> None:
        """Stop watching; jobs on workers go on (they do not belong to this API process)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def resend_queued(self) -> int:
        """Send every job queued in the store again (inert for those already on the broker)."""
        jobs = [j for j in self.store.list_jobs(state="queued", limit=100_000) if not j.cancel_requested]
        for job in reversed(jobs):  # oldest first
            self.submit(job.id)
        return len(jobs)

    def fail_lost(self) -> list[str]:
        """Fail the running jobs whose worker has not beaten for lost_after_s."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.config.lost_after_s)
        stamp = iso_utc(cutoff, "milliseconds")
        return [job.id for job in self.store.fail_silent_jobs(stamp)]

    def _loop(self) -> None:
        sent = False
        while not self._stop.is_set():
            try:
                if not sent:
                    count = self.resend_queued()
                    sent = True
                    if count:
                        log.info("re-sent %d queued jobs to the Celery workers", count)
                self.fail_lost()
            except Exception:  # broker or database away for a moment: try again next round
                log.exception("celery queue watch failed")
            self._stop.wait(WATCH_INTERVAL_S)


def _warm_up() -> None:
    """Import the training stack before taking jobs: a first import holds the GIL for seconds, which would starve
    the heartbeat of the first job on a busy machine."""
    import importlib

    for name in ("torch", "onnx", "trainer.pipeline", "trainer.export"):
        try:
            importlib.import_module(name)
        except ImportError:
            log.debug("%s not importable here; the job will say so", name)


def run_worker(config: TrainerConfig, *, runner: str | None = None, name: str | None = None) -> None:
    """Run a Celery worker for this config's queue until it is stopped (SIGTERM: warm shutdown)."""
    from trainer.service.worker import DEFAULT_RUNNER, load_runner, run_job

    if not isinstance(config.queue, CeleryQueueConfig):
        from edge.errors import ConfigError

        raise ConfigError("`shelfwatch trainer worker` needs `queue: {kind: celery, broker_url: ...}` in trainer.yaml")
    app = celery_app(config.queue)
    store = open_job_store(config)
    artifacts = open_artifacts(config, Path(config.data_dir))
    job_runner = load_runner(runner or DEFAULT_RUNNER)
    _warm_up()
    node = name or f"trainer-{os.getpid()}@{socket.gethostname()}"

    @app.task(name=TASK_NAME)
    def _run(job_id: str) -> str:
        return run_job(store, job_id, job_runner, None, worker=node, heartbeat_s=HEARTBEAT_S, artifacts=artifacts)

    argv: list[Any] = [
        "worker",
        "--pool=solo",
        "--concurrency=1",
        f"--hostname={node}",
        f"--queues={config.queue.queue_name}",
        f"--loglevel={config.log_level.upper()}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    log.info("trainer worker %s on queue %s", node, config.queue.queue_name)
    app.worker_main(argv)
