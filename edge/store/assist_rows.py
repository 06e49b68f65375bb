"""Model-assisted labelling's tables: one suggestion per image (the model's tags and boxes with scores, the margin
between its two best answers and its embedding) and the inbox (frames the device kept for review, with why).

Suggestions never touch `image_tags` or `boxes`: they become annotations only when a person accepts them
(edge.assist.accept). Tags and boxes are stored as JSON lists as the API shows them; the embedding as float32 bytes,
L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.store.connection import in_chunks, now
from edge.store.image_rows import records
from edge.store.records import ImageRecord

HAS_ANNOTATION = (
    "(EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = images.id) "
    "OR EXISTS (SELECT 1 FROM boxes b WHERE b.image_id = images.id) "
    "OR EXISTS (SELECT 1 FROM nothing_to_box n WHERE n.image_id = images.id))"
)


@dataclass
class SuggestionRecord:
    """A model version's suggestion for one image."""

    image_id: int
    version: str
    created: str
    tags: list[dict[str, Any]] = field(default_factory=list)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    margin: float | None = None
    embedding: np.ndarray | None = None


def put(
    conn: sqlite3.Connection,
    image_id: int,
    version: str,
    tags: list[dict[str, Any]],
    boxes: list[dict[str, Any]],
    margin: float | None,
    embedding: np.ndarray | None,
) -> None:
    """Store (or replace) the image's suggestion."""
    blob = None if embedding is None else np.asarray(embedding, dtype=np.float32).tobytes()
    conn.execute(
        "INSERT INTO suggestions (image_id, version, created, tags, boxes, margin, embedding) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(image_id) DO UPDATE SET version = excluded.version, "
        "created = excluded.created, tags = excluded.tags, boxes = excluded.boxes, margin = excluded.margin, "
        "embedding = excluded.embedding",
        (int(image_id), version, now(), json.dumps(tags), json.dumps(boxes), margin, blob),
    )


def _record(row: sqlite3.Row) -> SuggestionRecord:
    blob = row["embedding"]
    return SuggestionRecord(
        image_id=int(row["image_id"]),
        version=str(row["version"]),
        created=str(row["created"]),
        tags=json.loads(row["tags"]),
        boxes=json.loads(row["boxes"]),
        margin=None if row["margin"] is None else float(row["margin"]),
        embedding=None if blob is None else np.frombuffer(blob, dtype=np.float32),
    )


def get(conn: sqlite3.Connection, image_id: int) -> SuggestionRecord | None:
    """The image's suggestion, or None."""
    row = conn.execute("SELECT * FROM suggestions WHERE image_id = ?", (int(image_id),)).fetchone()
    return None if row is None else _record(row)


def without_suggestion(
    conn: sqlite3.Connection, project_id: int, version: str, *, after_id: int = 0, untagged: bool = False
) -> list[int]:
    """Ids (ascending) of the project's images above `after_id` with no suggestion from `version`."""
    sql = (
        "SELECT id FROM images WHERE project_id = ? AND id > ? AND id NOT IN "
        "(SELECT image_id FROM suggestions WHERE version = ?)"
    )
    if untagged:
        sql += f" AND NOT {HAS_ANNOTATION}"
    return [int(r[0]) for r in conn.execute(sql + " ORDER BY id", (project_id, int(after_id), version))]


def max_image_id(conn: sqlite3.Connection) -> int:
    """The highest image id (0 when the store is empty)."""
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM images").fetchone()[0])


def labelled_embeddings(conn: sqlite3.Connection, project_id: int, version: str) -> dict[str, list[tuple[int, bytes]]]:
    """Per label name, (image id, embedding bytes) of the annotated images whose suggestion from `version` holds one."""
    out: dict[str, list[tuple[int, bytes]]] = {}
    for r in conn.execute(
        "SELECT l.name, s.image_id, s.embedding FROM suggestions s "
        "JOIN (SELECT image_id, label_id FROM image_tags UNION SELECT image_id, label_id FROM boxes) a "
        "ON a.image_id = s.image_id JOIN labels l ON l.id = a.label_id "
        "WHERE l.project_id = ? AND s.version = ? AND s.embedding IS NOT NULL",
        (project_id, version),
    ):
        out.setdefault(str(r[0]), []).append((int(r[1]), bytes(r[2])))
    return out


