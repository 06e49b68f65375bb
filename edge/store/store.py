"""The dataset store: labels, images, annotations, settings and zones in SQLite; image files by content hash.

Layout under `data_dir`: `shelfwatch.db` (SQLite in WAL mode, foreign keys on, schema migrations in
`edge.store.schema`) and `images/<first 2 hex>/<sha256>.<ext>`. Files are written atomically (temp file in the same
folder, then os.replace) while the database write lock is held, so two processes sharing a data_dir (the daemon
and the CLI) never see a row without its file.

Thread safety: one connection shared by every thread behind a re-entrant lock. The device's write rate is a few
images a second at most, so serialising calls costs nothing measurable and keeps transactions trivially correct.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge.config import DatasetRulesConfig, ZoneConfig
from edge.datasets.model import SPLITS, Box, Dataset, LabelInfo, Sample
from edge.datasets.zone_crops import zone_crop_counts
from edge.errors import (
    AnnotationError,
    ConflictError,
    DatasetError,
    ImageError,
    NotFoundError,
    ShelfwatchError,
    StoreError,
)
from edge.store.images import (
    TEMP_PREFIX,
    ImageFacts,
    hamming,
    remove_stale_temp_files,
    validate_image,
    write_atomic,
)
from edge.store.readiness import Task, readiness
from edge.store.records import Annotations, ImageRecord, LabelRecord
from edge.store.schema import migrate

log = logging.getLogger(__name__)

DB_NAME = "shelfwatch.db"
IMAGES_DIR = "images"
MAX_PAGE_SIZE = 500
MAX_LABEL_NAME = 64
# Imported coordinates this far outside 0..1 are rounding noise from other tools and are clamped; further is an error.
IMPORT_CLAMP_TOLERANCE = 0.01
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
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # naive datetimes from cameras and clients are taken as UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise AnnotationError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    return split


def _check_label_name(name: str) -> str:
    if not isinstance(name, str):
        raise AnnotationError(f"label name must be text, not {type(name).__name__}")
    clean = name.strip()
    if not clean:
        raise AnnotationError("label name must not be empty")
    if len(clean) > MAX_LABEL_NAME:
        raise AnnotationError(f"label name {clean[:20]!r}... is longer than {MAX_LABEL_NAME} characters")
    # Label names become folder names (folder-per-class export) and YOLO names: no separators or control chars.
    if any(c in clean for c in "/\\") or clean in (".", "..") or not clean.isprintable():
        raise AnnotationError(f"label name {clean!r} must not contain '/', '\\' or control characters")
    return clean


def _check_color(color: str) -> str:
    if not isinstance(color, str) or not _COLOR.match(color):
        raise AnnotationError(f"colour {color!r} must be #rrggbb")
    return color.lower()


def _check_box(box: Box, where: str, *, clamp: float = 0.0) -> Box:
    coords = []
    for axis in ("x1", "y1", "x2", "y2"):
        value = getattr(box, axis)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise AnnotationError(f"{where}: {axis} must be a finite number, not {value!r}")
        value = float(value)
        if -clamp <= value < 0.0:
            value = 0.0
        elif 1.0 < value <= 1.0 + clamp:
            value = 1.0
        if not 0.0 <= value <= 1.0:
            raise AnnotationError(f"{where}: {axis}={value:g} is outside the normalised range 0..1")
        coords.append(value)
    x1, y1, x2, y2 = coords
    if not x1 < x2:
        raise AnnotationError(f"{where}: x1={x1:g} must be less than x2={x2:g}")
    if not y1 < y2:
        raise AnnotationError(f"{where}: y1={y1:g} must be less than y2={y2:g}")
    return Box(box.label, x1, y1, x2, y2)


def _safe_file_name(name: str | None, fallback: str, ext: str) -> str:
    stem = Path(name).stem if name else ""
    stem = _UNSAFE_NAME_CHARS.sub("_", stem).strip("._")[:100]
    return f"{stem or fallback}.{ext}"


@dataclass
class _PendingImport:
    sample: Sample
    facts: ImageFacts
    tags: list[str]
    boxes: list[Box]


class DatasetStore:
    """Labels, images and their annotations, settings and zones of one data_dir."""

    def __init__(self, data_dir: Path, rules: DatasetRulesConfig | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.rules = rules or DatasetRulesConfig()
        self.images_dir = self.data_dir / IMAGES_DIR
        self.db_path = self.data_dir / DB_NAME
        self._lock = threading.RLock()
        try:
            self.images_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the dataset store in {self.data_dir}: {err}") from err
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            migrate(conn, str(self.db_path))
        except sqlite3.DatabaseError as err:
            conn.close()
            raise StoreError(f"{self.db_path} is not a usable SQLite database: {err}") from err
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        remove_stale_temp_files(self.images_dir)

    def close(self) -> None:
        """Close the database; further calls raise StoreError."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> DatasetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction; IMMEDIATE for writes so the SQLite write lock is taken up front."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError("the dataset store is closed")
            if conn.in_transaction:  # re-entered from inside another call: join its transaction
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- images ---------------------------------------------------------------------------------------------------

    def _path_for(self, sha256: str, ext: str) -> Path:
        return self.images_dir / sha256[:2] / f"{sha256}.{ext}"

    def _limits(self) -> dict[str, Any]:
        return {"max_image_mb": self.rules.max_image_mb, "max_pixels": self.rules.max_pixels}

    def _closest(self, phash: int, candidates: Iterable[tuple[int, int]]) -> int | None:
        best: tuple[int, int] | None = None
        for other_id, other_hash in candidates:
            distance = hamming(phash, other_hash)
            if distance <= self.rules.near_duplicate_distance and (best is None or (distance, other_id) < best):
                best = (distance, other_id)
        return None if best is None else best[1]

    def _all_hashes(self, conn: sqlite3.Connection) -> list[tuple[int, int]]:
        return [(int(r[0]), int(r[1], 16)) for r in conn.execute("SELECT id, phash FROM images")]

    def _insert_image(
        self,
        conn: sqlite3.Connection,
        data: bytes,
        facts: ImageFacts,
        *,
        filename: str | None,
        camera: str | None,
        captured_at: str | None,
        split: str,
        near_duplicate_of: int | None,
        written: list[Path],
    ) -> int:
        path = self._path_for(facts.sha256, facts.ext)
        if not path.exists():
            write_atomic(path, data)
            written.append(path)
        cur = conn.execute(
            "INSERT INTO images (sha256, ext, size, filename, camera, captured_at, created, width, height, split, "
            "phash, near_duplicate_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                facts.sha256,
                facts.ext,
                facts.size,
                filename,
                camera,
                captured_at,
                _now(),
                facts.width,
                facts.height,
                split,
                f"{facts.phash:016x}",
                near_duplicate_of,
            ),
        )
        return int(cur.lastrowid or 0)

    @staticmethod
    def _discard(paths: list[Path]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def add_image(
        self,
        data: bytes,
        *,
        filename: str | None = None,
        camera: str | None = None,
        captured_at: datetime | None = None,
        split: str = "auto",
    ) -> ImageRecord:
        """Validate and store one image; an exact duplicate returns the stored record with duplicate_of set."""
        return self.add_images([(filename or "", data)], camera=camera, captured_at=captured_at, split=split)[0]

    def add_images(
        self,
        files: list[tuple[str, bytes]],
        *,
        camera: str | None = None,
        captured_at: datetime | None = None,
        split: str = "auto",
    ) -> list[ImageRecord]:
        """Validate every file first, then store them all in one transaction (all or nothing)."""
        _check_split(split)
        when = _iso_utc(captured_at)
        # A nameless upload is called "image" in messages and stored without a file name.
        checked = [(name, data, validate_image(data, name or "image", **self._limits())) for name, data in files]
        written: list[Path] = []
        results: list[tuple[int, int | None, bool]] = []  # id, duplicate_of, exact duplicate
        try:
            with self._tx(write=True) as conn:
                hashes = self._all_hashes(conn)
                for name, data, facts in checked:
                    row = conn.execute("SELECT id FROM images WHERE sha256 = ?", (facts.sha256,)).fetchone()
                    if row is not None:
                        results.append((int(row[0]), int(row[0]), True))
                        continue
                    near = self._closest(facts.phash, hashes)
                    image_id = self._insert_image(
                        conn,
                        data,
                        facts,
                        filename=name or None,
                        camera=camera,
                        captured_at=when,
                        split=split,
                        near_duplicate_of=near,
                        written=written,
                    )
                    hashes.append((image_id, facts.phash))
                    results.append((image_id, near, False))
        except BaseException:
            self._discard(written)
            raise
        records = []
        for image_id, duplicate_of, exact in results:
            record = self.get_image(image_id)
            if exact:
                record.duplicate_of = duplicate_of
                log.info("image %s is identical to stored image %s; nothing new stored", record.filename, image_id)
            records.append(record)
        return records

    def _records(self, conn: sqlite3.Connection, rows: Sequence[sqlite3.Row]) -> list[ImageRecord]:
        ids = [int(r["id"]) for r in rows]
        tags: dict[int, list[str]] = {i: [] for i in ids}
        boxes: dict[int, list[Box]] = {i: [] for i in ids}
        # Chunked: SQLite limits the number of bound parameters.
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
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
            )
            for r in rows
        ]

    def get_image(self, image_id: int) -> ImageRecord:
        """One image with its annotations; NotFoundError when unknown."""
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM images WHERE id = ?", (int(image_id),)).fetchone()
            if row is None:
                raise NotFoundError(f"image {image_id} does not exist")
            return self._records(conn, [row])[0]

    def image_path(self, image_id: int) -> Path:
        """Where the image's file lives."""
        with self._tx() as conn:
            row = conn.execute("SELECT sha256, ext FROM images WHERE id = ?", (int(image_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"image {image_id} does not exist")
        return self._path_for(row[0], row[1])

    def image_bytes(self, image_id: int) -> bytes:
        """The image file's bytes."""
        path = self.image_path(image_id)
        try:
            return path.read_bytes()
        except FileNotFoundError as err:
            raise StoreError(f"the file of image {image_id} is missing from {path.parent}") from err

    def list_images(
        self,
        *,
        page: int = 1,
        page_size: int = 50,
        tagged: bool | None = None,
        label: str | None = None,
        split: str | None = None,
        camera: str | None = None,
        newest_first: bool = True,
    ) -> tuple[list[ImageRecord], int]:
        """One page of images matching the filters, and the total number that match."""
        page = max(1, int(page))
        page_size = min(MAX_PAGE_SIZE, max(1, int(page_size)))
        where: list[str] = []
        params: list[Any] = []
        has_annotation = (
            "(EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = images.id) "
            "OR EXISTS (SELECT 1 FROM boxes b WHERE b.image_id = images.id))"
        )
        if tagged is True:
            where.append(has_annotation)
        elif tagged is False:
            where.append(f"NOT {has_annotation}")
        if split is not None:
            where.append("split = ?")
            params.append(_check_split(split))
        if camera is not None:
            where.append("camera = ?")
            params.append(camera)
        with self._tx() as conn:
            if label is not None:
                row = conn.execute("SELECT id FROM labels WHERE name = ?", (label,)).fetchone()
                if row is None:
                    raise NotFoundError(f"label {label!r} does not exist")
                # One uncorrelated set, not per-row EXISTS: SQLite would search boxes by label for every image.
                where.append(
                    "id IN (SELECT image_id FROM image_tags WHERE label_id = ? "
                    "UNION SELECT image_id FROM boxes WHERE label_id = ?)"
                )
                params += [row[0], row[0]]
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            total = int(conn.execute(f"SELECT COUNT(*) FROM images {clause}", params).fetchone()[0])  # noqa: S608
            order = "DESC" if newest_first else "ASC"
            rows = conn.execute(
                f"SELECT * FROM images {clause} ORDER BY id {order} LIMIT ? OFFSET ?",  # noqa: S608
                [*params, page_size, (page - 1) * page_size],
            ).fetchall()
            return self._records(conn, rows), total

    def delete_images(self, ids: list[int]) -> int:
        """Delete images, their annotations and their files; returns how many existed."""
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return 0
        moved: list[tuple[Path, Path]] = []
        with self._lock:
            try:
                with self._tx(write=True) as conn:
                    rows = []
                    for start in range(0, len(wanted), 500):
                        chunk = wanted[start : start + 500]
                        marks = ",".join("?" * len(chunk))
                        rows += conn.execute(
                            f"SELECT id, sha256, ext FROM images WHERE id IN ({marks})",  # noqa: S608
                            chunk,
                        ).fetchall()
                        conn.execute(f"DELETE FROM images WHERE id IN ({marks})", chunk)  # noqa: S608
                    # Files are moved aside before the commit (under the write lock, so no other process can
                    # re-add the same content in between) and restored if the commit fails.
                    for row in rows:
                        path = self._path_for(row["sha256"], row["ext"])
                        aside = path.with_name(f"{TEMP_PREFIX}deleted-{path.name}")
                        with contextlib.suppress(FileNotFoundError):
                            os.replace(path, aside)
                            moved.append((path, aside))
            except BaseException:
                for path, aside in moved:
                    os.replace(aside, path)
                raise
            self._discard([aside for _, aside in moved])
        log.info("deleted %s images", len(rows))
        return len(rows)

    def set_split(self, ids: list[int], split: str) -> None:
        """Put images into a split (train, val, test, or auto to let auto_split decide)."""
        _check_split(split)
        wanted = sorted({int(i) for i in ids})
        with self._tx(write=True) as conn:
            missing = [i for i in wanted if conn.execute("SELECT 1 FROM images WHERE id = ?", (i,)).fetchone() is None]
            if missing:
                raise NotFoundError(f"images do not exist: {', '.join(map(str, missing[:20]))}")
            conn.executemany("UPDATE images SET split = ? WHERE id = ?", [(split, i) for i in wanted])

    def auto_split(self, test_fraction: float = 0.2, seed: int = 0, *, only_auto: bool = True) -> dict[str, int]:
        """Assign train/test to images in split 'auto' (all images with only_auto=False), stratified by label."""
        if not 0.0 < test_fraction < 1.0:
            raise AnnotationError(f"test_fraction {test_fraction} must be between 0 and 1")
        with self._tx(write=True) as conn:
            label_count = {
                int(r[0]): int(r[1])
                for r in conn.execute(
                    "SELECT label_id, COUNT(*) FROM (SELECT image_id, label_id FROM image_tags "
                    "UNION SELECT image_id, label_id FROM boxes) GROUP BY label_id"
                )
            }
            image_labels: dict[int, set[int]] = {}
            for r in conn.execute(
                "SELECT image_id, label_id FROM image_tags UNION SELECT image_id, label_id FROM boxes"
            ):
                image_labels.setdefault(int(r[0]), set()).add(int(r[1]))
            query = "SELECT id FROM images WHERE split = 'auto' OR ? ORDER BY id"
            # Stratum of an image: its rarest label, so that rare labels get their share of the test split.
            strata: dict[int, list[int]] = {}
            for r in conn.execute(query, (not only_auto,)):
                labels = image_labels.get(int(r[0]), set())
                stratum = min(labels, key=lambda lab: (label_count[lab], lab)) if labels else -1
                strata.setdefault(stratum, []).append(int(r[0]))
            rng = random.Random(seed)
            updates: list[tuple[str, int]] = []
            for stratum in sorted(strata):
                members = strata[stratum]
                rng.shuffle(members)
                n_test = math.floor(len(members) * test_fraction + 0.5)
                if n_test == 0 and len(members) >= 5:
                    n_test = 1
                n_test = min(n_test, len(members) - 1) if len(members) > 1 else 0
                updates += [("test", i) for i in members[:n_test]] + [("train", i) for i in members[n_test:]]
            conn.executemany("UPDATE images SET split = ? WHERE id = ?", updates)
            counts = {s: 0 for s in SPLITS}
            for r in conn.execute("SELECT split, COUNT(*) FROM images GROUP BY split"):
                counts[r[0]] = int(r[1])
        log.info("auto split assigned %s images: %s", len(updates), counts)
        return counts

    # -- annotations ----------------------------------------------------------------------------------------------

    def get_annotations(self, image_id: int) -> Annotations:
        """The image's tags and boxes; NotFoundError when the image is unknown."""
        record = self.get_image(image_id)
        return Annotations(tags=record.tags, boxes=record.boxes)

    def _label_ids(self, conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
        # Keyed case-insensitively like the column; value: id and the canonical spelling.
        return {str(r[1]).casefold(): (int(r[0]), str(r[1])) for r in conn.execute("SELECT id, name FROM labels")}

    def _write_annotations(
        self, conn: sqlite3.Connection, image_id: int, tags: list[int], boxes: list[tuple[int, Box]]
    ) -> None:
        conn.execute("DELETE FROM image_tags WHERE image_id = ?", (image_id,))
        conn.execute("DELETE FROM boxes WHERE image_id = ?", (image_id,))
        conn.executemany("INSERT INTO image_tags (image_id, label_id) VALUES (?, ?)", [(image_id, t) for t in tags])
        conn.executemany(
            "INSERT INTO boxes (image_id, label_id, x1, y1, x2, y2) VALUES (?, ?, ?, ?, ?, ?)",
            [(image_id, label_id, b.x1, b.y1, b.x2, b.y2) for label_id, b in boxes],
        )

    def set_annotations(self, image_id: int, tags: list[str], boxes: list[Box]) -> Annotations:
        """Replace the image's tags and boxes atomically after validating them (AnnotationError)."""
        with self._tx(write=True) as conn:
            if conn.execute("SELECT 1 FROM images WHERE id = ?", (int(image_id),)).fetchone() is None:
                raise NotFoundError(f"image {image_id} does not exist")
            known = self._label_ids(conn)
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
                valid = _check_box(box, f"{where} ({canonical})")
                checked.append((label_id, Box(canonical, valid.x1, valid.y1, valid.x2, valid.y2)))
            self._write_annotations(conn, int(image_id), tag_ids, checked)
        return Annotations(tags=tag_names, boxes=[b for _, b in checked])

    # -- labels ---------------------------------------------------------------------------------------------------

    def _label_records(self, conn: sqlite3.Connection, name: str | None = None) -> list[LabelRecord]:
        query = (
            "SELECT l.id, l.name, l.description, l.color, "
            "(SELECT COUNT(*) FROM image_tags t WHERE t.label_id = l.id) AS images, "
            "(SELECT COUNT(*) FROM boxes b WHERE b.label_id = l.id) AS boxes FROM labels l"
        )
        rows = (
            conn.execute(f"{query} WHERE l.name = ?", (name,))
            if name is not None
            else conn.execute(f"{query} ORDER BY l.id")
        )
        return [
            LabelRecord(
                id=int(r["id"]),
                name=r["name"],
                description=r["description"],
                color=r["color"],
                images=int(r["images"]),
                boxes=int(r["boxes"]),
            )
            for r in rows
        ]

    def _get_label(self, conn: sqlite3.Connection, name: str) -> LabelRecord:
        found = self._label_records(conn, name)
        if not found:
            raise NotFoundError(f"label {name!r} does not exist")
        return found[0]

    def list_labels(self) -> list[LabelRecord]:
        """Every label in creation order, with its image and box counts."""
        with self._tx() as conn:
            return self._label_records(conn)

    def get_label(self, name: str) -> LabelRecord:
        """One label by name (case-insensitive); NotFoundError when unknown."""
        with self._tx() as conn:
            return self._get_label(conn, name)

    def _create_label(self, conn: sqlite3.Connection, name: str, description: str, color: str | None) -> None:
        name = _check_label_name(name)
        if not isinstance(description, str):
            raise AnnotationError("label description must be text")
        existing = conn.execute("SELECT name FROM labels WHERE name = ?", (name,)).fetchone()
        if existing is not None:
            raise ConflictError(f"label {existing[0]!r} already exists")
        if color is None:
            used = int(conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0])
            color = PALETTE[used % len(PALETTE)]
        conn.execute(
            "INSERT INTO labels (name, description, color, created) VALUES (?, ?, ?, ?)",
            (name, description.strip(), _check_color(color), _now()),
        )

    def create_label(self, name: str, description: str = "", color: str | None = None) -> LabelRecord:
        """Create a label; ConflictError when the name (case-insensitive) exists."""
        with self._tx(write=True) as conn:
            self._create_label(conn, name, description, color)
            return self._get_label(conn, name.strip())

    def update_label(
        self,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
        color: str | None = None,
    ) -> LabelRecord:
        """Rename, describe or recolour a label; its annotations follow a rename."""
        with self._tx(write=True) as conn:
            current = self._get_label(conn, name)
            if new_name is not None:
                new_name = _check_label_name(new_name)
                clash = conn.execute("SELECT id, name FROM labels WHERE name = ?", (new_name,)).fetchone()
                if clash is not None and int(clash[0]) != current.id:
                    raise ConflictError(f"label {clash[1]!r} already exists")
                conn.execute("UPDATE labels SET name = ? WHERE id = ?", (new_name, current.id))
            if description is not None:
                if not isinstance(description, str):
                    raise AnnotationError("label description must be text")
                conn.execute("UPDATE labels SET description = ? WHERE id = ?", (description.strip(), current.id))
            if color is not None:
                conn.execute("UPDATE labels SET color = ? WHERE id = ?", (_check_color(color), current.id))
            return self._get_label(conn, new_name or current.name)

    def delete_label(self, name: str, *, force: bool = False) -> None:
        """Delete a label; when images or boxes use it, ConflictError unless force (which removes those too)."""
        with self._tx(write=True) as conn:
            label = self._get_label(conn, name)
            if (label.images or label.boxes) and not force:
                raise ConflictError(
                    f"label {label.name!r} is used by {label.images} image tags and {label.boxes} boxes; "
                    "re-tag those images first, or delete with force to remove those annotations too"
                )
            conn.execute("DELETE FROM labels WHERE id = ?", (label.id,))
        log.info("deleted label %s (%s image tags, %s boxes)", label.name, label.images, label.boxes)

    # -- dataset --------------------------------------------------------------------------------------------------

    def default_task(self) -> Task:
        """The task a dataset trains when none is chosen: detection once any box exists, else classification."""
        with self._tx() as conn:
            return _default_task(int(conn.execute("SELECT COUNT(*) FROM boxes").fetchone()[0]))

    def summary(
        self, task: Literal["classification", "detection"] | None = None, zones: Sequence[ZoneConfig] | None = None
    ) -> dict[str, Any]:
        """Counts per label and split, near-duplicates, and the readiness verdict with its reasons.

        With `zones`, a classifier is judged by the zone crops it will train on (`per_label[name]["crops"]`, see
        edge.datasets.zone_crops): one image gives one example per zone.
        """
        with self._tx() as conn:
            images = int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])
            tagged = int(
                conn.execute(
                    "SELECT COUNT(*) FROM (SELECT image_id FROM image_tags UNION SELECT image_id FROM boxes)"
                ).fetchone()[0]
            )
            total_boxes = int(conn.execute("SELECT COUNT(*) FROM boxes").fetchone()[0])
            # An image counts for a label when it carries it as a tag or on a box: a classifier trained on zone
            # crops learns from the boxes drawn around low-stock shelf areas, as the seeds' tagging flow does.
            carrying = {
                int(r[0]): int(r[1])
                for r in conn.execute(
                    "SELECT label_id, COUNT(DISTINCT image_id) FROM "
                    "(SELECT label_id, image_id FROM image_tags UNION SELECT label_id, image_id FROM boxes) "
                    "GROUP BY label_id"
                )
            }
            per_label = {
                lab.name: {"images": carrying.get(lab.id, 0), "boxes": lab.boxes} for lab in self._label_records(conn)
            }
            near = [
                [int(r[0]), int(r[1])]
                for r in conn.execute(
                    "SELECT id, near_duplicate_of FROM images WHERE near_duplicate_of IS NOT NULL ORDER BY id"
                )
            ]
            splits = {s: 0 for s in SPLITS}
            for r in conn.execute("SELECT split, COUNT(*) FROM images GROUP BY split"):
                splits[r[0]] = int(r[1])
        resolved: Task = task or _default_task(total_boxes)
        unit = None
        judged: dict[str, dict[str, int]] = per_label
        if resolved == "classification" and zones:
            crops = zone_crop_counts(self._all_annotations(), zones, list(per_label))
            for name, entry in per_label.items():
                entry["crops"] = crops.get(name, 0)
            # The trainer's own NONE class when the dataset has no none/other label of its own.
            judged = {**per_label, **{n: {"crops": c} for n, c in crops.items() if n not in per_label}}
            unit = "crops"
        ready, problems, warnings = readiness(
            judged, resolved, self.rules, tagged_images=tagged, near_duplicates=len(near), unit=unit
        )
        return {
            "images": images,
            "tagged": tagged,
            "untagged": images - tagged,
            "boxes": total_boxes,
            "per_label": per_label,
            "task": resolved,
            "unit": unit or ("boxes" if resolved == "detection" else "images"),
            "zones": len(zones) if resolved == "classification" and zones else 0,
            "ready": ready,
            "problems": problems,
            "warnings": warnings,
            "near_duplicates": near,
            "splits": splits,
        }

    def _all_annotations(self) -> list[tuple[list[str], list[Box]]]:
        """(tags, boxes) of every tagged image."""
        tags: dict[int, list[str]] = {}
        boxes: dict[int, list[Box]] = {}
        with self._tx() as conn:
            for r in conn.execute("SELECT t.image_id, l.name FROM image_tags t JOIN labels l ON l.id = t.label_id"):
                tags.setdefault(int(r[0]), []).append(r[1])
            for r in conn.execute(
                "SELECT b.image_id, l.name, b.x1, b.y1, b.x2, b.y2 FROM boxes b JOIN labels l ON l.id = b.label_id"
            ):
                boxes.setdefault(int(r[0]), []).append(Box(r[1], r[2], r[3], r[4], r[5]))
        return [(tags.get(i, []), boxes.get(i, [])) for i in sorted(set(tags) | set(boxes))]

    def _validate_sample(self, sample: Sample, label_names: dict[str, str]) -> _PendingImport:
        try:
            data = Path(sample.path).read_bytes()
        except OSError as err:
            raise DatasetError(f"{sample.name}: cannot read {sample.path}: {err.strerror or err}") from err
        facts = validate_image(data, sample.name, **self._limits())
        tags: list[str] = []
        for tag in sample.tags:
            canonical = label_names[_check_label_name(tag).casefold()]
            if canonical not in tags:
                tags.append(canonical)
        boxes = []
        for index, box in enumerate(sample.boxes):
            try:
                valid = _check_box(box, f"{sample.name} box {index + 1}", clamp=IMPORT_CLAMP_TOLERANCE)
            except AnnotationError as err:
                raise DatasetError(str(err)) from err
            boxes.append(
                Box(label_names[_check_label_name(box.label).casefold()], valid.x1, valid.y1, valid.x2, valid.y2)
            )
        return _PendingImport(sample=sample, facts=facts, tags=tags, boxes=boxes)

    def import_dataset(self, ds: Dataset, *, split_from_source: bool = True) -> dict[str, int]:
        """Add a whole dataset in one transaction after validating every image and box first (all or nothing)."""
        # Every label the dataset names, declared or only used, in its declared order; canonical spelling kept.
        declared: dict[str, LabelInfo] = {}
        for info in ds.labels:
            declared.setdefault(_check_label_name(info.name).casefold(), info)
        for sample in ds.samples:
            for name in [*sample.tags, *(b.label for b in sample.boxes)]:
                declared.setdefault(_check_label_name(name).casefold(), LabelInfo(name.strip()))
        with self._tx() as conn:
            existing = self._label_ids(conn)
        label_names = {
            key: existing[key][1] if key in existing else info.name.strip() for key, info in declared.items()
        }

        pending: list[_PendingImport] = []
        for sample in ds.samples:
            try:
                pending.append(self._validate_sample(sample, label_names))
            except ImageError as err:
                raise DatasetError(f"nothing imported: {err}") from err
            except DatasetError as err:
                raise DatasetError(f"nothing imported: {err}") from err

        stats = {"images": 0, "duplicates": 0, "boxes": 0, "tags": 0, "labels": 0}
        written: list[Path] = []
        try:
            with self._tx(write=True) as conn:
                known = self._label_ids(conn)
                for key, info in declared.items():
                    if key not in known:
                        # A source's colour is a hint: one we cannot use gets a palette colour instead.
                        color = info.color if info.color and _COLOR.match(info.color) else None
                        self._create_label(conn, info.name, info.description or "", color)
                        stats["labels"] += 1
                known = self._label_ids(conn)
                hashes = self._all_hashes(conn)
                for item in pending:
                    facts = item.facts
                    row = conn.execute("SELECT id FROM images WHERE sha256 = ?", (facts.sha256,)).fetchone()
                    tag_ids = [known[t.casefold()][0] for t in item.tags]
                    box_ids = [(known[b.label.casefold()][0], b) for b in item.boxes]
                    if row is not None:
                        stats["duplicates"] += 1
                        image_id = int(row[0])
                        has_any = conn.execute(
                            "SELECT EXISTS (SELECT 1 FROM image_tags WHERE image_id = ?) "
                            "OR EXISTS (SELECT 1 FROM boxes WHERE image_id = ?)",
                            (image_id, image_id),
                        ).fetchone()[0]
                        # A copy we already hold gains the imported annotations only when it had none: importing
                        # the same dataset twice must not double its boxes.
                        if has_any or not (tag_ids or box_ids):
                            continue
                    else:
                        data = Path(item.sample.path).read_bytes()
                        if hashlib.sha256(data).hexdigest() != facts.sha256:
                            raise DatasetError(f"nothing imported: {item.sample.name} changed while importing")
                        split = item.sample.split if split_from_source and item.sample.split in SPLITS else "auto"
                        near = self._closest(facts.phash, hashes)
                        image_id = self._insert_image(
                            conn,
                            data,
                            facts,
                            filename=item.sample.name,
                            camera=None,
                            captured_at=None,
                            split=split,
                            near_duplicate_of=near,
                            written=written,
                        )
                        hashes.append((image_id, facts.phash))
                        stats["images"] += 1
                    self._write_annotations(conn, image_id, tag_ids, box_ids)
                    stats["tags"] += len(tag_ids)
                    stats["boxes"] += len(box_ids)
        except BaseException:
            self._discard(written)
            raise
        log.info("imported %s", stats)
        return stats

    def export_dataset(self, *, only_tagged: bool = False) -> Dataset:
        """The store as a Dataset: sample.path is the stored file, sample.name a unique, safe file name."""
        with self._tx() as conn:
            labels = [LabelInfo(lab.name, lab.description, lab.color) for lab in self._label_records(conn)]
            records = self._records(conn, conn.execute("SELECT * FROM images ORDER BY id").fetchall())
        samples: list[Sample] = []
        used: set[str] = set()
        for rec in records:
            if only_tagged and not rec.tagged:
                continue
            name = _safe_file_name(rec.filename, f"image-{rec.id}", rec.ext)
            if name.casefold() in used:
                name = _safe_file_name(f"{Path(name).stem}-{rec.id}", f"image-{rec.id}", rec.ext)
            used.add(name.casefold())
            samples.append(
                Sample(
                    path=self._path_for(rec.sha256, rec.ext),
                    name=name,
                    tags=list(rec.tags),
                    boxes=list(rec.boxes),
                    split=rec.split,
                    width=rec.width,
                    height=rec.height,
                )
            )
        return Dataset(labels=labels, samples=samples)

    def dataset_fingerprint(self) -> str:
        """sha256 over labels, images (content and split) and annotations: equal datasets, equal fingerprints."""
        with self._tx() as conn:
            labels = sorted(str(r[0]) for r in conn.execute("SELECT name FROM labels"))
            records = self._records(conn, conn.execute("SELECT * FROM images").fetchall())
        digest = hashlib.sha256()
        digest.update(json.dumps(labels).encode())
        for rec in sorted(records, key=lambda r: r.sha256):
            boxes = sorted((b.label, *(round(v, 6) for v in b.as_tuple())) for b in rec.boxes)
            digest.update(json.dumps([rec.sha256, rec.split, sorted(rec.tags), boxes]).encode())
        return digest.hexdigest()

    # -- settings and zones ---------------------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A stored JSON value, or default."""
        with self._tx() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under key."""
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as err:
            raise ShelfwatchError(f"setting {key!r} must be JSON-serialisable: {err}") from err
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def get_zones(self, camera_id: str) -> list[ZoneConfig] | None:
        """The camera's zones as edited on the web page; None when never edited (the config file's apply)."""
        with self._tx() as conn:
            row = conn.execute("SELECT zones FROM zones WHERE camera_id = ?", (camera_id,)).fetchone()
        if row is None:
            return None
        return [ZoneConfig.model_validate(z) for z in json.loads(row[0])]

    def set_zones(self, camera_id: str, zones: list[ZoneConfig]) -> None:
        """Replace the camera's zones; zone ids must be unique (ConflictError)."""
        seen: set[str] = set()
        for zone in zones:
            if zone.id in seen:
                raise ConflictError(f"zone id {zone.id!r} is used twice in camera {camera_id!r}")
            seen.add(zone.id)
        text = json.dumps([z.model_dump(mode="json") for z in zones])
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT INTO zones (camera_id, zones, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(camera_id) DO UPDATE SET zones = excluded.zones, updated = excluded.updated",
                (camera_id, text, _now()),
            )


def _default_task(total_boxes: int) -> Task:
    return "detection" if total_boxes else "classification"
