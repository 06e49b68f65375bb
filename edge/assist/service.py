"""The assistant: which model suggests for a project, background suggestions for new images, bulk jobs.

A project "has an active version" when the version the device runs (ModelRepository.active_version) is tagged with
that project. Its model is the one the pipelines use (the model slot) when the slot runs that version, else the
bundle loaded here once per version through edge.runtime (never torch).

New images: `wake()` (called after every successful write request, and by the inbox writer) makes the worker
thread suggest for every image added since it last looked, off the request thread. `start_bulk(project)` runs
"suggest for all untagged" as a job whose progress `job(project)` reports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.assist import room
from edge.assist.suggest import suggest
from edge.errors import ConflictError, ShelfwatchError, StoreError
from edge.timestamps import utc_now_iso

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from edge.model_repository import ModelRepository
    from edge.pipeline.model_slot import ModelSlot
    from edge.store import DatasetStore

log = logging.getLogger(__name__)

BATCH = 8
IDLE_WAIT_S = 5.0  # the worker also looks this often (frames the inbox keeps, CLI imports)


@dataclass(frozen=True)
class ActiveVersion:
    """The version suggesting for a project, its number (v3) and default accept threshold."""

    project: int
    version: str
    number: int
    threshold: float
    task: str


@dataclass
class BulkJob:
    """One "suggest for all untagged" run."""

    id: int
    project: int
    version: str
    state: str = "running"  # running, done, failed
    total: int = 0
    done: int = 0
    error: str | None = None
    started: str = field(default_factory=utc_now_iso)
    finished: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The job's API shape."""
        return asdict(self)


class Assistant:
    """Suggestions for one device's store, from its active model."""

    def __init__(
        self,
        store: DatasetStore,
        models: ModelRepository | None,
        *,
        slot: ModelSlot | None = None,
        config: EdgeConfig | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.models = models
        self.slot = slot
        self.config = config
        self.stopping = stopping or threading.Event()
        self._lock = threading.Lock()
        self._loaded: tuple[str, Any] | None = None
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._watermark = room.newest_image_id(store)
        self._jobs: dict[int, BulkJob] = {}
        self._next_job = 1
        self.on_suggested: list[Callable[[int], None]] = []

    # -- the model ---------------------------------------------------------------------------------------------

    def active_for(self, project: int) -> ActiveVersion | None:
        """The project's active version, or None when the device runs none of its versions."""
        if self.models is None:
            return None
        version = self.models.active_version()
        if version is None:
            return None
        tag = self.models.version_tag(version)
        if tag["project"] != project:
            return None
        manifest = self.models.get(version)
        return ActiveVersion(project, version, tag["number"], manifest.thresholds.score, manifest.task)

    def model(self, version: str) -> Any:
        """The runtime wrapper of an installed version (the slot's when it runs that version)."""
        if self.slot is not None and self.slot.current is not None and self.slot.current.version == version:
            return self.slot.current.model
        with self._lock:
            if self._loaded is None or self._loaded[0] != version:
                from edge.runtime.wrappers import load_model

                assert self.models is not None
                settings = self.config.model if self.config is not None else None
                model = load_model(
                    Path(self.models.path_of(version)),
                    settings.engine if settings else "auto",
                    settings.threads if settings else None,
                    settings.precision if settings else "fp32",
                    batch_budget_ms=None,
                )
                self._loaded = (version, model)
            return self._loaded[1]

    def suggest_ids(self, ids: list[int], active: ActiveVersion, progress: Callable[[int], None] | None = None) -> int:
        """Compute and keep suggestions for these images with the active version; returns how many were stored."""
        model = self.model(active.version)
        stored = 0
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            pixels: list[tuple[int, np.ndarray]] = []
            for image_id in chunk:
                try:
                    pixels.append((image_id, room.photo(self.store, image_id)))
                except (OSError, ShelfwatchError) as err:  # deleted meanwhile, or unreadable: skip it
                    log.warning("no suggestion for image %s: %s", image_id, err)
            for (image_id, _), suggestion in zip(pixels, suggest(model, [p for _, p in pixels]), strict=True):
                try:
                    room.save(self.store, image_id, suggestion)
                    stored += 1
                except StoreError as err:
                    log.warning("suggestion for image %s not kept: %s", image_id, err)
            if progress is not None:
                progress(len(chunk))
            for callback in list(self.on_suggested):
                for image_id, _ in pixels:
                    callback(image_id)
        return stored

    # -- new images --------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for new images now (starts the worker thread on first use)."""
        self._wake.set()
        self.ensure_running()

    @property
    def running(self) -> bool:
        """Whether the worker thread runs."""
        return self._worker is not None and self._worker.is_alive()

    def ensure_running(self) -> None:
        """Start the worker thread unless it runs."""
        if self.running:
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="assist-suggest", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self._wake.wait(IDLE_WAIT_S)
            self._wake.clear()
            if self.stopping.is_set():
                return
            try:
                self.suggest_new()
            except StoreError as err:  # the store was closed: this app is gone
                log.debug("assistant stops: %s", err)
                return
            except Exception:
                log.exception("suggestions for new images failed")

    def mark_seen(self) -> None:
        """Every image stored so far counts as seen (added while no version was active)."""
        self._watermark = max(self._watermark, room.newest_image_id(self.store))

    def suggest_new(self) -> int:
        """Suggest for every image added since the last look, for projects whose version is active."""
        newest = room.newest_image_id(self.store)
        if newest <= self._watermark:
            return 0
        after, self._watermark = self._watermark, newest
        done = 0
        for project in self.store.list_projects():
            active = self.active_for(project.id)
            if active is None:
                continue
            ids = [i for i in room.pending(self.store, project.id, active.version, after_id=after) if i <= newest]
            if ids:
                done += self.suggest_ids(ids, active)
                log.info("suggested for %s new images of project %s with %s", len(ids), project.name, active.version)
        return done

    # -- bulk --------------------------------------------------------------------------------------------------

    def start_bulk(self, project: int) -> BulkJob:
        """Start "suggest for all untagged" for a project (ConflictError when one runs or no version is active)."""
        active = self.active_for(project)
        if active is None:
            raise ConflictError("this project has no active model version to suggest with")
        with self._lock:
            running = self.job(project)
            if running is not None and running.state == "running":
                raise ConflictError(f"suggest for all untagged is already running (job {running.id})")
            job = BulkJob(self._next_job, project, active.version)
            self._next_job += 1
            self._jobs[project] = job
        ids = room.pending(self.store, project, active.version, untagged=True)
        job.total = len(ids)

        def run() -> None:
            def progress(n: int) -> None:
                job.done += n

            try:
                self.suggest_ids(ids, active, progress)
                job.state = "done"
            except Exception as err:
                log.exception("suggest for all untagged failed")
                job.state, job.error = "failed", str(err)
            job.finished = utc_now_iso()

        threading.Thread(target=run, name=f"assist-bulk-{job.id}", daemon=True).start()
        return job

    def job(self, project: int) -> BulkJob | None:
        """The project's latest bulk job."""
        return self._jobs.get(project)
