"""The dataset store: labels, images, annotations, settings and zones in SQLite; image files by content hash.

Layout under `data_dir`: `shelfwatch.db` (SQLite in WAL mode, foreign keys on, schema migrations in
`edge.store.schema`) and `images/<first 2 hex>/<sha256>.<ext>`. Files are written atomically (temp file in the same
folder, then os.replace) while the database write lock is held, so two processes sharing a data_dir (the daemon
and the CLI) never see a row without its file.

`DatasetStore` is the one public face: each method opens one transaction (`edge.store.connection`) and hands it to
the room that knows the tables: `image_rows`, `labels`, `annotation_rows`, `splits`, `summary`, `transfer` (import and
export) and `settings` (settings and zones); input checks live in `validation`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.config import DatasetRulesConfig, ZoneConfig
from edge.datasets.model import Box, Dataset
from edge.errors import StoreError
from edge.store import annotation_rows, image_rows, labels, scratch, settings, splits, summary, transfer
from edge.store.connection import StoreConnection
from edge.store.images import remove_stale_temp_files, validate_image
from edge.store.readiness import Task
from edge.store.records import Annotations, ImageRecord, LabelRecord
from edge.store.validation import check_split, iso_utc

log = logging.getLogger(__name__)

DB_NAME = "shelfwatch.db"
IMAGES_DIR = "images"
# Work folders of imports and exports (an extracted archive), under data_dir so that a process killed mid-import
# leaves nothing in /tmp: each start removes the folders of processes that are gone.
SCRATCH_DIR = "tmp"


class DatasetStore:
    """Labels, images and their annotations, settings and zones of one data_dir."""

    def __init__(self, data_dir: Path, rules: DatasetRulesConfig | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.rules = rules or DatasetRulesConfig()
        self.images_dir = self.data_dir / IMAGES_DIR
        self.db_path = self.data_dir / DB_NAME
        self.scratch_dir = self.data_dir / SCRATCH_DIR
        try:
            self.images_dir.mkdir(parents=True, exist_ok=True)
            new = not self.db_path.exists() or self.db_path.stat().st_size == 0
        except OSError as err:
            raise StoreError(f"cannot open the dataset store in {self.data_dir}: {err}") from err
        if new and (orphaned := image_rows.stored_file_count(self.images_dir)):
            # A lost or truncated database beside images it described: starting would look healthy with an empty
            # dataset and later remove those files as orphans.
            raise StoreError(
                f"{self.db_path} is {'empty (0 bytes)' if self.db_path.exists() else 'missing'} but "
                f"{self.images_dir} holds {orphaned} image files: the dataset's database was lost. Restore "
                f"{DB_NAME} from a backup; or, to start with an empty dataset, move {self.images_dir} aside"
            )
        self._db = StoreConnection(
            self.db_path,
            damage_advice=(
                "restore it from a backup, or recover what SQLite can still read "
                f"(sqlite3 {self.db_path} .recover | sqlite3 recovered.db) and put that in its place; "
                f"the image files in {self.images_dir} are untouched"
            ),
        )
        try:
            self._clean_after_crash()
        except BaseException:
            self._db.close()
            raise

    def _clean_after_crash(self) -> None:
        """Remove what a killed import, delete or export left behind (files without rows, temp files and folders)."""
        remove_stale_temp_files(self.images_dir)
        with self._db.tx(write=True) as conn:
            counts = image_rows.reconcile_files(conn, self.images_dir)
        if any(counts.values()):
            log.warning(
                "%s: an interrupted write left files behind: restored %s, removed %s image files without a row and "
                "%s temp files",
                self.images_dir,
                counts["restored"],
                counts["orphans"],
                counts["temp"],
            )
        removed = scratch.remove_abandoned(self.scratch_dir)
        if removed:
            log.warning("removed %s work folders of interrupted imports or exports in %s", removed, self.scratch_dir)

    def scratch(self, purpose: str) -> contextlib.AbstractContextManager[Path]:
        """A new, empty work folder under data_dir (removed on exit, or at the next start after a kill)."""
        return scratch.folder(self.scratch_dir, purpose)

    def close(self) -> None:
        """Close the database; further calls raise StoreError."""
        self._db.close()

    def __enter__(self) -> DatasetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- images ---------------------------------------------------------------------------------------------------

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
        check_split(split)
        when = iso_utc(captured_at)
        rules = self.rules
        # A nameless upload is called "image" in messages and stored without a file name.
        checked = [
            (
                name,
                data,
                validate_image(data, name or "image", max_image_mb=rules.max_image_mb, max_pixels=rules.max_pixels),
            )
            for name, data in files
        ]
        written: list[Path] = []
        results: list[tuple[int, int | None, bool]] = []  # id, duplicate_of, exact duplicate
        try:
            with self._db.tx(write=True) as conn:
                hashes = image_rows.all_hashes(conn)
                for name, data, facts in checked:
                    found = image_rows.id_by_sha256(conn, facts.sha256)
                    if found is not None:
                        results.append((found, found, True))
                        continue
                    near = image_rows.closest(facts.phash, hashes, self.rules.near_duplicate_distance)
                    image_id = image_rows.insert(
                        conn,
                        self.images_dir,
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
            image_rows.discard(written)
            raise
        records = []
        for image_id, duplicate_of, exact in results:
            record = self.get_image(image_id)
            if exact:
                record.duplicate_of = duplicate_of
                log.info("image %s is identical to stored image %s; nothing new stored", record.filename, image_id)
            records.append(record)
        return records

    def get_image(self, image_id: int) -> ImageRecord:
        """One image with its annotations; NotFoundError when unknown."""
        with self._db.tx() as conn:
            return image_rows.get(conn, image_id)

    def image_path(self, image_id: int) -> Path:
        """Where the image's file lives."""
        with self._db.tx() as conn:
            return image_rows.file_of(conn, self.images_dir, image_id)

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
        with self._db.tx() as conn:
            return image_rows.page(
                conn,
                page=page,
                page_size=page_size,
                tagged=tagged,
                label=label,
                split=split,
                camera=camera,
                newest_first=newest_first,
            )

    def delete_images(self, ids: list[int]) -> int:
        """Delete images, their annotations and their files; returns how many existed."""
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return 0
        moved: list[tuple[Path, Path]] = []
        with self._db.lock:
            try:
                with self._db.tx(write=True) as conn:
                    deleted = image_rows.delete(conn, self.images_dir, wanted, moved)
            except BaseException:
                for path, aside in moved:
                    aside.replace(path)
                raise
            image_rows.discard(aside for _, aside in moved)
        log.info("deleted %s images", deleted)
        return deleted

    def set_split(self, ids: list[int], split: str) -> None:
        """Put images into a split (train, val, test, or auto to let auto_split decide)."""
        check_split(split)
        wanted = sorted({int(i) for i in ids})
        with self._db.tx(write=True) as conn:
            image_rows.set_split(conn, wanted, split)

    def auto_split(self, test_fraction: float = 0.2, seed: int = 0, *, only_auto: bool = True) -> dict[str, int]:
        """Assign train/test to images in split 'auto' (all images with only_auto=False), stratified by label."""
        splits.check_fraction(test_fraction)
        with self._db.tx(write=True) as conn:
            updates = splits.assign_splits(
                splits.image_labels(conn), splits.candidates(conn, only_auto=only_auto), test_fraction, seed
            )
            splits.apply(conn, updates)
            counts = splits.counts(conn)
        log.info("auto split assigned %s images: %s", len(updates), counts)
        return counts

    # -- annotations ----------------------------------------------------------------------------------------------

    def get_annotations(self, image_id: int) -> Annotations:
        """The image's tags and boxes; NotFoundError when the image is unknown."""
        record = self.get_image(image_id)
        return Annotations(tags=record.tags, boxes=record.boxes)

    def set_annotations(self, image_id: int, tags: list[str], boxes: list[Box]) -> Annotations:
        """Replace the image's tags and boxes atomically after validating them (AnnotationError)."""
        with self._db.tx(write=True) as conn:
            return annotation_rows.replace(conn, image_id, tags, boxes)

    # -- labels ---------------------------------------------------------------------------------------------------

    def list_labels(self) -> list[LabelRecord]:
        """Every label in creation order, with its image and box counts."""
        with self._db.tx() as conn:
            return labels.label_records(conn)

    def get_label(self, name: str) -> LabelRecord:
        """One label by name (case-insensitive); NotFoundError when unknown."""
        with self._db.tx() as conn:
            return labels.get(conn, name)

    def create_label(self, name: str, description: str = "", color: str | None = None) -> LabelRecord:
        """Create a label; ConflictError when the name (case-insensitive) exists."""
        with self._db.tx(write=True) as conn:
            labels.create(conn, name, description, color)
            return labels.get(conn, name.strip())

    def update_label(
        self,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
        color: str | None = None,
    ) -> LabelRecord:
        """Rename, describe or recolour a label; its annotations follow a rename."""
        with self._db.tx(write=True) as conn:
            return labels.update(conn, name, new_name=new_name, description=description, color=color)

    def delete_label(self, name: str, *, force: bool = False) -> None:
        """Delete a label; when images or boxes use it, ConflictError unless force (which removes those too)."""
        with self._db.tx(write=True) as conn:
            label = labels.delete(conn, name, force=force)
        log.info("deleted label %s (%s image tags, %s boxes)", label.name, label.images, label.boxes)

    # -- dataset --------------------------------------------------------------------------------------------------

    def default_task(self) -> Task:
        """The task a dataset trains when none is chosen: detection once any box exists, else classification."""
        with self._db.tx() as conn:
            return summary.default_task(summary.box_count(conn))

    def summary(self, task: Task | None = None, zones: Sequence[ZoneConfig] | None = None) -> dict[str, Any]:
        """Counts per label and split, near-duplicates, and the readiness verdict with its reasons.

        With `zones`, a classifier is judged by the zone crops it will train on (`per_label[name]["crops"]`, see
        edge.datasets.zone_crops): one image gives one example per zone.
        """
        with self._db.tx() as conn:
            return summary.summarise(conn, self.rules, task, zones)

    def import_dataset(self, ds: Dataset, *, split_from_source: bool = True) -> dict[str, int]:
        """Add a whole dataset in one transaction after validating every image and box first (all or nothing)."""
        return transfer.import_dataset(self._db, self.images_dir, self.rules, ds, split_from_source=split_from_source)

    def export_dataset(self, *, only_tagged: bool = False) -> Dataset:
        """The store as a Dataset: sample.path is the stored file, sample.name a unique, safe file name."""
        return transfer.export_dataset(self._db, self.images_dir, only_tagged=only_tagged)

    # -- settings and zones ---------------------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A stored JSON value, or default."""
        with self._db.tx() as conn:
            return settings.get(conn, key, default)

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under key."""
        text = settings.encode(key, value)
        with self._db.tx(write=True) as conn:
            settings.put(conn, key, text)

    def get_zones(self, camera_id: str) -> list[ZoneConfig] | None:
        """The camera's zones as edited on the web page; None when never edited (the config file's apply)."""
        with self._db.tx() as conn:
            return settings.get_zones(conn, camera_id)

    def set_zones(self, camera_id: str, zones: list[ZoneConfig]) -> None:
        """Replace the camera's zones; zone ids must be unique (ConflictError)."""
        text = settings.encode_zones(camera_id, zones)
        with self._db.tx(write=True) as conn:
            settings.put_zones(conn, camera_id, text)
