"""The projects table: a name, the task the user chose, and (through project_id) its labels and images.

Project 1, "default", holds what the store held before projects existed and answers every call that names no
project. Its task may be unset ("auto": detection once any box exists, or the review page's choice); a project
created by a user always has its task, `classification` or `detection`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.errors import AnnotationError, ConflictError, NotFoundError
from edge.store.connection import now
from edge.store.schema import DEFAULT_PROJECT_ID
from edge.store.validation import check_name
from edge.vocabulary import TASKS, Task

MAX_PROJECT_NAME = 64


@dataclass
class ProjectRecord:
    """One project with its counts; `task` None: the default project's "auto"."""

    id: int
    name: str
    task: Task | None
    created: str
    labels: int = 0
    images: int = 0

    @property
    def is_default(self) -> bool:
        """Whether this is the project that calls without `project` work on."""
        return self.id == DEFAULT_PROJECT_ID

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (the counts as `label_count` and `images`; the web adds the labels themselves)."""
        return {
            "id": self.id,
            "name": self.name,
            "task": self.task or "auto",
            "default": self.is_default,
            "created": self.created,
            "label_count": self.labels,
            "images": self.images,
        }


def check_project_name(name: object) -> str:
    """The name stripped, when it is 1..64 printable characters; AnnotationError otherwise."""
    clean = check_name(name, "project name", MAX_PROJECT_NAME)
    if not clean.isprintable():
        raise AnnotationError(f"project name {clean!r} must not contain control characters")
    return clean


def check_task(task: object) -> Task:
    """`task` when it is one of TASKS; AnnotationError otherwise."""
    if task not in TASKS:
        raise AnnotationError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    return task  # type: ignore[return-value]


_SELECT = (
    "SELECT p.id, p.name, p.task, p.created, "
    "(SELECT COUNT(*) FROM labels l WHERE l.project_id = p.id) AS labels, "
    "(SELECT COUNT(*) FROM images i WHERE i.project_id = p.id) AS images FROM projects p"
)


def _record(row: sqlite3.Row) -> ProjectRecord:
    return ProjectRecord(**dict(row))  # _SELECT's columns are the record's fields


def all_projects(conn: sqlite3.Connection) -> list[ProjectRecord]:
    """Every project in creation order, the default first."""
    return [_record(r) for r in conn.execute(f"{_SELECT} ORDER BY p.id")]


def resolve(conn: sqlite3.Connection, ref: int | str | None) -> ProjectRecord:
    """The project named by id (an int or a string of digits) or name (case-insensitive); None: the default.

    NotFoundError when there is no such project.
    """
    if ref is None:
        ref = DEFAULT_PROJECT_ID
    if isinstance(ref, bool):
        raise AnnotationError(f"project must be an id or a name, not {ref!r}")
    row = None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
        row = conn.execute(f"{_SELECT} WHERE p.id = ?", (int(ref),)).fetchone()
    if row is None and isinstance(ref, str):
        row = conn.execute(f"{_SELECT} WHERE p.name = ?", (ref.strip(),)).fetchone()
    if row is None:
        raise NotFoundError(f"project {ref!r} does not exist")
    return _record(row)


def create(conn: sqlite3.Connection, name: str, task: str) -> int:
    """Insert a project; ConflictError when the name (case-insensitive) exists. Returns its id."""
    clean = check_project_name(name)
    checked = check_task(task)
    if clean.isdigit():
        raise AnnotationError(f"project name {clean!r} must not be a number (numbers name projects by id)")
    existing = conn.execute("SELECT name FROM projects WHERE name = ?", (clean,)).fetchone()
    if existing is not None:
        raise ConflictError(f"project {existing[0]!r} already exists")
    cur = conn.execute("INSERT INTO projects (name, task, created) VALUES (?, ?, ?)", (clean, checked, now()))
    return int(cur.lastrowid or 0)


def set_task(conn: sqlite3.Connection, project: ProjectRecord, task: str | None) -> None:
    """Change the project's task; None ("auto") only for the default project (AnnotationError otherwise)."""
    if task is None and not project.is_default:
        raise AnnotationError(f"project {project.name!r} must train classification or detection, not auto")
    checked = None if task is None else check_task(task)
    conn.execute("UPDATE projects SET task = ? WHERE id = ?", (checked, project.id))


def of_image(conn: sqlite3.Connection, image_id: int) -> int:
    """The project an image belongs to; NotFoundError when the image is unknown."""
    row = conn.execute("SELECT project_id FROM images WHERE id = ?", (int(image_id),)).fetchone()
    if row is None:
        raise NotFoundError(f"image {image_id} does not exist")
    return int(row[0])
