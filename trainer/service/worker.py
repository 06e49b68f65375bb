"""The worker process that runs one training job: `python -m trainer.service.worker --data-dir D --job ID`.

The API server starts one such process per job, so a training run (seconds to minutes of CPU) never blocks the
API. The worker claims the queued job under its own pid, runs the job runner (default
`trainer.pipeline:run_training`), writes progress into the job store (at most twice a second, and at every stage
change), checks for a cancel request at every progress call of the runner (throttled to one database read per
50 ms), and records the outcome. It dies with its parent (Linux parent-death signal, plus a parent-pid check at
every cancel check), so a killed server never leaves an orphan that could overwrite what the restarted server
decided.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.errors import ShelfwatchError
from trainer.service.artifacts import Artifacts, S3Artifacts
from trainer.service.store import STORE_URL_ENV, JobRecord, JobStore

log = logging.getLogger(__name__)

DEFAULT_RUNNER = "trainer.pipeline:run_training"
PROGRESS_INTERVAL_S = 0.5
CANCEL_CHECK_INTERVAL_S = 0.05
STAGE_STATES = {"loading": "training", "training": "training", "exporting": "exporting", "evaluating": "evaluating"}

JobRunner = Callable[..., Any]


def load_runner(path: str) -> JobRunner:
    """The job runner named `module:function`."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"job runner {path!r} must be written module:function")
    runner = getattr(importlib.import_module(module_name), attr)
    if not callable(runner):
        raise ValueError(f"job runner {path!r} is not callable")
    return runner  # type: ignore[no-any-return]


