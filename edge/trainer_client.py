"""HTTP client of the trainer service's REST API (DESIGN.md "Trainer REST API"), standard library only.

The device hands its dataset over in one of two ways: `upload_store()` exports the store as COCO (the one format
that carries image-level tags, boxes and splits together), zips it into a temporary file and streams it to
`POST /v1/datasets`; or `pull_dataset()` asks the trainer to fetch it page by page from this device's
`GET /api/v1/images?page=&page_size=` with an API token (the seeds' "generator"). Then `create_job()`,
`job()` polled by `wait()`, `cancel()`, `download_bundle()` (streamed to a file) and `report()`.

Every failure is a `TrainerError` carrying the trainer's own message (`{"error": ...}`) and the HTTP status.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from edge.errors import ConflictError, NotFoundError, ShelfwatchError, TrainerError

log = logging.getLogger(__name__)

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
UPLOAD_FORMAT = "coco"
CHUNK = 1024 * 1024
USER_AGENT = "shelfwatch-edge"


class TrainerHttpError(TrainerError):
    """The trainer answered with an HTTP error; `status` is its code and the message is the trainer's."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WaitStopped(TrainerError):
    """Waiting for a job was given up because this process is stopping (the job itself goes on)."""


class _ChainedReader:
    """Byte strings and one open file read back to back: a multipart body streamed without copying the file.

    http.client sends any object with `read(size)` in blocks, so this stays a plain reader.
    """

    def __init__(self, parts: Iterable[bytes | IO[bytes]]) -> None:
        self._parts = list(parts)

    def read(self, size: int = -1) -> bytes:
        """Up to size bytes (all of the current part when size < 0); b"" at the end."""
        while self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                if size < 0 or size >= len(part):
                    self._parts.pop(0)
                    if part:
                        return part
                    continue
                self._parts[0] = part[size:]
                return part[:size]
            chunk = part.read(CHUNK if size < 0 else size)
            if chunk:
                return bytes(chunk)
            self._parts.pop(0)
        return b""


