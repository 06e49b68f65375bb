"""Datasets: upload an archive or pull a device, list, show, delete."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from edge.errors import ShelfwatchError
from trainer.service.datasets import UPLOADS_DIR, PullRequest, ingest_archive, pull_dataset, save_upload
from trainer.service.services import services
from trainer.service.store import new_id

bp = Blueprint("datasets", __name__)


@bp.post("/v1/datasets")
def add_dataset() -> Any:
    """An archive upload (multipart field `file` or the raw body), or JSON {"source": {...}} to pull a device."""
    svc = services()
    if request.is_json:
        body = PullRequest.model_validate(request.get_json(silent=False))
        record = pull_dataset(svc.store, body, svc.limits)
        _publish(record.id)
        return jsonify(record.as_dict()), 201
    fmt = request.args.get("format") or None
    upload = svc.data_dir / UPLOADS_DIR / f"{new_id('upload')}.archive"
    try:
        if request.mimetype == "multipart/form-data":
            part = request.files.get("file")
            if part is None:
                raise ShelfwatchError("no archive in the multipart field 'file'")
            save_upload(part.stream, upload, svc.limits.max_archive_bytes)
        else:
            save_upload(request.stream, upload, svc.limits.max_archive_bytes)
        record = ingest_archive(svc.store, upload, fmt, svc.limits)
    finally:
        upload.unlink(missing_ok=True)
    _publish(record.id)
    return jsonify(record.as_dict()), 201


def _publish(dataset_id: str) -> None:
    """Share a new dataset with the other replicas and workers; one that cannot be shared is not kept."""
    from trainer.service.retention import delete_dataset

    svc = services()
    try:
        svc.artifacts.publish_dataset(dataset_id)
    except ShelfwatchError:
        delete_dataset(svc.store, dataset_id, svc.artifacts)
        raise


@bp.get("/v1/datasets")
def list_datasets() -> Any:
    """Every dataset that is not deleted."""
    return jsonify({"items": [d.as_dict() for d in services().store.list_datasets()]})


@bp.get("/v1/datasets/<dataset_id>")
def get_dataset(dataset_id: str) -> Any:
    """One dataset."""
    return jsonify(services().store.get_dataset(dataset_id).as_dict())


@bp.delete("/v1/datasets/<dataset_id>")
def delete_dataset(dataset_id: str) -> Response:
    """Delete a dataset's files and record -> 204; 409 while a queued or running job uses it."""
    from trainer.service.retention import delete_dataset as delete

    delete(services().store, dataset_id, services().artifacts)
    return Response(status=204)
