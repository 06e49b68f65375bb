"""Projects -> the model their skills run: the project's active version, loaded once, hot-swapped on activation.

A skill names a project (`project: shelf-gaps`); `ProjectModels.get(name)` answers the running model of that
project, shared by every skill and camera that uses it. Which version runs: the repository's per-project active
version when it offers one (`active_version(project=id)`), else the device's active version when it belongs to
the project, else the project's newest verified version. The answer is looked up again at most every
`refresh_seconds` and at once after any activation (`on_activated` is a repository listener); a new version is
loaded on a background thread while the old one keeps serving, then swapped between two frames. A project that
does not exist or has no version makes its skills idle with the reason (`why_idle`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from edge.bundle import Manifest
from edge.errors import NotFoundError
from edge.pipeline.model_slot import ActiveModel, ModelLoader, build_active

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    model: ActiveModel | None = None
    version: str | None = None
    reason: str | None = None
    checked_at: float = -1e9
    loading: str | None = None


class ProjectModels:
    """The model source of the skills (edge.skills.context.ModelSource) over the repository and the store."""

    def __init__(self, repository: Any, store: Any, loader: ModelLoader, refresh_seconds: float = 2.0) -> None:
        self.repository = repository
        self.store = store
        self.loader = loader
        self.refresh_seconds = refresh_seconds
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, project: str) -> ActiveModel | None:
        """The project's running model, or None (see why_idle)."""
        with self._lock:
            entry = self._entries.setdefault(project, _Entry())
            due = time.monotonic() - entry.checked_at >= self.refresh_seconds
            if due:
                entry.checked_at = time.monotonic()
        if due:
            self._refresh(project, entry)
        return entry.model

    def why_idle(self, project: str) -> str:
        """Why the project has no running model."""
        entry = self._entries.get(project)
        if entry is not None and entry.reason:
            return entry.reason
        if entry is not None and entry.loading:
            return f"project {project!r}: version {entry.loading} is loading"
        return f"project {project!r} has no active model version"

    def on_activated(self, manifest: Manifest, bundle_dir: Any) -> None:
        """Repository listener: look every project up again before the next frame."""
        with self._lock:
            for entry in self._entries.values():
                entry.checked_at = -1e9

    def status(self) -> dict[str, Any]:
        """Per project: the running version or why there is none."""
        with self._lock:
            return {
                name: {"version": e.version if e.model else None, "idle": e.reason if e.model is None else None}
                for name, e in self._entries.items()
            }

    def _refresh(self, project: str, entry: _Entry) -> None:
        try:
            version = self._active_version(project)
        except NotFoundError:
            entry.model, entry.version = None, None
            entry.reason = f"project {project!r} does not exist (create it in the studio)"
            return
        except Exception as err:  # the store or the repository is unreadable now: keep what runs
            log.warning("skills: looking up project %s failed: %s", project, err)
            return
        if version is None:
            entry.model, entry.version = None, None
            entry.reason = f"project {project!r} has no active model version (train or activate one)"
            return
        if version == entry.version or version == entry.loading:
            return
        entry.loading = version
        first = entry.model is None
        t = threading.Thread(target=self._load, args=(project, entry, version), name=f"skill-model-{project}")
        t.daemon = True
        t.start()
        if first:
            t.join()  # nothing runs yet: the first frame waits for the model instead of skipping

    def _load(self, project: str, entry: _Entry, version: str) -> None:
        try:
            active = build_active(self.repository.path_of(version), self.loader)
        except Exception as err:
            log.error("skills: project %s version %s could not be loaded: %s", project, version, err)
            entry.reason = None if entry.model is not None else f"project {project!r}: version {version}: {err}"
            entry.loading = None
            return
        entry.model, entry.version, entry.reason, entry.loading = active, version, None, None
        log.info("skills: project %s runs %s %s (engine %s)", project, active.name, version, active.engine)

    def _active_version(self, project: str) -> str | None:
        record = self.store.get_project(project)
        repo = self.repository
        try:
            per_project = repo.active_version(project=record.id)  # the repository's own per-project pointer
        except TypeError:
            per_project = None
        else:
            return per_project
        try:
            rows = repo.list_versions(project=record.id)
        except TypeError:
            rows = repo.list_versions()
        ok = [r for r in rows if r.get("status") == "ok"]
        active = [r for r in ok if r.get("active")]
        chosen = (active or ok)[:1]
        return str(chosen[0]["version"]) if chosen else None
