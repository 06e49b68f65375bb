"""Model-assisted labelling API: an image's suggestions and accepting them, bulk suggest and accept, the review
queue (ordered by uncertainty or similarity, or the inbox) and the inbox's "N reviewed since v3" line.

Suggestions come from the project's active version (edge.assist.service); they become annotations only through
the accept routes (a person's action). The tag page's suggestion layer (static/suggestions.js) calls these.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Response

from edge.assist import room
from edge.assist.service import ActiveVersion, Assistant
from edge.assist.suggest import feature_model, remember_feature_model
from edge.errors import NotFoundError
from edge.web.http import ApiError, bool_arg, fraction_arg, int_arg, read_json, read_model
from edge.web.projects import project_ref
from edge.web.security import requires
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("assist", __name__)

ASSIST_KEY = "shelfwatch.assist"
MAX_PAGE_SIZE = 500


@bp.record_once
def _create_assistant(state: Any) -> None:
    """One Assistant per app, made with the app: images added from then on are "new" (suggested in the background)."""
    app = state.app
    services = app.extensions["shelfwatch"]
    app.extensions[ASSIST_KEY] = Assistant(
        services.store,
        services.models,
        slot=services.slot,
        config=app.config.get("SHELFWATCH_CONFIG"),
        stopping=app.extensions.get("shelfwatch.stopping"),
    )


def assistant() -> Assistant:
    """The app's Assistant."""
    found = current_app.extensions[ASSIST_KEY]
    assert isinstance(found, Assistant)
    return found


@bp.after_app_request
def _wake_after_writes(response: Response) -> Response:
    """After a request that may have added images (upload, capture, import), suggest for them in the background."""
    if response.status_code >= 400:
        return response
    if request.method not in ("POST", "PUT") and assistant().running:
        return response  # reads (pages, streams, static files) need nothing once the worker runs
    services = current_services()
    if services.models is None or services.models.active_version() is None:
        if request.method in ("POST", "PUT"):
            assistant().mark_seen()  # added while no version was active: not "new" for a later one
        return response
    if request.method in ("POST", "PUT"):
        assistant().wake()
    else:
        assistant().ensure_running()  # new frames of the inbox and CLI imports are found within IDLE_WAIT_S
    return response


def _load_feature_model(version: str | None) -> None:
    """Make `version`'s feature-map model available for pooling drawn boxes (after a restart no suggestion has run
    it in this process yet, and its stored box vectors would have nothing to be compared with)."""
    if version is None or version == "appearance" or feature_model(version) is not None:
        return
    try:
        remember_feature_model(version, assistant().model(version))
    except (NotFoundError, OSError, ValueError) as err:  # the version was deleted or its bundle is unreadable
        log.warning("box similarity: version %s's feature map is not available: %s", version, err)


def _active(project_id: int) -> ActiveVersion:
    active = assistant().active_for(project_id)
    if active is None:
        raise ApiError(404, "this project has no active model version: train one, or activate one of its versions")
    return active


def _model_info(active: ActiveVersion, version: str) -> dict[str, Any]:
    return {
        "project": active.project,
        "version": version,
        "number": active.number if version == active.version else None,
    }


@bp.get("/api/v1/images/<int:image_id>/suggestions")
@requires("viewer")
def get_suggestions(image_id: int) -> Any:
    """The active version's suggestions for an image (computed now when the image has none from it yet)."""
    store = current_services().store
    store.get_image(image_id, project=project_ref() if request.args.get("project") else None)
    project_id = store.image_project(image_id).id
    active = _active(project_id)
    record = room.get(store, image_id)
    if record is None or record.version != active.version:
        assistant().suggest_ids([image_id], active)
        record = room.get(store, image_id)
        if record is None:
            raise NotFoundError(f"image {image_id} could not be read for suggestions")
    _load_feature_model(room.box_source(record))
    per_box = room.box_similar(store, project_id, record) or [None] * len(record.boxes)
    boxes = [
        {k: v for k, v in box.items() if k != "embedding"} | ({"similar": sims} if sims is not None else {})
        for box, sims in zip(record.boxes, per_box, strict=True)
    ]
    body: dict[str, Any] = {"model": _model_info(active, record.version), "tags": record.tags, "boxes": boxes}
    similar = room.similar(store, project_id, record)
    if similar is not None:
        body["similar"] = similar
    body["threshold"] = active.threshold
    body["margin"] = record.margin
    return jsonify(body)


class AcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] | None = Field(None, max_length=100)
    boxes: list[int] | Literal["all"] | None = Field(None)
    min_score: float | None = Field(None, ge=0.0, le=1.0)
    project: int | str | None = None


@bp.post("/api/v1/images/<int:image_id>/suggestions/accept")
@requires("labeller")
def accept_suggestions(image_id: int) -> Any:
    """Accept suggested tags/boxes (named, by index, or all above min_score) into the image's annotations."""
    body = read_model(AcceptBody) if request.get_data(cache=True).strip() else AcceptBody()
    store = current_services().store
    store.get_image(image_id)
    active = assistant().active_for(store.image_project(image_id).id)
    default_t = active.threshold if active is not None else 0.5
    if isinstance(body.boxes, list) and len(body.boxes) > 1000:
        raise ApiError(400, "boxes: at most 1000 indices")
    annotations, tags, boxes = room.accept(
        store,
        image_id,
        tags=body.tags,
        boxes=body.boxes,
        min_score=default_t if body.min_score is None else body.min_score,
    )
    return jsonify({**annotations.as_dict(), "accepted": {"tags": tags, "boxes": boxes}})


class BulkAcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_score: float | None = Field(None, ge=0.0, le=1.0)
    ids: list[int] | None = Field(None, max_length=10_000)
    project: int | str | None = None


def _above(project_id: int, active: ActiveVersion, min_score: float, ids: list[int] | None) -> list[int]:
    """Untagged images of the project whose suggestion from the active version has something >= min_score."""
    store = current_services().store
    wanted = None if ids is None else set(ids)
    out = []
    for image_id, _, version in _untagged(project_id):
        if version != active.version or (wanted is not None and image_id not in wanted):
            continue
        record = room.get(store, image_id)
        if record is not None and room.top_score(record) >= min_score:
            out.append(image_id)
    return out


def _untagged(project_id: int) -> list[tuple[int, float | None, str | None]]:
    from edge.store import assist_rows

    with current_services().store.assist_tx() as conn:
        return assist_rows.candidates(conn, project_id, tagged=False, inbox=None)


@bp.get("/api/v1/suggestions")
@requires("viewer")
def suggestions_summary() -> Any:
    """{"model", "threshold", "untagged", "suggested", "above"}: how many untagged images "accept all above
    min_score" (default: the model's threshold) would annotate."""
    project_id = current_services().store.get_project(project_ref()).id
    active = _active(project_id)
    t = fraction_arg("min_score", active.threshold)
    untagged = _untagged(project_id)
    suggested = sum(1 for _, _, v in untagged if v == active.version)
    above = len(_above(project_id, active, t, None))
    return jsonify(
        {
            "model": _model_info(active, active.version),
            "threshold": active.threshold,
            "min_score": t,
            "untagged": len(untagged),
            "suggested": suggested,
            "above": above,
        }
    )


@bp.post("/api/v1/suggestions/accept")
@requires("labeller")
def accept_all_above() -> Any:
    """Accept, on every untagged image (or the given ids), the suggestions scoring at least min_score."""
    body = read_model(BulkAcceptBody) if request.get_data(cache=True).strip() else BulkAcceptBody()
    store = current_services().store
    project_id = store.get_project(project_ref()).id
    active = _active(project_id)
    t = active.threshold if body.min_score is None else body.min_score
    images = tags = boxes = 0
    for image_id in _above(project_id, active, t, body.ids):
        _, added_tags, added_boxes = room.accept(store, image_id, min_score=t)
        if added_tags or added_boxes:
            images += 1
        tags += added_tags
        boxes += added_boxes
    return jsonify({"images": images, "tags": tags, "boxes": boxes, "min_score": t})


@bp.post("/api/v1/suggestions/bulk")
@requires("labeller")
def start_bulk() -> Any:
    """Start "suggest for all untagged" in the background; 202 with the job (progress: GET the same path)."""
    if request.get_data(cache=True).strip():
        read_json()
    project_id = current_services().store.get_project(project_ref()).id
    _active(project_id)
    job = assistant().start_bulk(project_id)
    return jsonify(job.as_dict()), 202


@bp.get("/api/v1/suggestions/bulk")
@requires("viewer")
def bulk_progress() -> Any:
    """The project's latest "suggest for all untagged" job: state, done of total."""
    project_id = current_services().store.get_project(project_ref()).id
    job = assistant().job(project_id)
    if job is None:
        return jsonify({"state": "none", "project": project_id, "done": 0, "total": 0})
    return jsonify(job.as_dict())


