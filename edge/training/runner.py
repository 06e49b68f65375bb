"""Training round trips on a background thread: dataset -> job -> report -> bundle -> install -> deploy decision.

`submit_job()` is the first half (hand the dataset over, create the job) that `shelfwatch edge train` without
`--wait` runs alone; `TrainingRunner` runs the whole round trip for the web page and `edge train --wait`.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from edge.errors import ConflictError, ShelfwatchError, TrainerError
from edge.store.schema import DEFAULT_PROJECT_ID
from edge.timestamps import utc_stamp
from edge.training.client import CHUNK, TrainerClient, WaitStopped
from edge.training.deploy import decide_deployment, refused
from edge.training.history import RUNS_DIR, RunHistory, interrupted
from edge.training.runs import RUN_STATES_ACTIVE, RunRequest, TrainingRun, now_iso
from edge.vocabulary import TASKS

if TYPE_CHECKING:
    from edge.model_repository import ModelRepository
    from edge.store import DatasetStore

log = logging.getLogger(__name__)


def submit_job(
    client: TrainerClient,
    store: DatasetStore,
    request: RunRequest,
    on_dataset: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Hand the dataset to the trainer (upload or pull) and start the job; (dataset record, job status).

    `on_dataset` is called once the trainer holds the dataset, before the job is created (it may raise to stop).
    """
    if request.source == "pull":
        if not (request.device_url and request.device_token):
            raise TrainerError("source pull needs the device URL and an API token for the trainer")
        try:
            # The default project needs no `project` (a trainer from before projects pulls it as it always did).
            project = request.project if request.project not in (None, DEFAULT_PROJECT_ID) else None
            dataset = client.pull_dataset(request.device_url, request.device_token, project=project)
        finally:
            if request.after_dataset is not None:
                request.after_dataset()
    else:
        dataset = client.upload_store(store, project=request.project)
    if on_dataset is not None:
        on_dataset(dataset)
    job = client.create_job(dataset["id"], request.task, **request.job_params())
    return dataset, job


