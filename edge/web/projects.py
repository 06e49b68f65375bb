"""Projects: GET/POST /api/v1/projects, and `project_ref()`, how every dataset route reads its `project`.

A request names its project with `project` (an id or a name) as a query parameter, a JSON body field or a form
field; without one it works on the default project, so everything written before projects keeps working.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, Field

from edge.store.projects import MAX_PROJECT_NAME
from edge.vocabulary import Task
from edge.web.http import ApiError, read_json, read_model
from edge.web.security import requires
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("projects", __name__)
MAX_LABELS = 200


class LabelSpec(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=2000)


class ProjectCreate(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_PROJECT_NAME)
    task: Task
    labels: list[LabelSpec] = Field(default_factory=list, max_length=MAX_LABELS)


def project_ref() -> int | str | None:
    """The request's `project`: query parameter, else JSON body or form field; None (the default project) if absent.

    An id is given as a number (or a string of digits), a name as text; 400 for anything else.
    """
    raw: Any = request.args.get("project")
    if raw is None and request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raw = request.form.get("project")
    if raw is None and request.is_json and request.get_data(cache=True).strip():
        body = read_json()
        if isinstance(body, dict):
            raw = body.get("project")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ApiError(400, f"project must be a project id or name, not {raw!r}")
    return raw


def project_dict(ref: int | str | None) -> dict[str, Any]:
    """A project as the API shows it: its fields and its labels."""
    store = current_services().store
    project = store.get_project(ref)
    return {**project.as_dict(), "labels": [lab.as_dict() for lab in store.list_labels(project=project.id)]}


@bp.get("/api/v1/projects")
@requires("viewer")
def list_projects() -> Any:
    """Every project on the device, the default first: {"items": [{"id", "name", "task", "labels", ...}]}."""
    return jsonify({"items": [project_dict(p.id) for p in current_services().store.list_projects()]})


@bp.get("/api/v1/projects/<ref>")
@requires("viewer")
def get_project(ref: str) -> Any:
    """One project by id or name."""
    return jsonify(project_dict(ref))


@bp.post("/api/v1/projects")
@requires("admin")
def create_project() -> Any:
    """{"name", "task": "classification"|"detection", "labels": [{"name", "description"}]} -> 201 (409: name taken)."""
    body = read_model(ProjectCreate)
    project = current_services().store.create_project(
        body.name, body.task, [(lab.name, lab.description) for lab in body.labels]
    )
    return jsonify(project_dict(project.id)), 201
