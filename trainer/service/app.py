"""The trainer's REST API (DESIGN.md "Trainer REST API"), as a Flask app factory; see docs/TRAINER_API.md.

Every route but `GET /v1/health` needs `Authorization: Bearer <token>` with one of `server.tokens`; the comparison
is constant-time (hmac.compare_digest against every configured token). With no token configured every request is
refused with 401 and a message saying so. Errors are JSON `{"error": "..."}`: 400 bad input (naming the file),
401 auth, 404 unknown id, 409 wrong state (bundle of an unfinished job), 413 size limits.
"""

from __future__ import annotations

import hmac
import logging
import re
from pathlib import Path
from typing import Any, Literal

from flask import Flask, Response, jsonify, request, send_file
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from edge import __version__
from edge.config.model import ZoneConfig
from edge.errors import ConflictError, ImageTooLargeError, NotFoundError, ShelfwatchError
from trainer.config import TrainerConfig
from trainer.service.datasets import (
    MAX_PIXELS,
    UPLOADS_DIR,
    ArchiveTooLarge,
    Limits,
    PullRequest,
    ingest_archive,
    pull_dataset,
    save_upload,
)
from trainer.service.scheduler import Scheduler
from trainer.service.store import JOB_STATES, JobStore, new_id

log = logging.getLogger(__name__)

MIB = 1024 * 1024
BUNDLES_DIR = "bundles"
STORE_KEY = "shelfwatch.trainer.store"
SCHEDULER_KEY = "shelfwatch.trainer.scheduler"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEALTH = "/v1/health"