def candidates(
    conn: sqlite3.Connection, project_id: int, *, tagged: bool | None, inbox: bool | None
) -> list[tuple[int, float | None, str | None]]:
    """(image id, margin, embedding version) of the project's images matching the filters, newest first."""
    where = ["images.project_id = ?"]
    if tagged is True:
        where.append(HAS_ANNOTATION)
    elif tagged is False:
        where.append(f"NOT {HAS_ANNOTATION}")
    if inbox is True:
        where.append("images.id IN (SELECT image_id FROM inbox)")
    elif inbox is False:
        where.append("images.id NOT IN (SELECT image_id FROM inbox)")
    rows = conn.execute(
        "SELECT images.id, s.margin, s.version FROM images LEFT JOIN suggestions s ON s.image_id = images.id "  # noqa: S608 (fixed clauses only)
        f"WHERE {' AND '.join(where)} ORDER BY images.id DESC",
        (project_id,),
    )
    return [(int(r[0]), None if r[1] is None else float(r[1]), r[2]) for r in rows]


def embeddings_of(conn: sqlite3.Connection, ids: list[int]) -> dict[int, tuple[str, bytes]]:
    """image id -> (version, embedding bytes) for those of `ids` with an embedding."""
    out: dict[int, tuple[str, bytes]] = {}
    for chunk, marks in in_chunks(ids):
        for r in conn.execute(
            f"SELECT image_id, version, embedding FROM suggestions WHERE image_id IN ({marks}) "  # noqa: S608
            "AND embedding IS NOT NULL",
            chunk,
        ):
            out[int(r[0])] = (str(r[1]), bytes(r[2]))
    return out


def image_records(conn: sqlite3.Connection, ids: list[int]) -> list[ImageRecord]:
    """Image records in the order of `ids`."""
    rows: dict[int, sqlite3.Row] = {}
    for chunk, marks in in_chunks(ids):
        for r in conn.execute(f"SELECT * FROM images WHERE id IN ({marks})", chunk):  # noqa: S608
            rows[int(r["id"])] = r
    return records(conn, [rows[i] for i in ids if i in rows])


# -- inbox --------------------------------------------------------------------------------------------------------


def add_inbox(
    conn: sqlite3.Connection, image_id: int, reason: str, camera: str | None, created: str | None = None
) -> None:
    """Put a stored image into the inbox with its reason (a second reason for the same image is ignored);
    `created` (ISO UTC) defaults to now."""
    conn.execute(
        "INSERT OR IGNORE INTO inbox (image_id, reason, camera, created) VALUES (?, ?, ?, ?)",
        (int(image_id), reason, camera, created or now()),
    )


def inbox_reasons(conn: sqlite3.Connection, ids: list[int]) -> dict[int, str]:
    """image id -> inbox reason, for those of `ids` in the inbox."""
    out: dict[int, str] = {}
    for chunk, marks in in_chunks(ids):
        for r in conn.execute(f"SELECT image_id, reason FROM inbox WHERE image_id IN ({marks})", chunk):  # noqa: S608
            out[int(r[0])] = str(r[1])
    return out


def inbox_kept_since(conn: sqlite3.Connection, since: str, camera: str | None = None) -> int:
    """Inbox rows created at or after `since` (ISO UTC), of one camera when given."""
    if camera is None:
        row = conn.execute("SELECT COUNT(*) FROM inbox WHERE created >= ?", (since,)).fetchone()
    else:
        row = conn.execute("SELECT COUNT(*) FROM inbox WHERE created >= ? AND camera = ?", (since, camera)).fetchone()
    return int(row[0])


def inbox_counts(conn: sqlite3.Connection, project_id: int, since: str | None) -> dict[str, int]:
    """{"total", "waiting", "reviewed", "reviewed_since"}: the project's inbox, and how many were annotated
    (reviewed) among those kept at or after `since` (None: all)."""
    base = "FROM inbox i JOIN images ON images.id = i.image_id WHERE images.project_id = ?"
    total = int(conn.execute(f"SELECT COUNT(*) {base}", (project_id,)).fetchone()[0])
    reviewed = int(conn.execute(f"SELECT COUNT(*) {base} AND {HAS_ANNOTATION}", (project_id,)).fetchone()[0])
    since_sql = f"SELECT COUNT(*) {base} AND {HAS_ANNOTATION} AND i.created >= ?"
    reviewed_since = int(conn.execute(since_sql, (project_id, since or "")).fetchone()[0])
    return {"total": total, "waiting": total - reviewed, "reviewed": reviewed, "reviewed_since": reviewed_since}


def reviewed_inbox_ids(conn: sqlite3.Connection, project_id: int) -> list[int]:
    """Ids of the project's inbox images that carry annotations (reviewed)."""
    return [
        int(r[0])
        for r in conn.execute(
            "SELECT i.image_id FROM inbox i JOIN images ON images.id = i.image_id "  # noqa: S608 (fixed clauses only)
            f"WHERE images.project_id = ? AND {HAS_ANNOTATION} ORDER BY i.image_id",
            (project_id,),
        )
    ]
