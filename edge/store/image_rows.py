"""The images table and the content-addressed files beside it: insert, read with annotations, page, delete, split.

Files live at `images/<first 2 hex>/<sha256>.<ext>`. Every function here runs inside the caller's transaction;
a file is written (atomically) or moved aside while that transaction holds the SQLite write lock, so no other
process sharing the data_dir sees a row without its file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from edge.datasets.model import Box
from edge.errors import NotFoundError
from edge.store.connection import in_chunks, now
from edge.store.images import TEMP_PREFIX, ImageFacts, hamming, write_atomic
from edge.store.records import ImageRecord
from edge.store.validation import check_split

MAX_PAGE_SIZE = 500
# images/.pending/<pid>-*: the files an open transaction has written, one relative path a line (PendingFiles).
PENDING_DIR = ".pending"


class PendingFiles:
    """The image files one open transaction writes, listed in `images/.pending/` until it ends.

    A process killed before its commit leaves its list behind, and the next start removes exactly those files
    when no row names them. A file without a row for any other reason (say, an older shelfwatch.db restored from a
    backup) is kept: removing it would lose the only copy of that image.
    """

    def __init__(self, images_dir: Path) -> None:
        self.images_dir = images_dir
        self.paths: list[Path] = []
        self._list: Path | None = None
        self._fh: IO[str] | None = None

    def add(self, path: Path) -> None:
        """Note `path` before it is written (no fsync: a killed process's writes reach the disk anyway, and a list
        lost to a power cut only keeps an orphan)."""
        if self._fh is None:
            folder = self.images_dir / PENDING_DIR
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"{os.getpid()}-", dir=folder)
            self._list = Path(name)
            self._fh = os.fdopen(fd, "w", encoding="utf-8")
        self._fh.write(f"{path.parent.name}/{path.name}\n")
        self._fh.flush()
        self.paths.append(path)

    def discard(self) -> None:
        """The transaction failed: remove the files it wrote."""
        discard(self.paths)
        self.close()

    def close(self) -> None:
        """The transaction ended: forget the list."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._list is not None:
            self._list.unlink(missing_ok=True)
            self._list = None


def path_for(images_dir: Path, sha256: str, ext: str) -> Path:
    """Where the file of this content lives."""
    return images_dir / sha256[:2] / f"{sha256}.{ext}"


def all_hashes(conn: sqlite3.Connection, project_id: int) -> list[tuple[int, int]]:
    """(id, perceptual hash) of every image of the project."""
    rows = conn.execute("SELECT id, phash FROM images WHERE project_id = ?", (project_id,))
    return [(int(r[0]), int(r[1], 16)) for r in rows]


def closest(phash: int, candidates: Iterable[tuple[int, int]], max_distance: int) -> int | None:
    """Id of the candidate nearest to `phash` within `max_distance` bits (lowest id on a tie), else None."""
    best: tuple[int, int] | None = None
    for other_id, other_hash in candidates:
        distance = hamming(phash, other_hash)
        if distance <= max_distance and (best is None or (distance, other_id) < best):
            best = (distance, other_id)
    return None if best is None else best[1]


def id_by_sha256(conn: sqlite3.Connection, project_id: int, sha256: str) -> int | None:
    """The id of the project's image with this content, else None."""
    row = conn.execute("SELECT id FROM images WHERE project_id = ? AND sha256 = ?", (project_id, sha256)).fetchone()
    return None if row is None else int(row[0])


def insert(
    conn: sqlite3.Connection,
    project_id: int,
    images_dir: Path,
    data: bytes,
    facts: ImageFacts,
    *,
    filename: str | None,
    camera: str | None,
    captured_at: str | None,
    split: str,
    near_duplicate_of: int | None,
    written: PendingFiles,
) -> int:
    """Write the file (unless present; noted in `written` first) and its row; returns the row id."""
    path = path_for(images_dir, facts.sha256, facts.ext)
    if not path.exists():
        written.add(path)
        write_atomic(path, data)
    cur = conn.execute(
        "INSERT INTO images (project_id, sha256, ext, size, filename, camera, captured_at, created, width, height, "
        "split, phash, near_duplicate_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            project_id,
            facts.sha256,
            facts.ext,
            facts.size,
            filename,
            camera,
            captured_at,
            now(),
            facts.width,
            facts.height,
            split,
            f"{facts.phash:016x}",
            near_duplicate_of,
        ),
    )
    return int(cur.lastrowid or 0)