class JobRequest(BaseModel):
    """The JSON body of POST /v1/jobs; omitted knobs take trainer.yaml's `training` defaults."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=64)
    task: Literal["classification", "detection"]
    backbone: Literal["squeezenet1_1", "mobilenet_v3_small", "mobilenet_v3_large"] | None = None
    weights: Literal["imagenet", "none", "default"] = "default"
    epochs: int | None = Field(None, ge=1, le=1000)
    seed: int | None = None
    name: str = Field("shelfwatch", pattern=_NAME.pattern)
    input_size: int | None = Field(None, ge=32, le=1024)
    int8: bool | None = None
    alert_labels: list[str] | None = None
    min_per_label: int = Field(10, ge=2, le=1000)
    views: int | None = Field(None, ge=1, le=50)
    zones: list[ZoneConfig] | None = None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    resp = jsonify({"error": message})
    resp.status_code = status
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _status_for(err: ShelfwatchError) -> int:
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, ConflictError):
        return 409
    if isinstance(err, ArchiveTooLarge | ImageTooLargeError):
        return 413
    return 400


def token_matches(given: str, tokens: list[str]) -> bool:
    """Whether `given` equals one of `tokens`, compared in constant time against every one of them."""
    matched = False
    for token in tokens:
        # No short-circuit: every configured token is compared, so timing says nothing about which one is close.
        matched |= hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))
    return matched


def create_app(
    config: TrainerConfig,
    *,
    runner: str | None = None,
    start_scheduler: bool = True,
) -> Flask:
    """The API app for this config; `runner` (module:function) replaces trainer.pipeline:run_training in workers."""
    from trainer.service.worker import DEFAULT_RUNNER

    data_dir = Path(config.data_dir)
    store = JobStore(data_dir)
    recovered = store.recover_after_restart()
    _remove_stale_staging(data_dir)
    signing_key = _ensure_signing_key(config, data_dir)
    tokens = [t.get_secret_value() for t in config.server.tokens if t.get_secret_value()]
    if not tokens:
        log.warning("server.tokens is empty: the trainer API refuses every request until a token is configured")
    limits = Limits(
        max_archive_bytes=int(config.server.max_archive_mb * MIB),
        max_image_mb=config.server.max_image_mb,
        max_pixels=MAX_PIXELS,
    )
    scheduler = Scheduler(store, workers=config.workers, runner=runner or DEFAULT_RUNNER, log_level=config.log_level)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = limits.max_archive_bytes + MIB  # multipart overhead; the file is held exactly
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[STORE_KEY] = store
    app.extensions[SCHEDULER_KEY] = scheduler
    app.extensions["shelfwatch.trainer.recovered"] = recovered

    @app.before_request
    def _authenticate() -> Response | None:
        if request.path == _HEALTH:
            return None
        challenge = {"WWW-Authenticate": 'Bearer realm="shelfwatch-trainer"'}
        if not tokens:
            return _error(
                401,
                "this trainer has no API token configured (server.tokens in trainer.yaml): every request is refused",
                challenge,
            )
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _error(401, "send Authorization: Bearer <token>", challenge)
        if not token_matches(value.strip(), tokens):
            return _error(401, "the bearer token is not valid", challenge)
        return None

    @app.errorhandler(ShelfwatchError)
    def _domain_error(err: ShelfwatchError) -> Response:
        return _error(_status_for(err), str(err))

    @app.errorhandler(ValidationError)
    def _validation_error(err: ValidationError) -> Response:
        parts = [f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()[:3]]
        return _error(400, "invalid request: " + "; ".join(parts))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge) -> Response:
        return _error(413, f"the upload is over the limit of {config.server.max_archive_mb:g} MiB")

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        return _error(err.code or 500, err.description or err.name)

    @app.get(_HEALTH)
    def health() -> Any:
        """Liveness for healthchecks (no token needed, reveals nothing but the version)."""
        return jsonify({"status": "ok", "version": __version__})

    @app.get("/v1/signing-key")
    def signing_key_info() -> Any:
        """The public key bundles are signed with (give it to devices as a trusted key)."""
        from edge.bundle import load_private_key, public_key_base64

        return jsonify({"public_key": public_key_base64(load_private_key(signing_key))})

    @app.post("/v1/datasets")
    def add_dataset() -> Any:
        """An archive upload (multipart field `file` or the raw body), or JSON {"source": {...}} to pull a device."""
        if request.is_json:
            body = PullRequest.model_validate(request.get_json(silent=False))
            record = pull_dataset(store, body, limits)
            return jsonify(record.as_dict()), 201
        fmt = request.args.get("format") or None
        upload = data_dir / UPLOADS_DIR / f"{new_id('upload')}.archive"
        try:
            if request.mimetype == "multipart/form-data":
                part = request.files.get("file")
                if part is None:
                    raise ShelfwatchError("no archive in the multipart field 'file'")
                save_upload(part.stream, upload, limits.max_archive_bytes)
            else:
                save_upload(request.stream, upload, limits.max_archive_bytes)
            record = ingest_archive(store, upload, fmt, limits)
        finally:
            upload.unlink(missing_ok=True)
        return jsonify(record.as_dict()), 201

    @app.get("/v1/datasets")
    def list_datasets() -> Any:
        """Every dataset."""
        return jsonify({"items": [d.as_dict() for d in store.list_datasets()]})

    @app.get("/v1/datasets/<dataset_id>")
    def get_dataset(dataset_id: str) -> Any:
        """One dataset."""
        return jsonify(store.get_dataset(dataset_id).as_dict())

    @app.post("/v1/jobs")
    def add_job() -> Any:
        """Queue a training job on a dataset -> 201 with the job status."""
        body = JobRequest.model_validate(request.get_json(silent=False))
        dataset = store.get_dataset(body.dataset)
        job_id = new_id("job")
        spec = _train_spec(config, data_dir, signing_key, job_id, dataset.path, dataset.format, body)
        job = store.add_job(dataset.id, spec, job_id=job_id)
        scheduler.wake()
        log.info("job %s queued: %s on dataset %s", job.id, body.task, dataset.id)
        return jsonify(job.as_dict()), 201

    @app.get("/v1/jobs")
    def list_jobs() -> Any:
        """Jobs, newest first (`?state=` filters, `?limit=` up to 1000)."""
        state = request.args.get("state") or None
        if state is not None and state not in JOB_STATES:
            return _error(400, f"state must be one of {', '.join(JOB_STATES)}")
        try:
            limit = max(1, min(1000, int(request.args.get("limit", "100"))))
        except ValueError:
            return _error(400, "limit must be a whole number")
        return jsonify({"items": [j.as_dict() for j in store.list_jobs(state=state, limit=limit)]})

    @app.get("/v1/jobs/<job_id>")
    def get_job(job_id: str) -> Any:
        """One job's state, progress, ETA, metrics, error and warnings."""
        return jsonify(store.get_job(job_id).as_dict())

    @app.post("/v1/jobs/<job_id>/cancel")
    def cancel_job(job_id: str) -> Any:
        """Ask a job to stop (queued: at once; running: within one training step) -> 202 with its status."""
        job = store.request_cancel(job_id)
        scheduler.wake()
        return jsonify(job.as_dict()), 202

    @app.get("/v1/jobs/<job_id>/bundle")
    def get_bundle(job_id: str) -> Any:
        """The signed bundle of a succeeded job as .tar.gz."""
        from edge.bundle import pack_bundle

        bundle_dir = _finished_bundle(store, job_id)
        packed = data_dir / BUNDLES_DIR / f"{job_id}.tar.gz"
        if not packed.is_file():
            pack_bundle(bundle_dir, packed)
        return send_file(packed, mimetype="application/gzip", as_attachment=True, download_name=f"{job_id}.tar.gz")

    @app.get("/v1/jobs/<job_id>/report")
    def get_report(job_id: str) -> Any:
        """The job's evaluation report: report.json, or report.html with `?format=html`."""
        fmt = request.args.get("format", "json")
        if fmt not in ("json", "html"):
            return _error(400, "format must be json or html")
        path = _finished_bundle(store, job_id) / f"report.{fmt}"
        if not path.is_file():
            raise NotFoundError(f"job {job_id} has no report.{fmt}")
        mimetype = "application/json" if fmt == "json" else "text/html"
        return send_file(path, mimetype=mimetype)

    if start_scheduler:
        scheduler.start()
    return app


