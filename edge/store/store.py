"""The dataset store: labels, images, annotations, settings and zones in SQLite; image files by content hash.

Layout under `data_dir`: `shelfwatch.db` (SQLite in WAL mode, foreign keys on, schema migrations in
`edge.store.schema`) and `images/<first 2 hex>/<sha256>.<ext>`. Files are written atomically (temp file in the same
folder, then os.replace) while the database write lock is held, so two processes sharing a data_dir (the daemon
and the CLI) never see a row without its file.

`DatasetStore` is the one public face: each method opens one transaction (`edge.store.connection`) and hands it to
the room that knows the tables: `projects`, `image_rows`, `labels`, `annotation_rows`, `splits`, `summary`,
`transfer` (import and export) and `settings` (settings and zones); input checks live in `validation`.

Projects: every label and image belongs to one project. Methods over a collection (list, summary, labels, import,
export, split) take `project` (an id, a name, or None for the default project). Methods on one image by id work on
that image wherever it is; given `project`, an image of another project is "not found".
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.config import DatasetRulesConfig, ZoneConfig
from edge.datasets.model import Box, Dataset
from edge.errors import NotFoundError, StoreError
from edge.store import annotation_rows, image_rows, projects, scratch, settings, splits, summary, transfer
from edge.store import labels as label_rows
from edge.store.connection import StoreConnection
from edge.store.images import remove_stale_temp_files, validate_image
from edge.store.projects import ProjectRecord
from edge.store.readiness import Task
from edge.store.records import Annotations, ImageRecord, LabelRecord
from edge.store.validation import check_split, iso_utc

log = logging.getLogger(__name__)

# A project as callers name it: its id, its name, or None for the default project.
ProjectRef = int | str | None

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
        if counts["restored"] or counts["orphans"] or counts["temp"]:
            log.warning(
                "%s: an interrupted write left files behind: restored %s, removed %s image files without a row and "
                "%s temp files",
                self.images_dir,
                counts["restored"],
                counts["orphans"],
                counts["temp"],
            )
        if counts["kept"]:
            log.warning(
                "%s holds %s image files that no row names (was an older %s restored?); they are kept",
                self.images_dir,
                counts["kept"],
                DB_NAME,
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

    # -- projects -------------------------------------------------------------------------------------------------

    def list_projects(self) -> list[ProjectRecord]:
        """Every project, the default first, with label and image counts."""
        with self._db.tx() as conn:
            return projects.all_projects(conn)

    def get_project(self, project: ProjectRef = None) -> ProjectRecord:
        """One project by id or name (None: the default); NotFoundError when unknown."""
        with self._db.tx() as conn:
            return projects.resolve(conn, project)

    def create_project(self, name: str, task: str, labels: Sequence[tuple[str, str]] = ()) -> ProjectRecord:
        """Create a project with its task and labels ((name, description) pairs), all or nothing.

        ConflictError when the name (case-insensitive) exists or two labels share a name; AnnotationError for a bad
        name, task or label.
        """
        with self._db.tx(write=True) as conn:
            project_id = projects.create(conn, name, task)
            for label_name, description in labels:
                label_rows.create(conn, project_id, label_name, description, None)
            record = projects.resolve(conn, project_id)
        log.info("created project %s (%s) with %s labels", record.name, record.task, record.labels)
        return record

    def set_project_task(self, project: ProjectRef, task: str | None) -> ProjectRecord:
        """Change what a project trains (None: "auto", the default project only)."""
        with self._db.tx(write=True) as conn:
            record = projects.resolve(conn, project)
            projects.set_task(conn, record, task)
            return projects.resolve(conn, record.id)

    def _pid(self, conn: sqlite3.Connection, project: ProjectRef) -> int:
        return projects.resolve(conn, project).id

    def _check_image_in(self, conn: sqlite3.Connection, image_id: int, project: ProjectRef) -> None:
        """NotFoundError when `project` is given and the image belongs to another one."""
        if project is None:
            return
        wanted = projects.resolve(conn, project)
        if projects.of_image(conn, image_id) != wanted.id:
            raise NotFoundError(f"image {image_id} does not exist in project {wanted.name!r}")

    # -- images ---------------------------------------------------------------------------------------------------

    def add_image(
        self,
        data: bytes,
        *,
        filename: str | None = None,
        camera: str | None = None,
        captured_at: datetime | None = None,
        split: str = "auto",
        project: ProjectRef = None,
    ) -> ImageRecord:
        """Validate and store one image; an exact duplicate returns the stored record with duplicate_of set."""
        return self.add_images(
            [(filename or "", data)], camera=camera, captured_at=captured_at, split=split, project=project
        )[0]

    def add_images(
        self,
        files: list[tuple[str, bytes]],
        *,
        camera: str | None = None,
        captured_at: datetime | None = None,
        split: str = "auto",
        project: ProjectRef = None,
    ) -> list[ImageRecord]:
        """Validate every file first, then store them all in one transaction (all or nothing)."""
        check_split(split)
        when = iso_utc(captured_at)
        with self._db.tx() as conn:
            project_id = self._pid(conn, project)
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
        written = image_rows.PendingFiles(self.images_dir)
        results: list[tuple[int, int | None, bool]] = []  # id, duplicate_of, exact duplicate
        try:
            with self._db.tx(write=True) as conn:
                distance = self.rules.near_duplicate_distance
                new = image_rows.NewImages(conn, project_id, self.images_dir, written, distance)
                for name, data, facts in checked:
                    found = image_rows.id_by_sha256(conn, project_id, facts.sha256)
                    if found is not None:
                        results.append((found, found, True))
                        continue
                    image_id, near = new.add(
                        data, facts, filename=name or None, camera=camera, captured_at=when, split=split
                    )
                    results.append((image_id, near, False))
        except BaseException:
            written.discard()
            raise
        finally:
            written.close()
        records = []
        for image_id, duplicate_of, exact in results:
            record = self.get_image(image_id)
            if exact:
                record.duplicate_of = duplicate_of
                log.info("image %s is identical to stored image %s; nothing new stored", record.filename, image_id)
            records.append(record)
        return records

    def get_image(self, image_id: int, *, project: ProjectRef = None) -> ImageRecord:
        """One image with its annotations; NotFoundError when unknown (or in another project than `project`)."""
        with self._db.tx() as conn:
            record = image_rows.get(conn, image_id)
            self._check_image_in(conn, image_id, project)
            return record

    def image_project(self, image_id: int) -> ProjectRecord:
        """The project an image belongs to; NotFoundError when the image is unknown."""
        with self._db.tx() as conn:
            return projects.resolve(conn, projects.of_image(conn, image_id))

    def image_path(self, image_id: int, *, project: ProjectRef = None) -> Path:
        """Where the image's file lives."""
        with self._db.tx() as conn:
            path = image_rows.file_of(conn, self.images_dir, image_id)
            self._check_image_in(conn, image_id, project)
            return path

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
        project: ProjectRef = None,
    ) -> tuple[list[ImageRecord], int]:
        """One page of the project's images matching the filters, and the total number that match."""
        with self._db.tx() as conn:
            return image_rows.page(
                conn,
                self._pid(conn, project),
                page=page,
                page_size=page_size,
                tagged=tagged,
                label=label,
                split=split,
                camera=camera,
                newest_first=newest_first,
            )

    def delete_images(self, ids: list[int], *, project: ProjectRef = None) -> int:
        """Delete images (of `project`, when given), their annotations and their files; returns how many existed."""
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return 0
        moved: list[tuple[Path, Path]] = []
        with self._db.lock:
            try:
                with self._db.tx(write=True) as conn:
                    project_id = None if project is None else self._pid(conn, project)
                    deleted = image_rows.delete(conn, self.images_dir, wanted, moved, project_id)
            except BaseException:
                for path, aside in moved:
                    aside.replace(path)
                raise
            image_rows.discard(aside for _, aside in moved)
        log.info("deleted %s images", deleted)
        return deleted

    def set_split(self, ids: list[int], split: str, *, project: ProjectRef = None) -> None:
        """Put images into a split (train, val, test, or auto to let auto_split decide)."""
        check_split(split)
        wanted = sorted({int(i) for i in ids})
        with self._db.tx(write=True) as conn:
            project_id = None if project is None else self._pid(conn, project)
            image_rows.set_split(conn, wanted, split, project_id)

    def auto_split(
        self, test_fraction: float = 0.2, seed: int = 0, *, only_auto: bool = True, project: ProjectRef = None
    ) -> dict[str, int]:
        """Assign train/test to the project's images in split 'auto' (all with only_auto=False), stratified by label."""
        splits.check_fraction(test_fraction)
        with self._db.tx(write=True) as conn:
            pid = self._pid(conn, project)
            updates = splits.assign_splits(
                splits.image_labels(conn, pid), splits.candidates(conn, pid, only_auto=only_auto), test_fraction, seed
            )
            splits.apply(conn, updates)
            counts = splits.counts(conn, pid)
        log.info("auto split assigned %s images: %s", len(updates), counts)
        return counts

    # -- annotations ----------------------------------------------------------------------------------------------

    def get_annotations(self, image_id: int, *, project: ProjectRef = None) -> Annotations:
        """The image's tags and boxes; NotFoundError when the image is unknown."""
        record = self.get_image(image_id, project=project)
        return Annotations(tags=record.tags, boxes=record.boxes, nothing_to_box=record.nothing_to_box)

    def set_annotations(
        self,
        image_id: int,
        tags: list[str],
        boxes: list[Box],
        *,
        project: ProjectRef = None,
        nothing_to_box: bool = False,
    ) -> Annotations:
        """Replace the image's tags and boxes (labels of the image's project) atomically after validating them.

        `nothing_to_box` marks a photo with nothing to box: it counts as tagged and carries no boxes."""
        with self._db.tx(write=True) as conn:
            self._check_image_in(conn, image_id, project)
            return annotation_rows.replace(conn, image_id, tags, boxes, nothing_to_box)

    # -- labels ---------------------------------------------------------------------------------------------------

    def list_labels(self, *, project: ProjectRef = None) -> list[LabelRecord]:
        """The project's labels in creation order, with their image and box counts."""
        with self._db.tx() as conn:
            return label_rows.label_records(conn, self._pid(conn, project))

    def get_label(self, name: str, *, project: ProjectRef = None) -> LabelRecord:
        """One label by name (case-insensitive); NotFoundError when unknown."""
        with self._db.tx() as conn:
            return label_rows.get(conn, self._pid(conn, project), name)

    def create_label(
        self, name: str, description: str = "", color: str | None = None, *, project: ProjectRef = None
    ) -> LabelRecord:
        """Create a label; ConflictError when the name (case-insensitive) exists in the project."""
        with self._db.tx(write=True) as conn:
            pid = self._pid(conn, project)
            label_rows.create(conn, pid, name, description, color)
            return label_rows.get(conn, pid, name.strip())

    def update_label(
        self,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
        color: str | None = None,
        project: ProjectRef = None,
    ) -> LabelRecord:
        """Rename, describe or recolour a label; its annotations follow a rename."""
        with self._db.tx(write=True) as conn:
            return label_rows.update(
                conn, self._pid(conn, project), name, new_name=new_name, description=description, color=color
            )

    def delete_label(self, name: str, *, force: bool = False, project: ProjectRef = None) -> None:
        """Delete a label; when images or boxes use it, ConflictError unless force (which removes those too)."""
        with self._db.tx(write=True) as conn:
            label = label_rows.delete(conn, self._pid(conn, project), name, force=force)
        log.info("deleted label %s (%s image tags, %s boxes)", label.name, label.images, label.boxes)

    # -- dataset --------------------------------------------------------------------------------------------------

    def default_task(self, *, project: ProjectRef = None) -> Task:
        """The task the project trains when none is chosen: its own, else detection once any box exists."""
        with self._db.tx() as conn:
            record = projects.resolve(conn, project)
            return record.task or summary.default_task(summary.box_count(conn, record.id))

    def summary(
        self, task: Task | None = None, zones: Sequence[ZoneConfig] | None = None, *, project: ProjectRef = None
    ) -> dict[str, Any]:
        """Counts per label and split, near-duplicates, and the readiness verdict with its reasons.

        Judged for `task`, else the project's task, else (the default project's "auto") detection once any box
        exists. With `zones`, a classifier is judged by the zone crops it will train on
        (`per_label[name]["crops"]`, see edge.datasets.zone_crops): one image gives one example per zone.
        """
        with self._db.tx() as conn:
            return summary.summarise(conn, projects.resolve(conn, project), self.rules, task, zones)

    def import_dataset(
        self, ds: Dataset, *, split_from_source: bool = True, project: ProjectRef = None
    ) -> dict[str, int]:
        """Add a whole dataset in one transaction after validating every image and box first (all or nothing)."""
        with self._db.tx() as conn:
            project_id = self._pid(conn, project)
        return transfer.import_dataset(
            self._db, self.images_dir, self.rules, ds, project_id=project_id, split_from_source=split_from_source
        )

    def export_dataset(self, *, only_tagged: bool = False, project: ProjectRef = None) -> Dataset:
        """The project as a Dataset: sample.path is the stored file, sample.name a unique, safe file name."""
        with self._db.tx() as conn:
            project_id = self._pid(conn, project)
        return transfer.export_dataset(self._db, self.images_dir, project_id=project_id, only_tagged=only_tagged)

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

    # -- suggestions and inbox ------------------------------------------------------------------------------------

    def assist_tx(self, write: bool = False) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One transaction for model-assisted labelling (edge.assist.room calls edge.store.assist_rows in it)."""
        return self._db.tx(write=write)