def spec_from_dict(spec: dict[str, Any]) -> Any:
    """The pipeline's TrainSpec from the JSON the job store keeps."""
    from edge.config.model import ZoneConfig
    from trainer.pipeline import TrainSpec

    values = {k: v for k, v in spec.items() if not k.startswith("_")}  # `_` keys are the service's, not TrainSpec's
    for key in ("data", "out", "signing_key", "weights_cache"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    if values.get("zones") is not None:
        values["zones"] = [ZoneConfig.model_validate(z) for z in values["zones"]]
    return TrainSpec(**values)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies; exit now if that already happened."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent-pid check in should_cancel still applies
        log.debug("parent-death signal not available")
    if os.getppid() != parent_pid:
        log.error("the trainer server (pid %s) is gone; not starting", parent_pid)
        sys.exit(3)


class _JobReporter:
    """The runner's progress callback and cancel check, both backed by the job store."""

    def __init__(self, store: JobStore, job: JobRecord, parent_pid: int | None) -> None:
        self.store = store
        self.job_id = job.id
        self.pid = os.getpid()
        self.parent_pid = parent_pid
        self.state = "training"
        self.last_write = 0.0
        self.last_check = 0.0
        self.cancelled = False
        self.lost = False  # the job is no longer ours (the server marked it failed)

    def progress(self, p: Any) -> None:
        """Store one Progress report (stage changes at once, the rest at most every PROGRESS_INTERVAL_S)."""
        state = STAGE_STATES.get(p.stage, self.state)
        now = time.monotonic()
        if state == self.state and now - self.last_write < PROGRESS_INTERVAL_S and p.stage != "done":
            return
        self.state = state
        self.last_write = now
        progress = {
            "stage": p.stage,
            "fraction": round(float(p.fraction), 4),
            "epoch": p.epoch,
            "epochs": p.epochs,
            "loss": None if p.loss is None else round(float(p.loss), 6),
            "message": p.message,
        }
        eta = None if p.eta_seconds is None else round(float(p.eta_seconds), 1)
        if not self.store.report_progress(self.job_id, self.pid, state, progress, eta):
            self.lost = True

    def should_cancel(self) -> bool:
        """True once a cancel was requested, the job was taken from us, or the server died."""
        if self.cancelled or self.lost:
            return True
        now = time.monotonic()
        if now - self.last_check < CANCEL_CHECK_INTERVAL_S:
            return False
        self.last_check = now
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            log.error("the trainer server is gone; stopping job %s", self.job_id)
            self.lost = True
        elif self.store.cancel_requested(self.job_id):
            self.cancelled = True
        return self.cancelled or self.lost


class _Heartbeat:
    """A thread that tells the job store every `interval_s` that this worker still runs the job (Celery mode: the
    API fails a job whose heartbeat stops, e.g. its worker was killed)."""

    def __init__(self, reporter: _JobReporter, interval_s: float) -> None:
        self.reporter = reporter
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{reporter.job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if not self.reporter.store.heartbeat(self.reporter.job_id, self.reporter.pid):
                    self.reporter.lost = True  # the API gave up on us (or the job ended): stop at the next step
                    return
            except Exception:  # a transient database error: the next beat retries
                log.exception("job %s: heartbeat failed", self.reporter.job_id)


def run_job(
    store: JobStore,
    job_id: str,
    runner: JobRunner,
    parent_pid: int | None,
    *,
    worker: str | None = None,
    heartbeat_s: float | None = None,
    artifacts: Artifacts | None = None,
) -> str:
    """Claim and run one job to a terminal state; returns that state (or 'lost').

    `parent_pid` None: no parent to die with (a Celery worker); `heartbeat_s`: beat that often while running.
    """
    pid = os.getpid()
    if not store.claim(job_id, pid, worker or f"{socket.gethostname()}:{pid}"):
        log.info("job %s is no longer queued; nothing to do", job_id)
        return "lost"
    job = store.get_job(job_id)
    reporter = _JobReporter(store, job, parent_pid)
    log.info("job %s: training in worker %s", job_id, worker or pid)
    if heartbeat_s is None:
        return _run_claimed(store, job, runner, reporter, artifacts)
    with _Heartbeat(reporter, heartbeat_s):
        return _run_claimed(store, job, runner, reporter, artifacts)


def _local_spec(job: JobRecord, artifacts: Artifacts | None) -> Any:
    """The job's TrainSpec; with object storage, its dataset fetched into this worker's data_dir and the bundle
    written there (paths in the stored spec are those of the API that queued it)."""
    spec = spec_from_dict(job.spec)
    if artifacts is None or not artifacts.remote:
        return spec
    import dataclasses

    root = artifacts.ensure_dataset(job.dataset)
    data_dir = root.parent.parent
    return dataclasses.replace(
        spec,
        data=root / job.spec.get("_data_rel", "."),
        out=data_dir / "bundles" / job.id,
        weights_cache=data_dir / "weights",
    )


def _run_claimed(
    store: JobStore, job: JobRecord, runner: JobRunner, reporter: _JobReporter, artifacts: Artifacts | None = None
) -> str:
    from trainer.errors import TrainingCancelled

    job_id, pid = job.id, reporter.pid
    outcome: dict[str, Any]
    try:
        spec = _local_spec(job, artifacts)
        result = runner(spec, reporter.progress, reporter.should_cancel)
        if artifacts is not None:
            artifacts.publish_bundle(job.id, Path(result.bundle_dir))
    except TrainingCancelled:
        state, outcome = "cancelled", {"error": "cancelled on request"}
    except ShelfwatchError as err:
        state, outcome = "failed", {"error": str(err)}
    except Exception as err:  # a bug must still end the job with a reason, never leave it running
        log.error("job %s crashed:\n%s", job_id, traceback.format_exc())
        state, outcome = "failed", {"error": f"internal error: {type(err).__name__}: {err}"}
    else:
        if reporter.cancelled:
            # The runner finished in the same instant the cancel arrived; the bundle is complete, keep it.
            log.info("job %s finished before the cancel request took effect", job_id)
        state = "succeeded"
        outcome = {
            "metrics": _jsonable(result.metrics),
            "warnings": [str(w) for w in result.warnings],
            "bundle": str(result.bundle_dir),
            "progress": {"stage": "done", "fraction": 1.0, "message": f"bundle {result.version} ready"},
        }
    if reporter.lost and state != "succeeded":
        log.warning("job %s was taken over by the server; not recording %s", job_id, state)
        return "lost"
    if not store.finish(job_id, state, pid=pid, **outcome):
        log.warning("job %s was already finished by the server; %s not recorded", job_id, state)
        return "lost"
    log.info("job %s %s", job_id, state)
    return state


def _jsonable(value: Any) -> Any:
    """Metrics as plain JSON types (numpy scalars and arrays become numbers and lists)."""
    import json

    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    parser = argparse.ArgumentParser(prog="python -m trainer.service.worker")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--job", required=True)
    parser.add_argument("--runner", default=DEFAULT_RUNNER)
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s worker[{args.job}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _die_with_parent(args.parent_pid)
    store = JobStore(args.data_dir, os.environ.get(STORE_URL_ENV) or None)
    artifacts = S3Artifacts.from_env(args.data_dir)
    state = run_job(store, args.job, load_runner(args.runner), args.parent_pid, artifacts=artifacts)
    return 0 if state in ("succeeded", "cancelled", "lost") else 1


if __name__ == "__main__":
    sys.exit(main())