def _finished_bundle(store: JobStore, job_id: str) -> Path:
    job = store.get_job(job_id)
    if job.state != "succeeded" or not job.bundle:
        raise ConflictError(f"job {job_id} is {job.state}; its bundle exists once it has succeeded")
    bundle_dir = Path(job.bundle)
    if not (bundle_dir / "manifest.json").is_file():
        raise NotFoundError(f"the bundle of job {job_id} is missing on the server")
    return bundle_dir


def _train_spec(
    config: TrainerConfig,
    data_dir: Path,
    signing_key: Path,
    job_id: str,
    data: Path,
    fmt: str,
    body: JobRequest,
) -> dict[str, Any]:
    """The TrainSpec fields of a job as JSON: the request, with trainer.yaml's defaults filled in."""
    training = config.training
    weights = {"default": training.weights, "imagenet": "imagenet", "none": None}[body.weights]
    return {
        "data": str(data),
        "fmt": fmt,
        "task": body.task,
        "out": str(data_dir / BUNDLES_DIR / job_id),
        "backbone": body.backbone or training.backbone,
        "weights": weights,
        "epochs": body.epochs if body.epochs is not None else training.epochs,
        "seed": body.seed if body.seed is not None else training.seed,
        "signing_key": str(signing_key),
        "name": body.name,
        "input_size": body.input_size,
        "zones": [z.model_dump() for z in body.zones] if body.zones is not None else None,
        "threads": training.threads,
        "int8": body.int8 if body.int8 is not None else training.int8,
        "alert_labels": body.alert_labels,
        "min_per_label": body.min_per_label,
        "views": body.views,
        "weights_cache": str(training.weights_cache or data_dir / "weights"),
    }


def _ensure_signing_key(config: TrainerConfig, data_dir: Path) -> Path:
    """The private key bundles are signed with: the configured one, or one kept under data_dir/bundles/keys/."""
    from trainer.pipeline import TrainSpec, signing_key_for

    configured = Path(config.signing_key.get_secret_value()) if config.signing_key is not None else None
    spec = TrainSpec(
        data=data_dir, fmt=None, task="classification", out=data_dir / BUNDLES_DIR / "_", signing_key=configured
    )
    private, _ = signing_key_for(spec)
    return private


def _remove_stale_staging(data_dir: Path) -> None:
    """Staging folders a killed worker left behind (a finished bundle is renamed into place, never staged)."""
    import shutil

    for folder in (data_dir / BUNDLES_DIR, data_dir / "datasets"):
        if folder.is_dir():
            for stale in folder.glob(".*-*"):
                if stale.is_dir() and ("staging" in stale.name or "extracting" in stale.name):
                    log.info("removing %s left by an interrupted run", stale)
                    shutil.rmtree(stale, ignore_errors=True)
    uploads = data_dir / UPLOADS_DIR
    if uploads.is_dir():
        shutil.rmtree(uploads, ignore_errors=True)
