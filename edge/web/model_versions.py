"""Installed models: list with metrics, upload a bundle (verified before install), activate, one-call rollback."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, send_file

from edge.errors import BundleError, NotFoundError
from edge.web.http import ApiError
from edge.web.runtime_common import config, require_service
from edge.web.security import requires

log = logging.getLogger(__name__)

bp = Blueprint("models", __name__)
NAV = [("models.page", "Models", 70)]

# Files of an installed bundle that the page may show (the trainer's evaluation pictures and report).
VIEWABLE_FILES = {
    "confusion_matrix.png": "image/png",
    "pr_curve.png": "image/png",
    "report.html": "text/html",
    "report.json": "application/json",
}
CHUNK = 1024 * 1024


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes", "on")


def models_payload() -> dict[str, Any]:
    """{"items": [...], "active": version | None, "previous": version | None, "last_refusal": {...} | None}."""
    repo = require_service("models")
    refusal = repo.last_refusal
    return {
        "items": repo.list_versions(),
        "active": repo.active_version(),
        "previous": repo.previous_version(),
        "last_refusal": refusal.as_dict() if refusal is not None else None,
    }


@bp.get("/models")
@requires("viewer")
def page() -> str:
    """The models page: installed versions, activate, rollback, upload, and a Predict try-out."""
    return render_template("models.html")


@bp.get("/api/v1/models")
@requires("viewer")
def list_models() -> Any:
    """Installed versions, newest first, with task, labels, metrics and active/previous flags."""
    return jsonify(models_payload())


@bp.post("/api/v1/models")
@requires("admin")
def upload_model() -> Any:
    """Install a bundle .tar.gz (multipart `file` or the raw body); verified first, 400 with the reason if refused."""
    repo = require_service("models")
    activate = _truthy(request.args.get("activate") or request.form.get("activate"))
    upload = request.files.get("file") if request.mimetype == "multipart/form-data" else None
    if request.mimetype == "multipart/form-data" and upload is None:
        raise ApiError(400, "no bundle in the multipart field 'file'")
    staging = Path(config().data_dir) / "uploads"
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(prefix="bundle-", suffix=".tar.gz", dir=staging) as tmp:
        stream = upload.stream if upload is not None else request.stream
        size = 0
        while chunk := stream.read(CHUNK):
            tmp.write(chunk)
            size += len(chunk)
        tmp.flush()
        if size == 0:
            raise ApiError(400, "the upload is empty: send a bundle .tar.gz")
        try:
            manifest = repo.install(tmp.name, activate=activate)
        except BundleError as err:
            # install() already logged the refusal; the running model is untouched.
            raise ApiError(400, f"bundle refused: {err}") from err
    log.info("bundle %s uploaded through the web (activate=%s)", manifest.version, activate)
    return jsonify({"version": manifest.version, "activated": activate, **models_payload()}), 201


@bp.post("/api/v1/models/<version>/activate")
@requires("admin")
def activate(version: str) -> Any:
    """Make an installed version the running one (re-verified first); the old one becomes the rollback target."""
    repo = require_service("models")
    try:
        repo.activate(version)
    except BundleError as err:
        raise ApiError(400, str(err)) from err
    return jsonify(models_payload())


@bp.post("/api/v1/models/rollback")
@requires("admin")
def rollback() -> Any:
    """Go back to the previous version in one call (409 when there is none)."""
    repo = require_service("models")
    try:
        repo.rollback()
    except BundleError as err:
        raise ApiError(400, str(err)) from err
    return jsonify(models_payload())


@bp.delete("/api/v1/models/<version>")
@requires("admin")
def remove(version: str) -> Any:
    """Delete an installed version that is neither active nor the rollback target."""
    require_service("models").remove(version)
    return jsonify(models_payload())


@bp.get("/api/v1/models/<version>/files/<name>")
@requires("viewer")
def bundle_file(version: str, name: str) -> Response:
    """An evaluation picture or report of an installed, verified bundle (confusion matrix, PR curve, report)."""
    if name not in VIEWABLE_FILES:
        raise NotFoundError(f"{name!r} is not a viewable bundle file ({', '.join(sorted(VIEWABLE_FILES))})")
    path = Path(require_service("models").path_of(version)) / name
    if not path.is_file():
        raise NotFoundError(f"model {version} has no {name}")
    return send_file(path, mimetype=VIEWABLE_FILES[name], max_age=3600)