@dataclass
class NewImages:
    """The images one write transaction adds to a project: each is stored with its closest near-duplicate among the
    project's images, those added before it in the same transaction included."""

    conn: sqlite3.Connection
    project_id: int
    images_dir: Path
    written: PendingFiles
    max_distance: int
    hashes: list[tuple[int, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.hashes = all_hashes(self.conn, self.project_id)

    def add(
        self, data: bytes, facts: ImageFacts, *, filename: str | None, camera: str | None, captured_at: str | None,
        split: str,
    ) -> tuple[int, int | None]:  # fmt: skip
        """Store one image that is not in the project yet: (its id, its closest near-duplicate's id or None)."""
        near = closest(facts.phash, self.hashes, self.max_distance)
        image_id = insert(
            self.conn, self.project_id, self.images_dir, data, facts, filename=filename, camera=camera,
            captured_at=captured_at, split=split, near_duplicate_of=near, written=self.written,
        )  # fmt: skip
        self.hashes.append((image_id, facts.phash))
        return image_id, near


def discard(paths: Iterable[Path]) -> None:
    """Remove files (written by a transaction that failed, or set aside by one that committed)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def records(conn: sqlite3.Connection, rows: Sequence[sqlite3.Row]) -> list[ImageRecord]:
    """ImageRecords for `images` rows, with their tags and boxes."""
    ids = [int(r["id"]) for r in rows]
    tags: dict[int, list[str]] = {i: [] for i in ids}
    boxes: dict[int, list[Box]] = {i: [] for i in ids}
    empty: set[int] = set()
    for chunk, marks in in_chunks(ids):
        for r in conn.execute(
            f"SELECT t.image_id, l.name FROM image_tags t JOIN labels l ON l.id = t.label_id "  # noqa: S608 (placeholders only)
            f"WHERE t.image_id IN ({marks}) ORDER BY l.id",
            chunk,
        ):
            tags[int(r[0])].append(str(r[1]))
        for r in conn.execute(
            f"SELECT b.image_id, l.name, b.x1, b.y1, b.x2, b.y2 FROM boxes b JOIN labels l ON l.id = b.label_id "  # noqa: S608 (placeholders only)
            f"WHERE b.image_id IN ({marks}) ORDER BY b.id",
            chunk,
        ):
            boxes[int(r[0])].append(Box(str(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])))
        empty.update(
            int(r[0])
            for r in conn.execute(
                f"SELECT image_id FROM nothing_to_box WHERE image_id IN ({marks})",  # noqa: S608 (placeholders only)
                chunk,
            )
        )
    return [
        ImageRecord(
            id=int(r["id"]),
            sha256=r["sha256"],
            filename=r["filename"],
            camera=r["camera"],
            captured_at=r["captured_at"],
            created=r["created"],
            width=int(r["width"]),
            height=int(r["height"]),
            split=r["split"],
            phash=r["phash"],
            tags=tags[int(r["id"])],
            boxes=boxes[int(r["id"])],
            duplicate_of=r["near_duplicate_of"],
            size=int(r["size"]),
            ext=r["ext"],
            nothing_to_box=int(r["id"]) in empty,
        )
        for r in rows
    ]


def get(conn: sqlite3.Connection, image_id: int) -> ImageRecord:
    """One image with its annotations; NotFoundError when unknown."""
    row = conn.execute("SELECT * FROM images WHERE id = ?", (int(image_id),)).fetchone()
    if row is None:
        raise NotFoundError(f"image {image_id} does not exist")
    return records(conn, [row])[0]


def all_records(conn: sqlite3.Connection, project_id: int) -> list[ImageRecord]:
    """Every image of the project in id order, with its annotations."""
    return records(
        conn, conn.execute("SELECT * FROM images WHERE project_id = ? ORDER BY id", (project_id,)).fetchall()
    )


def file_of(conn: sqlite3.Connection, images_dir: Path, image_id: int) -> Path:
    """Where the image's file lives; NotFoundError when the image is unknown."""
    row = conn.execute("SELECT sha256, ext FROM images WHERE id = ?", (int(image_id),)).fetchone()
    if row is None:
        raise NotFoundError(f"image {image_id} does not exist")
    return path_for(images_dir, row[0], row[1])


def page(
    conn: sqlite3.Connection,
    project_id: int,
    *,
    page: int,
    page_size: int,
    tagged: bool | None,
    label: str | None,
    split: str | None,
    camera: str | None,
    newest_first: bool,
) -> tuple[list[ImageRecord], int]:
    """One page of images matching the filters, and the total number that match."""
    page = max(1, int(page))
    page_size = min(MAX_PAGE_SIZE, max(1, int(page_size)))
    where: list[str] = ["project_id = ?"]
    params: list[Any] = [project_id]
    has_annotation = (
        "(EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = images.id) "
        "OR EXISTS (SELECT 1 FROM boxes b WHERE b.image_id = images.id) "
        "OR EXISTS (SELECT 1 FROM nothing_to_box n WHERE n.image_id = images.id))"
    )
    if tagged is True:
        where.append(has_annotation)
    elif tagged is False:
        where.append(f"NOT {has_annotation}")
    if split is not None:
        where.append("split = ?")
        params.append(check_split(split))
    if camera is not None:
        where.append("camera = ?")
        params.append(camera)
    if label is not None:
        row = conn.execute("SELECT id FROM labels WHERE project_id = ? AND name = ?", (project_id, label)).fetchone()
        if row is None:
            raise NotFoundError(f"label {label!r} does not exist")
        # One uncorrelated set, not per-row EXISTS: SQLite would search boxes by label for every image.
        where.append(
            "id IN (SELECT image_id FROM image_tags WHERE label_id = ? "
            "UNION SELECT image_id FROM boxes WHERE label_id = ?)"
        )
        params += [row[0], row[0]]
    clause = f"WHERE {' AND '.join(where)}"
    total = int(conn.execute(f"SELECT COUNT(*) FROM images {clause}", params).fetchone()[0])  # noqa: S608
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(
        f"SELECT * FROM images {clause} ORDER BY id {order} LIMIT ? OFFSET ?",  # noqa: S608
        [*params, page_size, (page - 1) * page_size],
    ).fetchall()
    return records(conn, rows), total


def delete(
    conn: sqlite3.Connection,
    images_dir: Path,
    ids: Sequence[int],
    moved: list[tuple[Path, Path]],
    project_id: int | None = None,
) -> int:
    """Delete the rows (of the project, when given) and set aside the files no other project's row uses (appended
    to `moved` as (path, aside)); returns rows deleted.

    The caller restores `moved` when the transaction fails and discards the asides once it commits: the files
    are moved before the commit, under the write lock, so no other process can re-add the same content between.
    """
    rows = []
    scope, extra = ("", []) if project_id is None else (" AND project_id = ?", [project_id])
    for chunk, marks in in_chunks(ids):
        rows += conn.execute(
            f"SELECT id, sha256, ext FROM images WHERE id IN ({marks}){scope}",  # noqa: S608
            [*chunk, *extra],
        ).fetchall()
        conn.execute(f"DELETE FROM images WHERE id IN ({marks}){scope}", [*chunk, *extra])  # noqa: S608
    for row in rows:
        if conn.execute("SELECT 1 FROM images WHERE sha256 = ? LIMIT 1", (row["sha256"],)).fetchone() is not None:
            continue  # another project holds the same photo: the file stays
        path = path_for(images_dir, row["sha256"], row["ext"])
        if any(p == path for p, _ in moved):
            continue
        aside = path.with_name(f"{TEMP_PREFIX}deleted-{path.name}")
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, aside)
            moved.append((path, aside))
    return len(rows)


def set_split(conn: sqlite3.Connection, ids: Sequence[int], split: str, project_id: int | None = None) -> None:
    """Put existing images (of the project, when given) into a split; NotFoundError naming the ids that do not exist."""
    scope, extra = ("", []) if project_id is None else (" AND project_id = ?", [project_id])
    missing = [
        i
        for i in ids
        if conn.execute(f"SELECT 1 FROM images WHERE id = ?{scope}", [i, *extra]).fetchone() is None  # noqa: S608
    ]
    if missing:
        raise NotFoundError(f"images do not exist: {', '.join(map(str, missing[:20]))}")
    conn.executemany("UPDATE images SET split = ? WHERE id = ?", [(split, i) for i in ids])


def reconcile_files(conn: sqlite3.Connection, images_dir: Path) -> dict[str, int]:
    """Undo what a killed process left in images/: restore set-aside files of rows that still exist, remove files a
    killed transaction wrote (its PendingFiles list) that no row names, and temp files.

    Must run inside a write transaction: files are written and set aside only while the SQLite write lock is held,
    so while we hold it, a pending list, a temp file or a set-aside file belongs to no running transaction.
    Returns counts: restored, orphans (removed), temp (removed), kept (files without a row and not pending).
    """
    names = {f"{r[0]}.{r[1]}" for r in conn.execute("SELECT sha256, ext FROM images")}
    counts = {"restored": 0, "orphans": 0, "temp": 0, "kept": 0}
    pending: set[str] = set()
    pending_dir = images_dir / PENDING_DIR
    if pending_dir.is_dir():
        for listing in pending_dir.iterdir():
            with contextlib.suppress(OSError, UnicodeDecodeError):
                pending.update(line.strip() for line in listing.read_text(encoding="utf-8").splitlines())
            listing.unlink(missing_ok=True)
    deleted_prefix = f"{TEMP_PREFIX}deleted-"
    for path in sorted(images_dir.glob("*/*")):
        if not path.is_file() or path.parent.name == PENDING_DIR:
            continue
        if path.name.startswith(deleted_prefix):
            original = path.with_name(path.name[len(deleted_prefix) :])
            if original.name in names and not original.exists():
                os.replace(path, original)  # a delete that never committed: its row still wants the file
                counts["restored"] += 1
            else:
                path.unlink()
                counts["temp"] += 1
        elif path.name.startswith(TEMP_PREFIX):
            path.unlink()
            counts["temp"] += 1
        elif path.name not in names and f"{path.parent.name}/{path.name}" in pending:
            path.unlink()
            counts["orphans"] += 1
        elif path.name not in names:
            counts["kept"] += 1
    return counts


def stored_file_count(images_dir: Path) -> int:
    """Image files under images/ (temp files aside), whether or not a row names them."""
    if not images_dir.is_dir():
        return 0
    return sum(
        1
        for p in images_dir.glob("*/*")
        if p.is_file() and p.parent.name != PENDING_DIR and not p.name.startswith(TEMP_PREFIX)
    )