class TrainerClient:
    """Talks to one trainer service with a bearer token; every method raises TrainerError on failure."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise TrainerError(f"trainer URL must be http(s)://host[:port], got {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_config(cls, config: Any) -> TrainerClient:
        """The client for an EdgeConfig's `trainer` section; TrainerError when no URL is configured."""
        section = config.trainer
        if not section.url:
            raise TrainerError("no trainer service configured (trainer.url in edge.yaml)")
        token = section.token.get_secret_value() if section.token is not None else None
        return cls(section.url, token, section.timeout_seconds)

    # ------------------------------------------------------------------------------------------------ plumbing

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; the open response (caller closes) or TrainerError with the trainer's message."""
        all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        req = urllib.request.Request(self.url + path, data=body, headers=all_headers, method=method)  # noqa: S310 - scheme checked in __init__
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)  # noqa: S310 - scheme checked in __init__
        except urllib.error.HTTPError as err:
            with err:
                message = _error_message(err.read(), err.code, err.reason)
            log.info("trainer %s %s -> %s: %s", method, path, err.code, message)
            raise TrainerHttpError(err.code, f"trainer: {message}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise TrainerError(f"trainer at {self.url} cannot be reached: {reason}") from err

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._request(method, path, **kwargs) as resp:
            raw = resp.read()
        try:
            return json.loads(raw) if raw else {}
        except ValueError as err:
            raise TrainerError(f"trainer answered {method} {path} with something that is not JSON") from err

    # ------------------------------------------------------------------------------------------------ datasets

    def upload_archive(self, archive: str | Path, fmt: str = UPLOAD_FORMAT) -> dict[str, Any]:
        """POST a dataset archive (.zip/.tar.gz) as multipart `file` with its `format`; the trainer's dataset record."""
        archive = Path(archive)
        boundary = "shelfwatch-" + secrets.token_hex(12)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="format"\r\n\r\n{fmt}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{archive.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = len(head) + archive.stat().st_size + len(tail)
        with archive.open("rb") as fh:
            reader = _ChainedReader([head, fh, tail])
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(size)}
            # Uploads of a whole dataset can take longer than one API call.
            path = f"/v1/datasets?format={_quote(fmt)}"
            record = self._json("POST", path, body=reader, headers=headers, timeout=max(self.timeout, 600))
        log.info("uploaded dataset archive %s (%d bytes) to the trainer: %s", archive.name, size, record.get("id"))
        return _require_id(record, "dataset")

    def upload_store(self, store: Any, *, only_tagged: bool = True) -> dict[str, Any]:
        """Export the dataset store as COCO, zip it in a temporary file and upload it; the trainer's record."""
        from edge.datasets.formats import write_dataset

        dataset = store.export_dataset(only_tagged=only_tagged)
        if not dataset.samples:
            raise TrainerError("the dataset has no tagged images to train on")
        work = Path(tempfile.mkdtemp(prefix="shelfwatch-upload-"))
        try:
            out = work / "dataset"
            write_dataset(dataset, out, UPLOAD_FORMAT)
            archive = work / "dataset.zip"
            # Images are already compressed: storing them saves CPU on a two-core device for nearly no size.
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
                for path in sorted(out.rglob("*")):
                    if path.is_file():
                        zf.write(path, path.relative_to(out).as_posix())
            return self.upload_archive(archive, UPLOAD_FORMAT)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def pull_dataset(self, device_url: str, device_token: str, page_size: int = 100) -> dict[str, Any]:
        """Ask the trainer to pull the dataset page by page; device_url is this device's API base (.../api/v1)."""
        body = {"source": {"url": device_url.rstrip("/"), "token": device_token, "page_size": page_size}}
        record = self._json("POST", "/v1/datasets", json_body=body, timeout=max(self.timeout, 600))
        return _require_id(record, "dataset")

    # ------------------------------------------------------------------------------------------------ jobs

    def create_job(self, dataset_id: str, task: str, **params: Any) -> dict[str, Any]:
        """Start a training job on an uploaded dataset (params: backbone, epochs, seed, ...); the job status."""
        body = {"dataset": dataset_id, "task": task, **{k: v for k, v in params.items() if v is not None}}
        return _require_id(self._json("POST", "/v1/jobs", json_body=body), "job")

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's status: state, progress, eta_seconds, metrics, error."""
        result: dict[str, Any] = self._json("GET", f"/v1/jobs/{_quote(job_id)}")
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the trainer to cancel a job; its status."""
        result: dict[str, Any] = self._json("POST", f"/v1/jobs/{_quote(job_id)}/cancel")
        return result

    def report(self, job_id: str) -> dict[str, Any]:
        """The evaluation report (report.json) of a finished job."""
        result: dict[str, Any] = self._json("GET", f"/v1/jobs/{_quote(job_id)}/report")
        return result

    def download_bundle(self, job_id: str, dest: str | Path) -> Path:
        """Stream the job's bundle (.tar.gz) to dest (written beside it, renamed when complete)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".bundle-", suffix=".part", dir=dest.parent)
        try:
            with (
                os.fdopen(fd, "wb") as out,
                self._request(
                    "GET",
                    f"/v1/jobs/{_quote(job_id)}/bundle",
                    headers={"Accept": "application/gzip, application/octet-stream"},
                    timeout=max(self.timeout, 600),
                ) as resp,
            ):
                expected = resp.headers.get("Content-Length")
                written = 0
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
            if expected is not None and expected.isdigit() and int(expected) != written:
                raise TrainerError(f"bundle download of job {job_id} was cut short ({written} of {expected} bytes)")
            os.replace(tmp_name, dest)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        log.info("downloaded the bundle of job %s (%d bytes) to %s", job_id, written, dest)
        return dest

    def wait(
        self,
        job_id: str,
        *,
        poll_seconds: float = 3.0,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        max_errors: int = 5,
    ) -> dict[str, Any]:
        """Poll until the job reaches succeeded/failed/cancelled; transient network errors are retried."""
        errors = 0
        while True:
            try:
                status = self.job(job_id)
                errors = 0
            except TrainerHttpError:
                raise
            except TrainerError as err:
                errors += 1
                if errors >= max_errors:
                    raise
                log.warning("polling job %s failed (%s); retrying", job_id, err)
                status = None
            if status is not None:
                if on_status is not None:
                    on_status(status)
                if status.get("state") in TERMINAL_STATES:
                    return status
            # Sleep in slices so that a stopping device does not wait out a whole poll interval.
            deadline = time.monotonic() + poll_seconds
            while True:
                if should_stop is not None and should_stop():
                    raise WaitStopped(f"stopped waiting for job {job_id}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(remaining, 0.2))


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _require_id(record: Any, what: str) -> dict[str, Any]:
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise TrainerError(f"the trainer's answer for the new {what} has no id")
    return record


def _error_message(raw: bytes, status: int, reason: str) -> str:
    """The trainer's {"error": ...} text, else a short form of whatever it sent."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])
    text = raw.decode("utf-8", "replace").strip()
    return text[:300] if text else f"HTTP {status} {reason}"


# ---------------------------------------------------------------------------------------------------- round trip

RUN_STATES_ACTIVE = (
    "starting",
    "uploading",
    "queued",
    "training",
    "evaluating",
    "exporting",
    "downloading",
    "installing",
)
RUN_STATES_DONE = ("deployed", "installed", "refused", "failed", "cancelled")
DEFAULT_DEPLOY_THRESHOLD = 0.85
HEADLINE_METRIC = {"classification": "accuracy", "detection": "map50"}
HISTORY_LIMIT = 50
RUNS_DIR = "training"
RUNS_FILE = "runs.json"
INTERRUPTED = "the device restarted while this run was in progress"  # when there is no trainer job to follow


@dataclass
class RunRequest:
    """What the user asked for: task, backbone, epochs, deploy threshold and how the dataset travels."""

    task: str
    backbone: str | None = None
    epochs: int | None = None
    seed: int | None = None
    input_size: int | None = None
    deploy_threshold: float = DEFAULT_DEPLOY_THRESHOLD
    metric: str | None = None  # headline metric compared with the threshold; default per task
    source: str = "upload"  # upload | pull
    device_url: str | None = None  # pull: the URL the trainer reaches this device at
    device_token: str | None = None  # pull: an API token of this device for the trainer
    after_dataset: Callable[[], None] | None = None  # called once the trainer holds the dataset (revoke the token)
    zones: list[dict[str, Any]] | None = None  # classification: train on these zone crops (what the pipeline crops)

    def headline_metric(self) -> str:
        """The metric compared with deploy_threshold."""
        return self.metric or HEADLINE_METRIC.get(self.task, "accuracy")


def training_zones(config: Any, store: Any, task: str, camera: str | None = None) -> list[dict[str, Any]] | None:
    """The zones a classifier should be trained on, so training crops exactly what the pipeline will classify.

    Detection trains on whole photos (None). For classification: the zones of `camera` (the web page's zones override
    edge.yaml's), or, when no camera is named, the one zone layout the enabled cameras have; several cameras with
    different layouts must be told apart with `camera`. No zones anywhere: whole images (None).
    """
    if task != "classification":
        return None

    def zones_of(cam: Any) -> list[dict[str, Any]]:
        edited = store.get_zones(cam.id)
        zones = edited if edited is not None else cam.zones
        return [z.model_dump(mode="json") for z in zones]

    cameras = [c for c in config.cameras if c.enabled]
    if camera is not None:
        chosen = next((c for c in config.cameras if c.id == camera), None)
        if chosen is None:
            raise NotFoundError(f"no camera {camera!r} on this device")
        return zones_of(chosen) or None
    layouts: dict[str, list[dict[str, Any]]] = {}
    for cam in cameras:
        zones = zones_of(cam)
        if zones:
            layouts.setdefault(json.dumps(zones, sort_keys=True), zones)
    if len(layouts) > 1:
        raise ConflictError(
            "the cameras have different zones: name the camera whose zones the classifier is trained on "
            f"({', '.join(c.id for c in cameras)})"
        )
    return next(iter(layouts.values()), None)


def training_plan(
    config: Any,
    store: Any,
    task: str | None,
    *,
    camera: str | None = None,
    use_zones: bool = True,
    strict: bool = True,
) -> tuple[str, list[dict[str, Any]] | None, dict[str, Any]]:
    """(task, zones, readiness summary): what a training run would train on, and the verdict judged for exactly that.

    `task` None: the store's default. With `strict` False (the review page), cameras with different zone layouts are
    judged by whole images instead of raising ConflictError.
    """
    from edge.config import ZoneConfig

    resolved = task or store.default_task()
    try:
        zones = training_zones(config, store, resolved, camera) if use_zones else None
    except ConflictError:
        if strict:
            raise
        zones = None
    summary = store.summary(resolved, [ZoneConfig.model_validate(z) for z in zones] if zones else None)
    return resolved, zones, summary


@dataclass
class TrainingRun:
    """One round trip: dataset -> job -> report -> bundle -> install (+ activate when good enough)."""

    id: str
    task: str
    backbone: str | None
    epochs: int | None
    deploy_threshold: float
    metric: str
    source: str
    state: str = "starting"
    created: str = ""
    updated: str = ""
    finished: str | None = None
    dataset_id: str | None = None
    job_id: str | None = None
    job_state: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    eta_seconds: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    headline: float | None = None
    version: str | None = None
    activated: bool = False
    decision: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    has_report: bool = False

    @property
    def in_progress(self) -> bool:
        """Whether the run is still going."""
        return self.state in RUN_STATES_ACTIVE

    def as_dict(self, active_version: str | None = None) -> dict[str, Any]:
        """JSON-friendly form (what the training API returns).

        `active` says whether this run's model is the device's active model now (`activated` only records the
        deploy decision, which a later activation or rollback overrides); `in_progress` whether the run still goes.
        """
        active = self.version is not None and self.version == active_version
        return asdict(self) | {"in_progress": self.in_progress, "active": active}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TrainingRunner:
    """Drives training round trips on a background thread, one at a time, and keeps their history on disk.

    `client_factory()` makes the TrainerClient (so a changed config or a test server is picked up per run);
    `store` is the DatasetStore; `models` the ModelRepository the bundle is installed into. The history lives in
    <data_dir>/<history_dir>/runs.json (newest HISTORY_LIMIT runs) with each run's report.json beside it; one
    process owns a history. After a restart, `resume_interrupted()` follows again the trainer jobs of the runs that
    were in progress (the trainer keeps its jobs), so a device restart does not lose a training.
    """

    def __init__(
        self,
        client_factory: Callable[[], TrainerClient],
        store: Any,
        models: Any,
        data_dir: str | Path,
        *,
        history_dir: str = RUNS_DIR,
        poll_seconds: float = 3.0,
        on_finish: Callable[[TrainingRun], None] | None = None,
    ) -> None:
        self.client_factory = client_factory
        self.store = store
        self.models = models
        self.dir = Path(data_dir) / history_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.poll_seconds = poll_seconds
        self.on_finish = on_finish
        self._lock = threading.Lock()
        self._runs: list[TrainingRun] = self._load()
        if any(run.error and run.error.startswith(INTERRUPTED) and run.finished for run in self._runs):
            self._save()  # record the runs _load() found dead
        self._cancel: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()

    # -- persistence -------------------------------------------------------------------------------------------

    def _load(self) -> list[TrainingRun]:
        path = self.dir / RUNS_FILE
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except ValueError:
            log.error("training history %s is unreadable; starting a new one", path)
            return []
        known = {f.name for f in fields(TrainingRun)}
        runs = []
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict) or "id" not in row:
                continue
            run = TrainingRun(**{k: v for k, v in row.items() if k in known})
            if run.in_progress and run.job_id is None:
                # Its thread died with the previous process before the trainer had a job: nothing to follow.
                # A run with a job is followed again by resume_interrupted() (installing twice is harmless).
                run.state, run.error, run.finished = "failed", _interrupted(run), _now_iso()
            runs.append(run)
        return runs

    def resume_interrupted(self) -> list[TrainingRun]:
        """Follow again the trainer jobs of runs the previous process left in progress (the trainer keeps them)."""
        resumed = []
        with self._lock:
            pending = [r for r in self._runs if r.in_progress and r.id not in self._threads]
        for run in pending:
            try:
                client = self.client_factory()
            except TrainerError as err:
                self._update(run, state="failed", error=f"{_interrupted(run)}; cannot resume: {err}")
                continue
            assert run.job_id is not None
            log.info("training run %s: following trainer job %s again after a restart", run.id, run.job_id)
            self._cancel[run.id] = threading.Event()
            work = functools.partial(self._follow_job, run, client, run.job_id)
            thread = threading.Thread(target=self._drive, args=(run, work), name=f"train-{run.id}", daemon=True)
            self._threads[run.id] = thread
            thread.start()
            resumed.append(run)
        return resumed

    def _save(self) -> None:
        path = self.dir / RUNS_FILE
        tmp = path.with_suffix(".tmp")
        rows = [asdict(r) for r in self._runs[:HISTORY_LIMIT]]
        tmp.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def _update(self, run: TrainingRun, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(run, key, value)
            run.updated = _now_iso()
            if not run.in_progress and run.finished is None:
                run.finished = run.updated
            self._save()

    # -- queries -----------------------------------------------------------------------------------------------

    def list(self) -> list[TrainingRun]:
        """Every remembered run, newest first."""
        with self._lock:
            return list(self._runs)

    def current(self) -> TrainingRun | None:
        """The run in progress, if any."""
        with self._lock:
            return next((r for r in self._runs if r.in_progress), None)

    def describe(self, run: TrainingRun) -> dict[str, Any]:
        """The run's JSON form, `active` computed against the model repository's active version now."""
        try:
            active_version = self.models.active_version()
        except Exception as err:  # an unreadable repository must not break the training page
            log.warning("cannot read the active model version: %s", err)
            active_version = None
        return run.as_dict(active_version)

    def get(self, run_id: str) -> TrainingRun:
        """One run by id; NotFoundError when unknown."""
        with self._lock:
            for run in self._runs:
                if run.id == run_id:
                    return run
        raise NotFoundError(f"training run {run_id!r} does not exist")

    def report(self, run_id: str) -> dict[str, Any] | None:
        """The evaluation report of a run (report.json), once it has one."""
        self.get(run_id)
        path = self.dir / run_id / "report.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return data

    # -- changes -----------------------------------------------------------------------------------------------

    def start(self, request: RunRequest) -> TrainingRun:
        """Start a round trip on a background thread; ConflictError while another one runs."""
        if request.task not in HEADLINE_METRIC:
            raise TrainerError(f"task must be classification or detection, got {request.task!r}")
        if request.source not in ("upload", "pull"):
            raise TrainerError(f"source must be upload or pull, got {request.source!r}")
        if request.source == "pull" and not (request.device_url and request.device_token):
            raise TrainerError("source pull needs the device URL and an API token for the trainer")
        client = self.client_factory()  # fails early (no trainer configured) before anything is recorded
        with self._lock:
            if any(r.in_progress for r in self._runs):
                raise ConflictError("a training run is already in progress; cancel it or wait for it to finish")
            created = _now_iso()
            run = TrainingRun(
                id=f"run-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}",
                task=request.task,
                backbone=request.backbone,
                epochs=request.epochs,
                deploy_threshold=request.deploy_threshold,
                metric=request.headline_metric(),
                source=request.source,
                created=created,
                updated=created,
            )
            self._runs.insert(0, run)
            del self._runs[HISTORY_LIMIT:]
            self._cancel[run.id] = threading.Event()
            self._save()
        work = functools.partial(self._round_trip, run, request, client)
        thread = threading.Thread(target=self._drive, args=(run, work), name=f"train-{run.id}", daemon=True)
        self._threads[run.id] = thread
        thread.start()
        log.info("training run %s started (%s, %s)", run.id, run.task, run.backbone or "default backbone")
        return run

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

    def _cancelled(self, run: TrainingRun) -> bool:
        event = self._cancel.get(run.id)
        return event is not None and event.is_set()

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

    def _check_cancel(self, run: TrainingRun) -> None:
        if self._cancelled(run):
            raise _Cancelled

    def _round_trip(self, run: TrainingRun, request: RunRequest, client: TrainerClient) -> None:
        self._update(run, state="uploading")
        if request.source == "pull":
            assert request.device_url is not None and request.device_token is not None
            try:
                dataset = client.pull_dataset(request.device_url, request.device_token)
            finally:
                if request.after_dataset is not None:
                    request.after_dataset()
        else:
            dataset = client.upload_store(self.store)
        self._update(run, dataset_id=dataset["id"])
        self._check_cancel(run)

        params = {
            "backbone": request.backbone,
            "epochs": request.epochs,
            "seed": request.seed,
            "input_size": request.input_size,
            "zones": request.zones,
        }
        job = client.create_job(dataset["id"], request.task, **params)
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
        run_dir = self.dir / run.id
        run_dir.mkdir(parents=True, exist_ok=True)
        bundle = client.download_bundle(job_id, run_dir / "bundle.tar.gz")
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
            (self.dir / run.id / "report.json").write_text(json.dumps(report), encoding="utf-8")
            self._update(run, has_report=True)

    def _install(self, run: TrainingRun, bundle: Path) -> None:
        try:
            manifest = self.models.install(bundle, activate=False)
        except ShelfwatchError as err:
            running = self.models.active_version() or "no model"
            reason = f"bundle refused: {err}; still running {running}"
            log.error("training run %s: %s", run.id, reason)
            self._update(run, state="refused", error=str(err), decision=reason)
            return
        value = manifest.metrics.get(run.metric)
        headline = float(value) if isinstance(value, int | float) else None
        if headline is None:
            decision = (
                f"installed {manifest.version} but not activated: the bundle reports no {run.metric} to compare "
                f"with the deploy threshold {run.deploy_threshold:g}"
            )
            self._update(run, state="installed", version=manifest.version, decision=decision)
            return
        if headline < run.deploy_threshold:
            decision = (
                f"installed {manifest.version} but not activated: {run.metric} {headline:.3f} is below the deploy "
                f"threshold {run.deploy_threshold:g}; the running model keeps going"
            )
            log.warning("training run %s: %s", run.id, decision)
            self._update(run, state="installed", version=manifest.version, headline=headline, decision=decision)
            return
        try:
            self.models.activate(manifest.version)
        except ShelfwatchError as err:
            reason = f"installed {manifest.version} but it could not be activated: {err}"
            self._update(
                run, state="refused", version=manifest.version, headline=headline, error=str(err), decision=reason
            )
            return
        decision = f"{run.metric} {headline:.3f} >= {run.deploy_threshold:g}: activated {manifest.version}"
        log.info("training run %s: %s", run.id, decision)
        self._update(
            run, state="deployed", version=manifest.version, headline=headline, activated=True, decision=decision
        )


class _Cancelled(Exception):
    """The user cancelled the run."""


def _interrupted(run: TrainingRun) -> str:
    if run.job_id:
        return f"{INTERRUPTED}; trainer job {run.job_id} may still finish there"
    return INTERRUPTED


def _report_from_archive(bundle: Path) -> dict[str, Any] | None:
    """report.json read from a bundle archive without unpacking the rest (for display only, not trusted)."""
    import tarfile

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