class TrainingRunner:
    """Drives training round trips on a background thread, one at a time, and keeps their history on disk.

    `client_factory()` makes the TrainerClient (so a changed config or a test server is picked up per run);
    `store` is the DatasetStore; `models` the ModelRepository the bundle is installed into. The history lives in
    <data_dir>/<history_dir>/ (edge.training.history). After a restart, `resume_interrupted()` follows again the
    trainer jobs of the runs that were in progress (the trainer keeps its jobs), so a device restart does not lose a
    training.
    """

    def __init__(
        self,
        client_factory: Callable[[], TrainerClient],
        store: DatasetStore,
        models: ModelRepository,
        data_dir: str | Path,
        *,
        history_dir: str = RUNS_DIR,
        poll_seconds: float = 3.0,
        on_finish: Callable[[TrainingRun], None] | None = None,
    ) -> None:
        self.client_factory = client_factory
        self.store = store
        self.models = models
        self.history = RunHistory(Path(data_dir) / history_dir)
        self.poll_seconds = poll_seconds
        self.on_finish = on_finish
        self._cancel: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()

    # -- queries -----------------------------------------------------------------------------------------------

    def runs(self, project: int | None = None) -> list[TrainingRun]:
        """Every remembered run (of `project` when given; older runs without one are the default's), newest first."""
        runs = self.history.runs()
        if project is None:
            return runs
        return [run for run in runs if (run.project or DEFAULT_PROJECT_ID) == project]

    def current(self) -> TrainingRun | None:
        """The run in progress, if any."""
        return next(iter(self.history.in_progress()), None)

    def get(self, run_id: str) -> TrainingRun:
        """One run by id; NotFoundError when unknown."""
        return self.history.get(run_id)

    def report(self, run_id: str) -> dict[str, Any] | None:
        """The evaluation report of a run (report.json), once it has one."""
        return self.history.report(run_id)

    def describe(self, run: TrainingRun) -> dict[str, Any]:
        """The run's JSON form, `active` computed against the model repository's active version now."""
        try:
            active_version = self.models.active_version()
        except Exception as err:  # an unreadable repository must not break the training page
            log.warning("cannot read the active model version: %s", err)
            active_version = None
        return run.as_dict(active_version)

    # -- changes -----------------------------------------------------------------------------------------------

    def start(self, request: RunRequest) -> TrainingRun:
        """Start a round trip on a background thread; ConflictError while another one runs."""
        if request.task not in TASKS:
            raise TrainerError(f"task must be classification or detection, got {request.task!r}")
        if request.source not in ("upload", "pull"):
            raise TrainerError(f"source must be upload or pull, got {request.source!r}")
        if request.source == "pull" and not (request.device_url and request.device_token):
            raise TrainerError("source pull needs the device URL and an API token for the trainer")
        client = self.client_factory()  # fails early (no trainer configured) before anything is recorded
        created = now_iso()
        run = TrainingRun(
            id=f"run-{utc_stamp()}-{secrets.token_hex(3)}",
            task=request.task,
            backbone=request.backbone,
            epochs=request.epochs,
            deploy_threshold=request.deploy_threshold,
            metric=request.headline_metric(),
            source=request.source,
            created=created,
            updated=created,
            project=request.project,
            project_name=request.project_name,
        )
        self.history.add(run)
        self._launch(run, functools.partial(self._round_trip, run, request, client))
        log.info("training run %s started (%s, %s)", run.id, run.task, run.backbone or "default backbone")
        return run

    def resume_interrupted(self) -> list[TrainingRun]:
        """Follow again the trainer jobs of runs the previous process left in progress (the trainer keeps them)."""
        resumed = []
        for run in self.history.in_progress():
            if run.id in self._threads:
                continue
            try:
                client = self.client_factory()
            except TrainerError as err:
                self._update(run, state="failed", error=f"{interrupted(run)}; cannot resume: {err}")
                continue
            assert run.job_id is not None
            log.info("training run %s: following trainer job %s again after a restart", run.id, run.job_id)
            self._launch(run, functools.partial(self._follow_job, run, client, run.job_id))
            resumed.append(run)
        return resumed

    def cancel(self, run_id: str) -> TrainingRun:
        """Ask a running round trip to stop (the trainer job is cancelled too); ConflictError when it ended."""
        run = self.get(run_id)
        if not run.in_progress:
            raise ConflictError(f"training run {run_id} already ended ({run.state})")
        self._cancel.setdefault(run_id, threading.Event()).set()
        if run.job_id is not None:
            try:
                self.client_factory().cancel(run.job_id)
            except TrainerError as err:
                log.warning("cancelling trainer job %s failed: %s", run.job_id, err)
        log.info("training run %s: cancel requested", run_id)
        return run

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following trainer jobs (the device is stopping); runs in progress stay so, resumed at the next start."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for run_id, thread in list(self._threads.items()):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("training run %s: its thread did not stop within %.0f s", run_id, timeout)

    def join(self, run_id: str, timeout: float | None = None) -> TrainingRun:
        """Wait for a run's thread to end (the CLI and tests); the run."""
        thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout)
        return self.get(run_id)

    # -- the round trip ----------------------------------------------------------------------------------------

    def _update(self, run: TrainingRun, **changes: Any) -> None:
        self.history.update(run, **changes)

    def _launch(self, run: TrainingRun, work: Callable[[], None]) -> None:
        self._cancel.setdefault(run.id, threading.Event())  # a cancel may already have come
        thread = threading.Thread(target=self._drive, args=(run, work), name=f"train-{run.id}", daemon=True)
        self._threads[run.id] = thread
        thread.start()

    def _cancelled(self, run: TrainingRun) -> bool:
        event = self._cancel.get(run.id)
        return event is not None and event.is_set()

    def _check_cancel(self, run: TrainingRun) -> None:
        if self._cancelled(run):
            raise _Cancelled

    def _drive(self, run: TrainingRun, work: Callable[[], None]) -> None:
        try:
            work()
        except _Cancelled:
            self._update(run, state="cancelled", decision="cancelled by the user; the running model is unchanged")
        except WaitStopped:
            # Not a failure: the trainer keeps the job and resume_interrupted() follows it at the next start.
            log.info(
                "training run %s: the device is stopping; job %s is followed again at the next start",
                run.id,
                run.job_id,
            )
        except TrainerError as err:
            log.error("training run %s failed: %s", run.id, err)
            self._update(run, state="failed", error=str(err))
        except Exception as err:  # a background thread must record why it died
            log.exception("training run %s failed unexpectedly", run.id)
            self._update(run, state="failed", error=f"{type(err).__name__}: {err}")
        finally:
            self._cancel.pop(run.id, None)
            if self.on_finish is not None:
                try:
                    self.on_finish(run)
                except Exception:
                    log.exception("training run %s: finish callback failed", run.id)

    def _round_trip(self, run: TrainingRun, request: RunRequest, client: TrainerClient) -> None:
        self._update(run, state="uploading")

        def on_dataset(dataset: dict[str, Any]) -> None:
            self._update(run, dataset_id=dataset["id"])
            self._check_cancel(run)

        _, job = submit_job(client, self.store, request, on_dataset)
        self._update(run, job_id=job["id"], state="queued", job_state=job.get("state"))
        if self._cancelled(run):
            client.cancel(job["id"])
        self._follow_job(run, client, job["id"])

    def _follow_job(self, run: TrainingRun, client: TrainerClient, job_id: str) -> None:
        """Poll the trainer job to its end, then download, keep the report, install and decide."""

        def on_status(status: dict[str, Any]) -> None:
            state = str(status.get("state", "queued"))
            self._update(
                run,
                job_state=state,
                state=state if state in RUN_STATES_ACTIVE else run.state,
                progress=status.get("progress") or {},
                eta_seconds=status.get("eta_seconds"),
                metrics=status.get("metrics") or {},
                warnings=list(status.get("warnings") or []),
            )

        final = client.wait(
            job_id, poll_seconds=self.poll_seconds, on_status=on_status, should_stop=self._stopping.is_set
        )
        if final.get("state") == "cancelled":
            raise _Cancelled
        if final.get("state") != "succeeded":
            raise TrainerError(f"training job {job_id} {final.get('state')}: {final.get('error') or 'no reason given'}")
        self._check_cancel(run)
        if self._stopping.is_set():
            raise WaitStopped(f"job {job_id} succeeded while the device was stopping; installed at the next start")

        self._update(run, state="downloading")
        bundle = client.download_bundle(job_id, self.history.run_dir(run) / "bundle.tar.gz")
        try:
            self._save_report(run, client, job_id, bundle)
            self._check_cancel(run)
            self._update(run, state="installing")
            self._install(run, bundle)
        finally:
            bundle.unlink(missing_ok=True)

    def _save_report(self, run: TrainingRun, client: TrainerClient, job_id: str, bundle: Path) -> None:
        report: dict[str, Any] | None
        try:
            report = client.report(job_id)
        except TrainerError as err:
            log.info("job %s: no report from the trainer (%s); reading the bundle's", job_id, err)
            report = _report_from_archive(bundle)
        if report is not None:
            self.history.save_report(run, report)

    def _install(self, run: TrainingRun, bundle: Path) -> None:
        """Install the bundle, then activate it when decide_deployment() says so; the outcome goes in the run."""
        try:
            manifest = self.models.install(bundle, activate=False, project=run.project)
        except ShelfwatchError as err:
            reason = refused(err, running=self.models.active_version())
            log.error("training run %s: %s", run.id, reason)
            self._update(run, state="refused", error=str(err), decision=reason)
            return
        comparison = self._compare(run, manifest.version)
        decision = decide_deployment(
            manifest.version, manifest.metrics, run.metric, run.deploy_threshold, comparison=comparison
        )
        outcome: dict[str, Any] = {"version": manifest.version, "headline": decision.headline, "comparison": comparison}
        if decision.activate:
            try:
                self.models.activate(manifest.version)
            except ShelfwatchError as err:
                self._update(
                    run, state="refused", error=str(err), decision=refused(err, version=manifest.version), **outcome
                )
                return
            log.info("training run %s: %s", run.id, decision.reason)
        elif decision.headline is not None:
            log.warning("training run %s: %s", run.id, decision.reason)
        self._update(run, state=decision.state, activated=decision.activate, decision=decision.reason, **outcome)

    def _compare(self, run: TrainingRun, version: str) -> dict[str, Any] | None:
        """The new and the running version of the run's project on the same images (edge.assist.compare), both on
        the device's runtime; None when the project runs no version or has no comparison images."""
        running = self.models.active_version()
        project = run.project or DEFAULT_PROJECT_ID
        if running is None or running == version or self.models.version_tag(running)["project"] != project:
            return None
        from edge.assist.compare import compare
        from edge.runtime.wrappers import load_model

        def loader(bundle_dir: Path) -> Any:
            return load_model(bundle_dir, batch_budget_ms=None)

        installed = [r["installed"] for r in self.models.list_versions(project=project) if r["version"] == running]
        try:
            result = compare(
                self.store,
                project,
                run.metric,
                self.models.path_of(version),
                self.models.path_of(running),
                loader,
                running_installed=installed[0] if installed else None,
            )
        except Exception as err:  # the decision falls back to the threshold alone, and says so in the log
            log.warning("training run %s: comparing %s with the running %s failed: %s", run.id, version, running, err)
            return None
        return None if result is None else result.as_dict()


class _Cancelled(Exception):
    """The user cancelled the run."""


def _report_from_archive(bundle: Path) -> dict[str, Any] | None:
    """report.json read from a bundle archive without unpacking the rest (for display only, not trusted)."""
    try:
        with tarfile.open(bundle, "r:gz") as tf:
            for member in tf:
                if member.isfile() and PurePosixPath(member.name).name == "report.json" and member.size < 20 * CHUNK:
                    fh = tf.extractfile(member)
                    if fh is not None:
                        data = json.loads(fh.read())
                        return data if isinstance(data, dict) else None
    except (OSError, tarfile.TarError, ValueError) as err:
        log.info("cannot read report.json from %s: %s", bundle, err)
    return None
