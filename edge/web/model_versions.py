"""Installed models: list with metrics, upload a bundle (verified before install), activate, one-call rollback.

Every route takes `project` (query parameter, JSON or form field; the default project when absent): the list shows
that project's versions, an upload is tagged with it, activate and rollback refuse (409) a version of another
project. People read a version by its display name, `<project> v3 · 2026-12-01 19:53` (the project's name, the
version's number in it, when it was trained); the version id stays what the API and MQTT name.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path, PurePath
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, send_file

from edge.errors import BundleError, ConflictError, NotFoundError
from edge.web.http import ApiError
from edge.web.projects import project_ref
from edge.web.runtime_common import config, require_service
from edge.web.security import requires, template_page
from edge.web.services import current_services

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


def _when(created: str | None) -> str:
    """`2026-12-01 19:53` from a manifest's ISO time (as written, UTC)."""
    text = (created or "").replace("T", " ")
    return text[:16] if len(text) >= 16 else text


def display_name(version: str, project: int | None = None) -> str:
    """`<project> v3 · 2026-12-01 19:53` for an installed version; the version id when it is not installed."""
    repo = current_services().models
    if repo is None:
        return version
    try:
        manifest = repo.get(version)
    except (NotFoundError, BundleError):
        return version
    tag = repo.version_tag(version)
    return _display(tag, manifest.created, _project_names())


def _project_names() -> dict[int, str]:
    return {p.id: p.name for p in current_services().store.list_projects()}


def _display(tag: dict[str, int], created: str | None, names: dict[int, str]) -> str:
    name = names.get(tag["project"], f"project {tag['project']}")
    when = _when(created)
    return f"{name} v{tag['number']}" + (f" · {when}" if when else "")


