"""The labels table: names unique case-insensitively within a project, a description, a palette colour, use counts."""

from __future__ import annotations

import sqlite3

from edge.errors import AnnotationError, ConflictError, NotFoundError
from edge.store.connection import now
from edge.store.records import LabelRecord
from edge.store.validation import check_color, check_label_name

# Distinct, readable on light and dark backgrounds; a new label takes the next one.
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#9a6324",
    "#469990",
    "#808000",
    "#000075",
    "#bfef45",
)


def ids_by_name(conn: sqlite3.Connection, project_id: int) -> dict[str, tuple[int, str]]:
    """{casefolded name: (id, canonical spelling)} of the project's labels, keyed case-insensitively like the column."""
    rows = conn.execute("SELECT id, name FROM labels WHERE project_id = ?", (project_id,))
    return {str(r[1]).casefold(): (int(r[0]), str(r[1])) for r in rows}


def label_records(conn: sqlite3.Connection, project_id: int, name: str | None = None) -> list[LabelRecord]:
    """The project's labels in creation order with their image-tag and box counts (or the one called `name`)."""
    query = (
        "SELECT l.id, l.name, l.description, l.color, "
        "(SELECT COUNT(*) FROM image_tags t WHERE t.label_id = l.id) AS images, "
        "(SELECT COUNT(*) FROM boxes b WHERE b.label_id = l.id) AS boxes FROM labels l WHERE l.project_id = ?"
    )
    rows = (
        conn.execute(f"{query} AND l.name = ?", (project_id, name))
        if name is not None
        else conn.execute(f"{query} ORDER BY l.id", (project_id,))
    )
    return [LabelRecord(**dict(r)) for r in rows]  # the columns are the record's fields


def get(conn: sqlite3.Connection, project_id: int, name: str) -> LabelRecord:
    """One label of the project by name (case-insensitive); NotFoundError when unknown."""
    found = label_records(conn, project_id, name)
    if not found:
        raise NotFoundError(f"label {name!r} does not exist")
    return found[0]


def create(conn: sqlite3.Connection, project_id: int, name: str, description: str, color: str | None) -> None:
    """Insert a label (the next palette colour unless given); ConflictError when the name exists."""
    name = check_label_name(name)
    if not isinstance(description, str):
        raise AnnotationError("label description must be text")
    existing = conn.execute("SELECT name FROM labels WHERE project_id = ? AND name = ?", (project_id, name)).fetchone()
    if existing is not None:
        raise ConflictError(f"label {existing[0]!r} already exists")
    if color is None:
        used = int(conn.execute("SELECT COUNT(*) FROM labels WHERE project_id = ?", (project_id,)).fetchone()[0])
        color = PALETTE[used % len(PALETTE)]
    conn.execute(
        "INSERT INTO labels (project_id, name, description, color, created) VALUES (?, ?, ?, ?, ?)",
        (project_id, name, description.strip(), check_color(color), now()),
    )


def update(
    conn: sqlite3.Connection,
    project_id: int,
    name: str,
    *,
    new_name: str | None,
    description: str | None,
    color: str | None,
) -> LabelRecord:
    """Rename, describe or recolour a label; its annotations follow a rename (they refer to its id)."""
    current = get(conn, project_id, name)
    if new_name is not None:
        new_name = check_label_name(new_name)
        clash = conn.execute(
            "SELECT id, name FROM labels WHERE project_id = ? AND name = ?", (project_id, new_name)
        ).fetchone()
        if clash is not None and int(clash[0]) != current.id:
            raise ConflictError(f"label {clash[1]!r} already exists")
        conn.execute("UPDATE labels SET name = ? WHERE id = ?", (new_name, current.id))
    if description is not None:
        if not isinstance(description, str):
            raise AnnotationError("label description must be text")
        conn.execute("UPDATE labels SET description = ? WHERE id = ?", (description.strip(), current.id))
    if color is not None:
        conn.execute("UPDATE labels SET color = ? WHERE id = ?", (check_color(color), current.id))
    return get(conn, project_id, new_name or current.name)


def delete(conn: sqlite3.Connection, project_id: int, name: str, *, force: bool) -> LabelRecord:
    """Delete a label; ConflictError when images or boxes use it, unless force (which removes those too)."""
    label = get(conn, project_id, name)
    if (label.images or label.boxes) and not force:
        raise ConflictError(
            f"label {label.name!r} is used by {label.images} image tags and {label.boxes} boxes; "
            "re-tag those images first, or delete with force to remove those annotations too"
        )
    conn.execute("DELETE FROM labels WHERE id = ?", (label.id,))
    return label
