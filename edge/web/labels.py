"""Labels with descriptions: the page and GET/POST/PATCH/DELETE /api/v1/labels."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, render_template, request
from pydantic import BaseModel, Field

from edge.vocabulary import is_none_class
from edge.web.http import read_model
from edge.web.projects import project_ref
from edge.web.security import requires
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("labels", __name__)
NAV = [("labels.page", "Labels", 40)]

# Offered on the labels page when no NONE/other class exists yet (a class for "anything else" keeps a classifier
# from forcing every crop into a real label).
NONE_LABEL = "none"
NONE_DESCRIPTION = "Anything else: the shelf is stocked, or the image shows none of the other labels."


class LabelCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=2000)
    color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")


class LabelUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=64)
    description: str | None = Field(None, max_length=2000)
    color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")


def has_other_class(names: list[str]) -> bool:
    """Whether one of the labels is a NONE/other class."""
    return any(is_none_class(n) for n in names)


@bp.get("/labels")
@requires("viewer")
def page() -> str:
    """The labels page."""
    return render_template("labels.html", none_label=NONE_LABEL, none_description=NONE_DESCRIPTION)


@bp.get("/api/v1/labels")
@requires("viewer")
def list_labels() -> Any:
    """Every label with description, colour and use counts; `has_other` says whether a NONE/other class exists.

    `suggested_other` is the NONE/other class to offer, or null for a detection project, where it means nothing
    (a box is drawn around what is there; the trainer needs no "none" box).
    """
    store = current_services().store
    project = store.get_project(project_ref())
    labels = store.list_labels(project=project.id)
    offer = project.task != "detection"
    return jsonify(
        {
            "items": [lab.as_dict() for lab in labels],
            "has_other": has_other_class([lab.name for lab in labels]),
            "suggested_other": {"name": NONE_LABEL, "description": NONE_DESCRIPTION} if offer else None,
        }
    )


@bp.post("/api/v1/labels")
@requires("labeller")
def create_label() -> Any:
    """Create a label: {"name", "description", "color"?} -> 201; 409 when the name exists."""
    body = read_model(LabelCreate)
    label = current_services().store.create_label(body.name, body.description, body.color, project=project_ref())
    return jsonify(label.as_dict()), 201


@bp.get("/api/v1/labels/<name>")
@requires("viewer")
def get_label(name: str) -> Any:
    """One label by name."""
    return jsonify(current_services().store.get_label(name, project=project_ref()).as_dict())


@bp.patch("/api/v1/labels/<name>")
@requires("labeller")
def update_label(name: str) -> Any:
    """Rename, describe or recolour a label (annotations follow a rename)."""
    body = read_model(LabelUpdate)
    label = current_services().store.update_label(
        name, new_name=body.name, description=body.description, color=body.color, project=project_ref()
    )
    return jsonify(label.as_dict())


@bp.delete("/api/v1/labels/<name>")
@requires("labeller")
def delete_label(name: str) -> Any:
    """Delete a label; 409 explaining its uses when images or boxes carry it, unless ?force=true."""
    force = request.args.get("force", "").lower() in ("1", "true", "yes")
    from edge.web.trash import keeping_label

    store = current_services().store
    with keeping_label(store, name, project_ref()) as kept:  # the label and its tags and boxes go to the trash
        store.delete_label(name, force=force, project=project_ref())
    return jsonify({"deleted": name, "trash": kept.get("id")})
