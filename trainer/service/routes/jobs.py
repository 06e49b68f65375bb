"""Training jobs: queue, list, show, cancel, and the bundle and report of a finished one."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal

from flask import Blueprint, jsonify, request, send_file
from pydantic import Field

from edge.config.model import ZoneConfig
from edge.errors import ConflictError, NotFoundError
from edge.strict import StrictModel
from edge.vocabulary import Backbone, Task
from trainer.service.http import error_response
from trainer.service.services import BUNDLES_DIR, TrainerServices, services
from trainer.service.store import JOB_STATES, new_id

log = logging.getLogger(__name__)

bp = Blueprint("jobs", __name__)
# The model's name in its manifest: a device sends its project's name ("Shelf rows"); printable, one line, no
# path separators.
_NAME = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,64}$")


class JobRequest(StrictModel):
    """The JSON body of POST /v1/jobs; omitted knobs take trainer.yaml's `training` defaults."""

    dataset: str = Field(min_length=1, max_length=64)
    task: Task
    backbone: Backbone | None = None
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


@bp.post("/v1/jobs")
def add_job() -> Any:
    """Queue a training job on a dataset -> 201 with the job status."""
    svc = services()
    body = JobRequest.model_validate(request.get_json(silent=False))
    dataset = svc.store.get_dataset(body.dataset)
    job_id = new_id("job")
    spec = train_spec(svc, job_id, dataset.path, dataset.format, body)
    # Where the data sits inside the dataset's folder: a worker with its own data_dir (object storage) finds it.
    parts = dataset.path.parts
    inner = parts[parts.index(dataset.id) + 1 :] if dataset.id in parts else ()
    spec["_data_rel"] = Path(*inner).as_posix() if inner else "."
    job = svc.store.add_job(dataset.id, spec, job_id=job_id)
    svc.queue.submit(job.id)
    log.info("job %s queued: %s on dataset %s", job.id, body.task, dataset.id)
    return jsonify(job.as_dict()), 201


@bp.get("/v1/jobs")
def list_jobs() -> Any:
    """Jobs, newest first (`?state=` filters, `?limit=` up to 1000)."""
    state = request.args.get("state") or None
    if state is not None and state not in JOB_STATES:
        return error_response(400, f"state must be one of {', '.join(JOB_STATES)}")
    try:
        limit = max(1, min(1000, int(request.args.get("limit", "100"))))
    except ValueError:
        return error_response(400, "limit must be a whole number")
    return jsonify({"items": [j.as_dict() for j in services().store.list_jobs(state=state, limit=limit)]})


@bp.get("/v1/jobs/<job_id>")
def get_job(job_id: str) -> Any:
    """One job's state, progress, ETA, metrics, error and warnings."""
    return jsonify(services().store.get_job(job_id).as_dict())


@bp.post("/v1/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> Any:
    """Ask a job to stop (queued: at once; running: within one training step) -> 202 with its status."""
    svc = services()
    job = svc.store.request_cancel(job_id)
    svc.queue.cancel(job_id)
    return jsonify(job.as_dict()), 202


@bp.get("/v1/jobs/<job_id>/bundle")
def get_bundle(job_id: str) -> Any:
    """The signed bundle of a succeeded job as .tar.gz."""
    from edge.bundle import pack_bundle

    svc = services()
    bundle_dir = finished_bundle(svc, job_id)
    packed = svc.data_dir / BUNDLES_DIR / f"{job_id}.tar.gz"
    if not packed.is_file():
        pack_bundle(bundle_dir, packed)
    return send_file(packed, mimetype="application/gzip", as_attachment=True, download_name=f"{job_id}.tar.gz")


@bp.get("/v1/jobs/<job_id>/report")
def get_report(job_id: str) -> Any:
    """The job's evaluation report: report.json, or report.html with `?format=html`."""
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "html"):
        return error_response(400, "format must be json or html")
    path = finished_bundle(services(), job_id) / f"report.{fmt}"
    if not path.is_file():
        raise NotFoundError(f"job {job_id} has no report.{fmt}")
    mimetype = "application/json" if fmt == "json" else "text/html"
    return send_file(path, mimetype=mimetype)


def finished_bundle(svc: TrainerServices, job_id: str) -> Path:
    """The bundle folder of a succeeded job (fetched from object storage when needed); 409 before that, 404 when
    its files are gone."""
    job = svc.store.get_job(job_id)
    if job.state != "succeeded" or not job.bundle:
        raise ConflictError(f"job {job_id} is {job.state}; its bundle exists once it has succeeded")
    bundle_dir = svc.artifacts.ensure_bundle(job_id) if svc.artifacts.remote else Path(job.bundle)
    if not (bundle_dir / "manifest.json").is_file():
        raise NotFoundError(f"the bundle of job {job_id} is missing on the server")
    return bundle_dir


def train_spec(svc: TrainerServices, job_id: str, data: Path, fmt: str, body: JobRequest) -> dict[str, Any]:
    """The TrainSpec fields of a job as JSON: the request, with trainer.yaml's defaults filled in."""
    from trainer.weight_signatures import resolve_backbone

    training = svc.config.training
    weights = {"default": training.weights, "imagenet": "imagenet", "none": None}[body.weights]
    return {
        "data": str(data),
        "fmt": fmt,
        "task": body.task,
        "out": str(svc.data_dir / BUNDLES_DIR / job_id),
        # A trainer.yaml that sets weights to a file but no backbone trains the backbone that file belongs to.
        "backbone": resolve_backbone(
            body.backbone or (training.backbone if "backbone" in training.model_fields_set else None), weights
        ),
        "weights": weights,
        "epochs": body.epochs if body.epochs is not None else training.epochs,
        "seed": body.seed if body.seed is not None else training.seed,
        "signing_key": str(svc.signing_key),
        "name": body.name,
        "input_size": body.input_size,
        "zones": [z.model_dump() for z in body.zones] if body.zones is not None else None,
        "threads": training.threads,
        "int8": body.int8 if body.int8 is not None else training.int8,
        "alert_labels": body.alert_labels,
        "min_per_label": body.min_per_label,
        "views": body.views,
        "weights_cache": str(training.weights_cache or svc.data_dir / "weights"),
    }
