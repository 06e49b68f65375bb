"""Projects -> the model their skills run: the project's active version, loaded once, hot-swapped on activation.

A skill names a project (`project: shelf-gaps`); `ProjectModels.get(name)` answers the running model of that
project, shared by every skill and camera that uses it. Each project has its own active version, independent of
the others': activating a version of one project changes the model of the skills naming that project only. The
cameras without skills run the model slot's version (the device's active one, as before projects had skills):
`camera_activation` keeps a skill project's activation out of the slot, and `camera_version` says what the slot
runs at start when the device's last activation was a skill project's.

Which version is a project's (`version_of`): the device's active version when it belongs to the project (the
repository keeps one device-wide `active`: the last activation anywhere, the CLI's and the fleet's included),
else the last version activated in that project while the agent ran (`pointers`,
`<data_dir>/skills/active-versions.json`, written on every activation), else the project's newest verified
version. The answer is looked up again at most every `refresh_seconds` and at once after any activation
(`on_activated` is a repository listener); a new version is loaded on a background thread while the old one keeps
serving, then swapped between two frames. A project that does not exist or has no version makes its skills idle
with the reason (`why_idle`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.bundle import Manifest
from edge.errors import NotFoundError
from edge.pipeline.model_slot import ActiveModel, ModelLoader, build_active
from edge.store.schema import DEFAULT_PROJECT_ID

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    model: ActiveModel | None = None
    version: str | None = None
    reason: str | None = None
    checked_at: float = -1e9
    loading: str | None = None


@dataclass(eq=False)
class ProjectModels:
    """The model source of the skills (edge.skills.context.ModelSource) over the repository and the store."""

    repository: Any
    store: Any
    loader: ModelLoader
    refresh_seconds: float = 2.0
    pointers: Path | None = None
    _entries: dict[str, _Entry] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

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
        """Repository listener: the version becomes its project's (and only its project's) active version; every
        project is looked up again before the next frame."""
        self.remember(str(self.project_of(manifest.version)), manifest.version)
        with self._lock:
            for entry in self._entries.values():
                entry.checked_at = -1e9

    def version_of(self, project_id: int) -> str | None:
        """The project's active version (see the module docstring), or None when it has none."""
        repo = self.repository
        rows = [r for r in repo.list_versions(project=project_id) if r.get("status") == "ok"]
        ok = {str(r["version"]) for r in rows}
        active = [str(r["version"]) for r in rows if r.get("active")]
        remembered = self.remembered(str(project_id))
        if not active and remembered in ok:
            active = [str(remembered)]
        chosen = active or [str(r["version"]) for r in rows]
        return chosen[0] if chosen else None

    def project_of(self, version: str) -> int:
        """The project an installed version belongs to (the default project for an untagged one)."""
        try:
            return int(self.repository.version_tag(version)["project"])
        except (AttributeError, KeyError, TypeError, ValueError):
            return DEFAULT_PROJECT_ID

    def _read_pointers(self) -> dict[str, str]:
        if self.pointers is None:
            return {}
        try:
            raw = json.loads(self.pointers.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as err:
            log.error("%s is unreadable, projects fall back to the device's active version: %s", self.pointers, err)
            return {}
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def project_ids(self, names: set[str]) -> set[int]:
        """The ids of the projects with these names that exist."""
        ids = set()
        for name in names:
            try:
                ids.add(int(self.store.get_project(name).id))
            except NotFoundError:
                continue
        return ids

    def remembered(self, key: str) -> str | None:
        """The version last activated for a pointer key (a project id, or CAMERAS)."""
        return self._read_pointers().get(key)

    def remember(self, key: str, version: str) -> None:
        """Keep the version activated for a pointer key (a project id, or CAMERAS)."""
        if self.pointers is None:
            return
        with self._lock:
            book = self._read_pointers()
            book[key] = version
            self.pointers.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.pointers.with_suffix(".tmp")
            tmp.write_text(json.dumps(book, indent=1, sort_keys=True), encoding="utf-8")
            tmp.replace(self.pointers)

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
        return self.version_of(int(self.store.get_project(project).id))


CAMERAS = "cameras"  # the pointer of the version the cameras without skills run (the model slot's)


def camera_activation(
    models: ProjectModels, slot_listener: Callable[[Manifest, Path], None], skill_projects: Callable[[], set[str]]
) -> Callable[[Manifest, Path], None]:
    """A repository listener for the model slot (what the cameras without skills run): it passes on every
    activation except those of a version of a project that a skill names, which runs in those skills alone."""

    def on_activated(manifest: Manifest, bundle_dir: Path) -> None:
        if models.project_of(manifest.version) in models.project_ids(skill_projects()):
            log.info("model %s is a skill project's: the cameras without skills keep theirs", manifest.version)
            return
        slot_listener(manifest, bundle_dir)
        models.remember(CAMERAS, manifest.version)

    return on_activated


def camera_version(models: ProjectModels, skill_projects: set[str]) -> str | None:
    """The version the cameras without skills run: the device's active one unless a skill's project owns it, else
    the one they ran last (None: leave the slot as it is)."""
    skill_ids = models.project_ids(skill_projects)
    active = models.repository.active_version()
    if active is not None and models.project_of(active) not in skill_ids:
        return str(active)
    last = models.remembered(CAMERAS)
    ok = {str(r["version"]) for r in models.repository.list_versions() if r.get("status") == "ok"}
    return last if last in ok and models.project_of(str(last)) not in skill_ids else None
