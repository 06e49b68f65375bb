"""Projects: GET/POST /api/v1/projects, the project pages, and `project_ref()`, how every route reads its `project`.

A request names its project with `project` (an id or a name) as a query parameter, a JSON body field or a form
field; without one it works on the browser's current project (the `shelfwatch_project` cookie the nav's project
switcher sets; API clients with a bearer token send none) and else on the default project, so everything written
before projects keeps working.

Pages: `/projects` (the list, switch, new) and `/projects/new` (the form: name, task with a one-line explanation
and a picture of each, labels with descriptions). Every page gets `current_project`, `projects_nav` and the
getting-started `checklist` (project -> capture 15 -> tag -> zones when classifying zones -> train -> watch) from
the context processor here; base.html shows the switcher and the checklist until it is done.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, g, jsonify, render_template, request, url_for
from pydantic import BaseModel, Field

from edge.errors import NotFoundError
from edge.store.projects import MAX_PROJECT_NAME
from edge.vocabulary import NONE_LABEL, Task
from edge.web.http import ApiError, read_json, read_model
from edge.web.security import requires, template_page
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("projects", __name__)
MAX_LABELS = 200
PROJECT_COOKIE = "shelfwatch_project"  # the browser's current project (set by the nav's switcher, app.js)


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
        return _cookie_project()
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ApiError(400, f"project must be a project id or name, not {raw!r}")
    return raw


def _cookie_project() -> int | None:
    """The browser's current project (cookie), None when it names none or one that no longer exists."""
    raw = request.cookies.get(PROJECT_COOKIE, "")
    if not raw.isdigit():
        return None
    try:
        return current_services().store.get_project(int(raw)).id
    except NotFoundError:
        return None


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


# ------------------------------------------------------------------------------------------------ pages

# The tasks the form offers: what the user reads (name, one line) and the picture (static/task-*.svg).
TASK_CHOICES_SHOWN = [
    {
        "task": "classification",
        "title": "Classify zones or whole images",
        "line": "Say what each shelf zone (or the whole photo) shows: low stock, ok, ... Tag photos; zones crop them.",
        "picture": "task-classification.svg",
    },
    {
        "task": "detection",
        "title": "Detect boxes",
        "line": "Find every empty stretch (or object) and draw a box around it, anywhere in the photo.",
        "picture": "task-detection.svg",
    },
]


# The projects: each with its task and counts, switch to it, make a new one.
template_page(bp, "/projects", "projects.html")


@bp.get("/projects/new")
@requires("admin")
def new_page() -> str:
    """The project form (the guided first run comes here after the admin account)."""
    first = request.args.get("first") == "1"
    return render_template("project_new.html", tasks=TASK_CHOICES_SHOWN, none_label=NONE_LABEL, first=first)


def first_run_target(user: Any) -> str | None:
    """Where the first admin goes after the account page on a fresh device (only the empty default project)."""
    if user is None or getattr(user, "role", None) != "admin":
        return None
    projects = current_services().store.list_projects()
    if len(projects) == 1 and projects[0].images == 0 and projects[0].labels == 0 and projects[0].task is None:
        return url_for("projects.new_page", first="1")
    return None


def current_project() -> Any:
    """The request's project record: `project` given, else the browser's current one, else the default."""
    ref = project_ref()
    store = current_services().store
    try:
        return store.get_project(ref)
    except NotFoundError:
        return store.get_project(None)


def checklist(project: Any) -> dict[str, Any]:
    """The getting-started steps of `project` with their progress; `done` once all are."""
    services = current_services()
    store = services.store
    config = current_app_config()
    need = store.rules.min_images
    images = project.images
    _, tagged = store.list_images(page=1, page_size=1, tagged=True, project=project.id)
    steps: list[dict[str, Any]] = [
        {
            "key": "project",
            "title": "Project",
            "done": project.task is not None,
            "progress": project.name if project.task else "choose what to learn",
            "href": url_for("projects.new_page"),
        },
        {
            "key": "capture",
            "title": f"Capture {need}",
            "done": images >= need,
            "progress": f"{min(images, need)} of {need} captured",
            "href": url_for("cameras.live"),
        },
        {
            "key": "tag",
            "title": "Tag",
            "done": tagged >= need,
            "progress": f"{min(tagged, need)} of {need} tagged",
            "href": url_for("images.tag"),
        },
    ]
    if project.task == "classification":
        cams = [c for c in config.cameras if c.enabled]
        zoned = sum(1 for c in cams if store.get_zones(c.id) or c.zones)
        steps.append(
            {
                "key": "zones",
                "title": "Zones",
                "done": bool(cams) and zoned == len(cams),
                "progress": f"{zoned} of {len(cams)} cameras",
                "href": url_for("cameras.zones_page"),
            }
        )
    repo = services.models
    versions = repo.list_versions(project=project.id) if repo is not None else []
    active = repo.active_version() if repo is not None else None
    watching = any(v["version"] == active for v in versions)
    steps.append(
        {
            "key": "train",
            "title": "Train",
            "done": bool(versions),
            "progress": f"{len(versions)} model version(s)" if versions else "not yet",
            "href": url_for("training.page"),
        }
    )
    steps.append(
        {
            "key": "watch",
            "title": "Watch",
            "done": watching,
            "progress": "its model runs" if watching else "activate a model",
            "href": url_for("cameras.live"),
        }
    )
    return {"steps": steps, "done": all(s["done"] for s in steps), "left": sum(not s["done"] for s in steps)}


def current_app_config() -> Any:
    from flask import current_app

    return current_app.config["SHELFWATCH_CONFIG"]


@bp.get("/api/v1/projects/checklist")
@requires("viewer")
def get_checklist() -> Any:
    """The getting-started checklist of the request's project: {"project", "steps": [...], "done", "left"}."""
    project = current_project()
    return jsonify({"project": {"id": project.id, "name": project.name}, **checklist(project)})


@bp.app_context_processor
def _project_context() -> dict[str, Any]:
    """current_project, projects_nav and checklist for every signed-in page (base.html)."""
    if g.get("user") is None or request.blueprint is None or request.path.startswith("/api/"):
        return {}
    try:
        # The page's project from the URL or the switcher's cookie only: a page never reads the request's body
        # (an error page for a refused body must not parse it again).
        store = current_services().store
        ref: int | str | None = request.args.get("project") or _cookie_project()
        try:
            project = store.get_project(ref)
        except NotFoundError:
            project = store.get_project(None)
        projects = store.list_projects()
        # The default project stays out of the switcher once it is empty and others exist (a fresh device).
        shown = [p for p in projects if not (p.is_default and p.images == 0 and p.labels == 0 and len(projects) > 1)]
        if project not in shown:
            shown.insert(0, project)
        return {"current_project": project, "projects_nav": shown, "checklist": checklist(project)}
    except Exception:  # the page must render even when the store is unreadable; the API says why
        log.exception("project context for the page failed")
        return {}