def _row(row: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    row["project_name"] = names.get(row["project"])
    row["display_name"] = _display(row, row.get("created"), names)
    return row


def _requested_project() -> int:
    return int(current_services().store.get_project(project_ref()).id)


def models_payload(project: int | None = None) -> dict[str, Any]:
    """{"items": [...], "active", "previous", "last_refusal", "project"}: `project`'s versions (None: the request's).

    `active` and `previous` are version ids (the one model the device runs may belong to another project), with
    `active_name`/`previous_name` their display names.
    """
    repo = require_service("models")
    pid = project if project is not None else _requested_project()
    names = _project_names()
    refusal = repo.last_refusal
    active, previous = repo.active_version(), repo.previous_version()
    return {
        "items": [_row(row, names) for row in repo.list_versions(project=pid)],
        "active": active,
        "active_name": display_name(active) if active else None,
        "previous": previous,
        "previous_name": display_name(previous) if previous else None,
        "last_refusal": refusal.as_dict() if refusal is not None else None,
        "project": {"id": pid, "name": names.get(pid)},
    }


def _check_project(version: str, pid: int) -> None:
    """ConflictError when an installed `version` belongs to another project than `pid`."""
    repo = require_service("models")
    repo.get(version)  # 404 for an unknown version first
    owner = repo.version_tag(version)["project"]
    if owner != pid:
        names = _project_names()
        raise ConflictError(
            f"model {version} belongs to project {names.get(owner, owner)!r}, not {names.get(pid, pid)!r}"
        )


# The models page: installed versions, activate, rollback, upload, and a Predict try-out.
template_page(bp, "/models", "models.html")


@bp.get("/api/v1/models")
@requires("viewer")
def list_models() -> Any:
    """A project's installed versions, newest first, with task, labels, metrics, display name, active/previous."""
    return jsonify(models_payload())


@bp.post("/api/v1/models")
@requires("admin")
def upload_model() -> Any:
    """Install a bundle .tar.gz (multipart `file` or the raw body); verified first, 400 with the reason if refused."""
    repo = require_service("models")
    pid = _requested_project()
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
            manifest = repo.install(tmp.name, activate=activate, project=pid)
        except BundleError as err:
            # install() already logged the refusal; the running model is untouched.
            raise ApiError(400, f"bundle refused: {err}") from err
    log.info("bundle %s uploaded through the web (activate=%s)", manifest.version, activate)
    return jsonify({"version": manifest.version, "activated": activate, **models_payload(pid)}), 201


@bp.post("/api/v1/models/<version>/activate")
@requires("admin")
def activate(version: str) -> Any:
    """Make an installed version the running one (re-verified first); the old one becomes the rollback target."""
    repo = require_service("models")
    pid = _requested_project()
    _check_project(version, pid)
    try:
        repo.activate(version)
    except BundleError as err:
        raise ApiError(400, str(err)) from err
    return jsonify(models_payload(pid))


@bp.post("/api/v1/models/rollback")
@requires("admin")
def rollback() -> Any:
    """Go back to the previous version in one call (409 when there is none, or it is another project's)."""
    repo = require_service("models")
    pid = _requested_project()
    previous = repo.previous_version()
    if previous is not None:
        _check_project(previous, pid)
    try:
        repo.rollback()
    except BundleError as err:
        raise ApiError(400, str(err)) from err
    return jsonify(models_payload(pid))


@bp.delete("/api/v1/models/<version>")
@requires("admin")
def remove(version: str) -> Any:
    """Delete an installed version of the project that is neither active nor the rollback target."""
    pid = _requested_project()
    _check_project(version, pid)
    require_service("models").remove(version)
    return jsonify(models_payload(pid))


_ABSOLUTE = re.compile(r"^(/|[A-Za-z]:[\\/]|~/)")


def strip_paths(value: Any) -> Any:
    """A report or manifest as people may see it: absolute paths of the trainer's machine cut to their file name."""
    if isinstance(value, dict):
        return {k: strip_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_paths(v) for v in value]
    if isinstance(value, str) and _ABSOLUTE.match(value):
        return PurePath(value.replace("\\", "/")).name or "…"
    return value


def bundle_report(version: str) -> dict[str, Any]:
    """The installed version's report.json with the trainer's paths stripped (404 when it has none)."""
    path = Path(require_service("models").path_of(version)) / "report.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise NotFoundError(f"model {version} has no report") from err
    except ValueError as err:
        raise NotFoundError(f"model {version}'s report is unreadable") from err
    return strip_paths(data) if isinstance(data, dict) else {}


@bp.get("/models/<version>/report")
@requires("viewer")
def report_page(version: str) -> str:
    """The evaluation report of an installed version as a page: metrics, warnings, per label, figures, mistakes."""
    repo = require_service("models")
    manifest = repo.get(version)
    report = bundle_report(version)
    files = [name for name in VIEWABLE_FILES if (Path(repo.path_of(version)) / name).is_file()]
    tag = repo.version_tag(version)
    mistakes = report.get("mistakes", (report.get("metrics") or {}).get("mistakes"))
    if isinstance(mistakes, list):
        report["mistakes"] = _with_image_ids(mistakes, tag["project"])
    return render_template(
        "model_report.html",
        version=version,
        name=display_name(version),
        manifest=strip_paths(manifest.model_dump(mode="json")),
        report=report,
        files=files,
        project=tag["project"],
        active=repo.active_version() == version,
    )


def _with_image_ids(mistakes: list[Any], project: int) -> list[dict[str, Any]]:
    """The mistakes with the device's image id of each (the dataset name the upload or pull gave the image)."""
    store = current_services().store
    by_path: dict[str, int] = {}
    page = 1
    while True:
        images, total = store.list_images(page=page, page_size=500, project=project)
        for image in images:
            by_path[str(store.image_path(image.id))] = image.id
        if page * 500 >= total or not images:
            break
        page += 1
    by_name = {
        sample.name: by_path.get(str(sample.path))
        for sample in store.export_dataset(only_tagged=True, project=project).samples
    }
    out = []
    for m in mistakes:
        if not isinstance(m, dict):
            continue
        name = str(m.get("image") or "")
        pulled = re.fullmatch(r"image-(\d+)(\.\w+)?", name)  # a pulled dataset names images by their id
        image_id = by_name.get(name) or by_name.get(PurePath(name).name)  # COCO file names may carry a folder
        pulled = pulled or re.fullmatch(r"image-(\d+)(\.\w+)?", PurePath(name).name)
        if image_id is None and pulled:
            image_id = int(pulled.group(1))
        out.append(m | {"image_id": image_id})
    return out


@bp.get("/api/v1/models/<version>/report")
@requires("viewer")
def report_json(version: str) -> Any:
    """The installed version's report.json as shown to people (absolute paths of the trainer cut to file names)."""
    return jsonify(bundle_report(version))


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
