"""Whole-image tags and boxes: validated against the labels, replaced per image in one statement set."""

from __future__ import annotations

import sqlite3

from edge.datasets.model import Box
from edge.errors import AnnotationError, NotFoundError
from edge.store import labels
from edge.store.records import Annotations
from edge.store.validation import check_box


def write(
    conn: sqlite3.Connection,
    image_id: int,
    tags: list[int],
    boxes: list[tuple[int, Box]],
    nothing_to_box: bool = False,
) -> None:
    """Replace the image's tags (label ids), boxes ((label id, box)) and "nothing to box" mark with these."""
    conn.execute("DELETE FROM nothing_to_box WHERE image_id = ?", (image_id,))
    if nothing_to_box:
        conn.execute("INSERT INTO nothing_to_box (image_id) VALUES (?)", (image_id,))
    conn.execute("DELETE FROM image_tags WHERE image_id = ?", (image_id,))
    conn.execute("DELETE FROM boxes WHERE image_id = ?", (image_id,))
    conn.executemany("INSERT INTO image_tags (image_id, label_id) VALUES (?, ?)", [(image_id, t) for t in tags])
    conn.executemany(
        "INSERT INTO boxes (image_id, label_id, x1, y1, x2, y2) VALUES (?, ?, ?, ?, ?, ?)",
        [(image_id, label_id, b.x1, b.y1, b.x2, b.y2) for label_id, b in boxes],
    )


def has_any(conn: sqlite3.Connection, image_id: int) -> bool:
    """Whether the image carries a tag or a box."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM image_tags WHERE image_id = ?) "
        "OR EXISTS (SELECT 1 FROM boxes WHERE image_id = ?) "
        "OR EXISTS (SELECT 1 FROM nothing_to_box WHERE image_id = ?)",
        (image_id, image_id, image_id),
    ).fetchone()
    return bool(row[0])


def replace(
    conn: sqlite3.Connection, image_id: int, tags: list[str], boxes: list[Box], nothing_to_box: bool = False
) -> Annotations:
    """Validate tags and boxes against the labels of the image's project (AnnotationError) and replace them.

    `nothing_to_box` marks a photo with nothing to box (tagged, a detector's negative); it takes no boxes."""
    if nothing_to_box and boxes:
        raise AnnotationError("an image marked nothing_to_box cannot carry boxes; remove them or drop the mark")
    row = conn.execute("SELECT project_id FROM images WHERE id = ?", (int(image_id),)).fetchone()
    if row is None:
        raise NotFoundError(f"image {image_id} does not exist")
    known = labels.ids_by_name(conn, int(row[0]))
    tag_ids: list[int] = []
    tag_names: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or tag.casefold() not in known:
            raise AnnotationError(f"tag {tag!r} is not a label; create the label first")
        label_id, canonical = known[tag.casefold()]
        if label_id not in tag_ids:
            tag_ids.append(label_id)
            tag_names.append(canonical)
    checked: list[tuple[int, Box]] = []
    for index, box in enumerate(boxes):
        where = f"box {index + 1}"
        if not isinstance(box, Box):
            raise AnnotationError(f"{where}: expected a box, got {type(box).__name__}")
        if not isinstance(box.label, str) or box.label.casefold() not in known:
            raise AnnotationError(f"{where}: label {box.label!r} does not exist; create the label first")
        label_id, canonical = known[box.label.casefold()]
        valid = check_box(box, f"{where} ({canonical})")
        checked.append((label_id, Box(canonical, valid.x1, valid.y1, valid.x2, valid.y2)))
    write(conn, int(image_id), tag_ids, checked, nothing_to_box)
    return Annotations(tags=tag_names, boxes=[b for _, b in checked], nothing_to_box=nothing_to_box)


def of_tagged_images(conn: sqlite3.Connection, project_id: int) -> list[tuple[list[str], list[Box]]]:
    """(tags, boxes) of every tagged image of the project, in image id order."""
    tags: dict[int, list[str]] = {}
    boxes: dict[int, list[Box]] = {}
    for r in conn.execute(
        "SELECT t.image_id, l.name FROM image_tags t JOIN labels l ON l.id = t.label_id WHERE l.project_id = ?",
        (project_id,),
    ):
        tags.setdefault(int(r[0]), []).append(r[1])
    for r in conn.execute(
        "SELECT b.image_id, l.name, b.x1, b.y1, b.x2, b.y2 FROM boxes b JOIN labels l ON l.id = b.label_id "
        "WHERE l.project_id = ?",
        (project_id,),
    ):
        boxes.setdefault(int(r[0]), []).append(Box(r[1], r[2], r[3], r[4], r[5]))
    return [(tags.get(i, []), boxes.get(i, [])) for i in sorted(set(tags) | set(boxes))]
