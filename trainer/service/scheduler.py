"""Starts queued jobs in worker processes, at most `workers` at a time, and reaps the ones that ended.

It lives in the API server process on a daemon thread. A worker that exits without recording an outcome (killed,
out of memory) has its job marked failed with the exit code; a worker that ignores a cancel request for
CANCEL_GRACE_S is terminated and its job marked cancelled.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge.processes import stop_process
from trainer.service.store import STORE_URL_ENV, JobStore
from trainer.service.worker import DEFAULT_RUNNER

log = logging.getLogger(__name__)

POLL_S = 0.3
CANCEL_GRACE_S = 30.0


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    cancel_seen: float | None = None


class Scheduler:
    """Runs the job queue of a JobStore with worker subprocesses."""

    def __init__(
        self,
        store: JobStore,
        *,
        workers: int = 1,
        runner: str = DEFAULT_RUNNER,
        log_level: str = "info",
        env: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.workers = workers
        self.runner = runner
        self.log_level = log_level
        self.env = env or {}  # settings with secrets for the workers (object storage): never on a command line
        self._running: dict[str, _Running] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Scheduler:
        """Start the scheduling thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="trainer-scheduler", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Look at the queue now (a job was added or cancelled)."""
        self._wake.set()

    def submit(self, job_id: str) -> None:
        """A job was queued in the store: start it when a worker slot is free."""
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        """A cancel was requested in the store: the job's worker sees it; a silent one is killed after the grace."""
        self._wake.set()

    def stop(self, *, terminate: bool = True) -> None:
        """Stop scheduling; terminate running workers (their jobs end as failed: the server stopped)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if terminate:
            for job_id, running in list(self._running.items()):
                stop_process(running.process, timeout=10)
                self.store.finish(
                    job_id, "failed", pid=running.process.pid, error="the trainer stopped during training"
                )
            self._running.clear()

    @property
    def running_jobs(self) -> list[str]:
        """Ids of the jobs with a live worker."""
        return list(self._running)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must survive a transient database error
                log.exception("scheduler tick failed")
            self._wake.wait(POLL_S)
            self._wake.clear()

    def tick(self) -> None:
        """One round: reap ended workers, enforce cancel grace, start queued jobs."""
        for job_id, running in list(self._running.items()):
            code = running.process.poll()
            if code is not None:
                del self._running[job_id]
                # Scoped to this worker's pid: with several API replicas another replica's worker may hold the job.
                reason = f"the training worker exited with code {code}"
                if self.store.finish(job_id, "failed", pid=running.process.pid, error=reason) or (
                    code != 0
                    and self.store.get_job(job_id).state == "queued"  # died before claiming: never retry
                    and self.store.finish(job_id, "failed", error=reason)
                ):
                    log.error("job %s: worker exited with code %s without an outcome", job_id, code)
                continue
            if self.store.cancel_requested(job_id):
                now = time.monotonic()
                running.cancel_seen = running.cancel_seen or now
                if now - running.cancel_seen > CANCEL_GRACE_S:
                    log.warning("job %s: worker ignored the cancel for %.0f s; terminating it", job_id, CANCEL_GRACE_S)
                    running.process.kill()
                    running.process.wait()
                    del self._running[job_id]
                    self.store.finish(
                        job_id, "cancelled", pid=running.process.pid, error="cancelled on request (worker terminated)"
                    )
        while len(self._running) < self.workers and not self._stop.is_set():
            job = self.store.next_queued(exclude=set(self._running))
            if job is None:
                break
            self._running[job.id] = _Running(self._spawn(job.id))
            log.info("job %s: started worker pid %s", job.id, self._running[job.id].process.pid)

    def _spawn(self, job_id: str) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable,
            "-m",
            "trainer.service.worker",
            "--data-dir",
            str(Path(self.store.data_dir)),
            "--job",
            job_id,
            "--runner",
            self.runner,
            "--parent-pid",
            str(os.getpid()),
            "--log-level",
            self.log_level,
        ]
        # The worker logs to the server's own stdout/stderr (the journal under systemd); no pipe that could fill.
        env = {**os.environ, **self.env} if self.env else None
        if self.store.postgres:
            # The store's URL holds a password: the environment, not the command line others can read.
            env = {**(env or os.environ), STORE_URL_ENV: self.store.engine.url.render_as_string(hide_password=False)}
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, close_fds=True, env=env)