@bp.get("/api/v1/inbox")
@requires("viewer")
def inbox_summary() -> Any:
    """The project's inbox: kept, waiting, reviewed, and how many were reviewed since the active version."""
    from edge.store import assist_rows

    store = current_services().store
    project_id = store.get_project(project_ref()).id
    active = assistant().active_for(project_id)
    since = None
    models = current_services().models
    if active is not None and models is not None:
        rows = [r for r in models.list_versions(project=project_id) if r["version"] == active.version]
        since = rows[0]["installed"] if rows else None
    with store.assist_tx() as conn:
        counts = assist_rows.inbox_counts(conn, project_id, since)
    body: dict[str, Any] = {**counts, "since_version": f"v{active.number}" if active else None}
    if active is not None:
        body["message"] = f"{counts['reviewed_since']} reviewed since v{active.number}"
        body["retrain"] = counts["reviewed_since"] > 0
    return jsonify(body)


def review_page() -> Any:
    """GET /api/v1/images with inbox=true/false or order=uncertainty|similarity (images.list_images hands over)."""
    store = current_services().store
    project_id = store.get_project(project_ref()).id
    order = request.args.get("order") or None
    if order in ("newest",):
        order = None
    if order not in (None, "uncertainty", "similarity"):
        raise ApiError(400, "order must be newest, oldest, uncertainty or similarity")
    page = int_arg("page", 1)
    page_size = int_arg("page_size", 48, high=MAX_PAGE_SIZE)
    if order == "similarity":
        active = assistant().active_for(project_id)
        if active is not None and active.task == "detection":
            _load_feature_model(active.version)
    records, total, reasons, best = room.queue(
        store,
        project_id,
        order=order,  # type: ignore[arg-type]
        tagged=bool_arg("tagged"),
        inbox=bool_arg("inbox"),
        page=page,
        page_size=page_size,
    )
    items = []
    for record in records:
        item = record.as_dict()
        item["inbox_reason"] = reasons.get(record.id)
        if order == "similarity":
            item["similarity"] = best.get(record.id)
        items.append(item)
    return jsonify({"items": items, "page": page, "page_size": page_size, "total": total})


@bp.post("/api/v1/training/<run_id>/override")
@requires("admin")
def override_deploy(run_id: str) -> Any:
    """An administrator activates a run's installed version that the deploy decision kept back; the run records it."""
    from flask import g

    services = current_services()
    if services.trainer is None or services.models is None:
        raise ApiError(503, "the training service is not running on this device")
    run = services.trainer.get(run_id)
    if run.version is None or run.state != "installed":
        raise ApiError(409, f"training run {run_id} has no installed, not activated version to override ({run.state})")
    services.models.activate(run.version)
    user = getattr(g.get("user"), "username", None) or "an administrator"
    services.trainer.history.update(
        run, state="deployed", activated=True, decision=f"{run.decision}; activated anyway by {user} (override)"
    )
    return jsonify(services.trainer.describe(run))


@bp.get("/api/v1/labels/<name>/versions")
@requires("viewer")
def label_versions(name: str) -> Any:
    """The project's trained versions that know a label, and what renaming or deleting it does to them."""
    store = current_services().store
    project_id = store.get_project(project_ref()).id
    label = store.get_label(name, project=project_id)
    models = current_services().models
    rows = [] if models is None else models.list_versions(project=project_id)
    using = [
        {"version": r["version"], "number": r.get("number"), "active": bool(r.get("active"))}
        for r in rows
        if r.get("status") == "ok" and label.name.casefold() in {str(n).casefold() for n in r.get("labels", [])}
    ]
    body: dict[str, Any] = {"label": label.name, "versions": using, "rename": None, "delete": None}
    if using:
        names = ", ".join(f"v{u['number']}" + (" (running)" if u["active"] else "") for u in using)
        body["rename"] = (
            f"{names} learned {label.name!r}: they keep answering {label.name!r} under the old name (events, "
            "suggestions and the Predict page show it) until you train a new version; nothing is retrained on its own."
        )
        body["delete"] = (
            f"{names} learned {label.name!r}: they keep predicting it, but it is no longer a label of the project "
            "(its suggestions cannot be accepted; events still carry the name) until you train a new version "
            "without it."
        )
    return jsonify(body)
