"""The installed-model repository: verified bundles under `<data_dir>/models/<version>/`, one active.

Layout:

    models/<version>/        a verified bundle, renamed into place whole (never half-copied)
    models/active            the running version (one line), replaced atomically (temp file + os.replace)
    models/previous          the version that ran before it: `rollback()` goes back to it in one call
    models/.incoming-*       bundles being copied and verified (removed on failure, cleared at start-up)
    models/versions.json     each version's project and its number in that project (`v3`), beside the signed files

A version belongs to one project (the studio's projects; None: the default project) and gets the next number of
that project when it is installed, so people read `Shelf rows v3` while the version id stays the contract.

Every path into the repository verifies: `install` copies or unpacks the bundle into a private temp directory
and verifies that copy (so nothing can change between check and use), `activate` re-verifies the installed
files, and `load()` re-verifies everything at start-up: a tampered installed bundle is refused with the reason
and the repository falls back to the previous good one. A refused bundle leaves everything as it was.

Listeners registered with `on_activate(cb)` are called with (manifest, bundle_dir) whenever a model becomes the
running one (activate, rollback, and the model `load()` picks). A listener that raises (the engine cannot load the
model) undoes the activation: pointers go back, earlier listeners are called again with the old model, and the
caller gets the reason. One process owns a repository; its methods are thread-safe within that process.

`load_installed_model(bundle_dir, settings)` is how the device loads an installed version to run: the model
wrapper on the engine, threads and precision of `edge.yaml`'s `model:` (the agent's model slot, skills, the
skills benchmark and the predict API).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.bundle import Manifest, extract_archive, verify_bundle_dir
from edge.errors import BundleError, ConflictError, NotFoundError, ShelfwatchError
from edge.store.schema import DEFAULT_PROJECT_ID
from edge.timestamps import iso_utc, utc_now_iso

if TYPE_CHECKING:
    from edge.config import EdgeConfig, ModelConfig
    from edge.runtime.wrappers import ClassificationModel, DetectionModel

log = logging.getLogger(__name__)

ACTIVE_POINTER = "active"
PREVIOUS_POINTER = "previous"
VERSIONS_FILE = "versions.json"
_INCOMING = ".incoming-"
_TRASH = ".trash-"
_SAFE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")

ActivateListener = Callable[[Manifest, Path], None]


@dataclass(frozen=True)
class Refusal:
    """Why a bundle or an installed version was refused."""

    source: str
    reason: str
    at: str

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly form."""
        return {"source": self.source, "reason": self.reason, "at": self.at}


class ModelRepository:
    """Installed, verified model bundles with one active version, atomic switching and one-call rollback."""

    def __init__(self, models_dir: str | Path, trusted_keys: list[str], keep_versions: int = 5) -> None:
        self.models_dir = Path(models_dir)
        self.trusted_keys = list(trusted_keys)
        self.keep_versions = max(2, int(keep_versions))
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._listeners: list[ActivateListener] = []
        self._verified: dict[str, Manifest] = {}
        self._refused: dict[str, str] = {}  # installed version -> why it cannot run
        self._loaded = False
        self.last_refusal: Refusal | None = None

    @classmethod
    def from_config(cls, config: EdgeConfig) -> ModelRepository:
        """The repository of an edge config: <data_dir>/models, model.trusted_keys, model.keep_versions."""
        return cls(config.data_dir / "models", config.model.trusted_keys, config.model.keep_versions)

    # --- listeners ---

    def on_activate(self, callback: ActivateListener) -> None:
        """Call `callback(manifest, bundle_dir)` whenever a model becomes the running one."""
        with self._lock:
            self._listeners.append(callback)

    # --- start-up ---

    def load(self) -> Manifest | None:
        """Re-verify every installed version and settle on a good active one (falling back when it is bad)."""
        with self._lock:
            self._loaded = True
            self._clear_leftovers()
            self._verified.clear()
            self._refused.clear()
            for version in self._installed_versions():
                self._verify_installed(version)
            wanted = self._read_pointer(ACTIVE_POINTER)
            previous = self._read_pointer(PREVIOUS_POINTER)
            candidates = [v for v in (wanted, previous) if v] + [
                v for v in self._installed_versions() if v not in (wanted, previous)
            ]
            if wanted is None:
                candidates = []  # nothing was ever activated: start without a model rather than guess
            for version in candidates:
                manifest = self._verified.get(version)
                if manifest is None:
                    if version == wanted:
                        log.error(
                            "active model %s refused at start-up: %s", version, self._refused.get(version, "missing")
                        )
                    continue
                try:
                    self._notify(manifest, self.models_dir / version)
                except ShelfwatchError as err:
                    self._refuse(version, f"cannot be loaded: {err}")
                    continue
                if version != wanted:
                    log.warning("falling back to model %s (the active %s is refused)", version, wanted)
                    new_previous = previous if previous in self._verified and previous != version else None
                    self._write_pointer(PREVIOUS_POINTER, new_previous)
                    self._write_pointer(ACTIVE_POINTER, version)
                return manifest
            if wanted is not None:
                log.error("no installed model verifies; running without a model")
                self._write_pointer(ACTIVE_POINTER, None)
            return None

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    # --- queries ---

    def active_version(self) -> str | None:
        """The running version, if any."""
        with self._lock:
            self._ensure_loaded()
            version = self._read_pointer(ACTIVE_POINTER)
            return version if version in self._verified else None

    def previous_version(self) -> str | None:
        """The version `rollback()` would return to, if any."""
        with self._lock:
            self._ensure_loaded()
            version = self._read_pointer(PREVIOUS_POINTER)
            return version if version in self._verified else None

    def active(self) -> Manifest | None:
        """The running model's manifest, or None."""
        with self._lock:
            version = self.active_version()
            return self._verified.get(version) if version else None

    def active_dir(self) -> Path | None:
        """The running model's bundle directory, or None."""
        version = self.active_version()
        return self.models_dir / version if version else None

    def get(self, version: str) -> Manifest:
        """An installed, verified version's manifest."""
        with self._lock:
            self._ensure_loaded()
            _check_version_name(version)
            if version in self._refused:
                raise BundleError(f"model {version} is refused: {self._refused[version]}")
            if version not in self._verified:
                raise NotFoundError(f"model version {version!r} is not installed")
            return self._verified[version]

    def path_of(self, version: str) -> Path:
        """The bundle directory of an installed, verified version."""
        self.get(version)
        return self.models_dir / version

    def list_versions(self, project: int | None = None) -> list[dict[str, Any]]:
        """Every installed version (of `project` when given), newest install first, with its state and project.

        `project` and `number` say whose version it is and which (`v3`); untagged versions (installed before
        projects, or by the CLI or the fleet) belong to the default project.
        """
        with self._lock:
            self._ensure_loaded()
            active, previous = self._read_pointer(ACTIVE_POINTER), self._read_pointer(PREVIOUS_POINTER)
            rows: list[dict[str, Any]] = []
            for version in self._installed_versions():
                tag = self.version_tag(version)
                if project is not None and tag["project"] != project:
                    continue
                manifest = self._verified.get(version)
                installed = datetime.fromtimestamp((self.models_dir / version).stat().st_mtime, UTC)
                row: dict[str, Any] = {
                    "version": version,
                    "active": version == active and manifest is not None,
                    "previous": version == previous and manifest is not None,
                    "installed": iso_utc(installed),
                    "status": "ok" if manifest is not None else "refused",
                    "reason": self._refused.get(version),
                    **tag,
                }
                if manifest is not None:
                    row.update(
                        name=manifest.name,
                        task=manifest.task,
                        created=manifest.created,
                        labels=list(manifest.labels),
                        metrics=manifest.metrics,
                    )
                rows.append(row)
            return rows

    # --- changes ---

    def install(self, path: str | Path, activate: bool = False, project: int | None = None) -> Manifest:
        """Verify a bundle (directory or .tar.gz) and install it as models/<version>; refusing changes nothing.

        The version is tagged with `project` (None: the default project) and that project's next number.
        """
        path = Path(path)
        with self._lock:
            self._ensure_loaded()
            try:
                manifest = self._install(path)
            except ShelfwatchError as err:
                self.last_refusal = Refusal(str(path), str(err), utc_now_iso())
                log.error("bundle %s refused: %s", path, err)
                raise
            self.tag(manifest.version, project)
            if activate:
                self.activate(manifest.version)
            self.prune()
            return manifest

    def offer(self, path: str | Path) -> Manifest | None:
        """Install and activate a bundle named in the config (`model.bundle`) unless something at least as new runs.

        A version already installed is only activated when nothing is active; a bundle older than (or as old as)
        the running model is left alone, so a config that still names last month's bundle never rolls a trained
        model back. A refused bundle is logged and changes nothing. The manifest now active, or None.
        """
        from edge.bundle import inspect_bundle

        try:
            offered = inspect_bundle(path)
            if offered.version in {row["version"] for row in self.list_versions()}:
                if self.active_version() is None:
                    self.activate(offered.version)
                return self.active()
            current = self.active()
            if current is not None and current.created >= offered.created:
                log.info(
                    "model.bundle %s is not newer than the running %s; not installed", offered.version, current.version
                )
                return current
            return self.install(path, activate=True)
        except ShelfwatchError as err:
            log.error("model.bundle %s refused: %s (keeping %s)", path, err, self.active_version() or "no model")
            return self.active()

    def _install(self, path: Path) -> Manifest:
        if not path.exists():
            raise BundleError(f"{path} does not exist")
        if not self.trusted_keys:
            raise BundleError("no trusted keys configured")
        incoming = Path(tempfile.mkdtemp(prefix=_INCOMING, dir=self.models_dir))
        try:
            if path.is_dir():
                root = incoming / "bundle"
                # symlinks are copied as links so verification sees (and refuses) them
                shutil.copytree(path, root, symlinks=True)
            else:
                # The signature is checked before anything is written; only the files it lists are unpacked.
                root = extract_archive(path, incoming / "bundle", self.trusted_keys)
            manifest = verify_bundle_dir(root, self.trusted_keys)  # the copy we keep is the copy we checked
            version = manifest.version
            if not _SAFE_VERSION.match(version):
                raise BundleError(f"version {version!r} is not a safe directory name")
            final = self.models_dir / version
            if final.exists() and self._verify_installed(version) is not None:
                same = (root / "manifest.json").read_bytes() == (final / "manifest.json").read_bytes()
                if same:
                    log.info("model %s is already installed", version)
                    return self._verified[version]
                raise ConflictError(f"version {version} is already installed with different content")
            if final.exists():
                # the installed copy no longer verifies (refused at start-up): the good copy replaces it
                log.warning("replacing the refused installed copy of %s with a verified one", version)
                self._delete(version)
            os.chmod(root, 0o755)  # noqa: S103 - mkdtemp makes 0700; a bundle is public, not secret
            os.rename(root, final)
            now = time.time()
            os.utime(final, (now, now))  # install order = mtime, used for listing and pruning
            _fsync_dir(self.models_dir)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        self._verified[version] = manifest
        self._refused.pop(version, None)
        log.info("installed model %s (%s, %s) from %s", version, manifest.name, manifest.task, path)
        return manifest

    def activate(self, version: str) -> Manifest:
        """Make an installed version the running one (re-verified first); the old one becomes `previous`."""
        with self._lock:
            self._ensure_loaded()
            _check_version_name(version)
            if not (self.models_dir / version).is_dir():
                raise NotFoundError(f"model version {version!r} is not installed")
            manifest = self._verify_installed(version)
            if manifest is None:
                reason = self._refused.get(version, "verification failed")
                self.last_refusal = Refusal(version, reason, utc_now_iso())
                raise BundleError(f"model {version} is refused: {reason}")
            old_active = self._read_pointer(ACTIVE_POINTER)
            old_previous = self._read_pointer(PREVIOUS_POINTER)
            if old_active == version:
                return manifest
            self._write_pointer(PREVIOUS_POINTER, old_active if old_active in self._verified else old_previous)
            self._write_pointer(ACTIVE_POINTER, version)
            try:
                self._notify(manifest, self.models_dir / version)
            except ShelfwatchError as err:
                self._write_pointer(ACTIVE_POINTER, old_active)
                self._write_pointer(PREVIOUS_POINTER, old_previous)
                if old_active in self._verified:
                    with contextlib.suppress(ShelfwatchError):
                        self._notify(self._verified[old_active], self.models_dir / old_active)
                reason = f"model {version} cannot be activated: {err}"
                self.last_refusal = Refusal(version, reason, utc_now_iso())
                log.error("%s; still running %s", reason, old_active)
                raise BundleError(f"{reason}; still running {old_active or 'no model'}") from err
            log.info("activated model %s (previous: %s)", version, old_active)
            self.prune()
            return manifest

    def rollback(self) -> Manifest:
        """Go back to the previous active version in one call (calling it again goes forward again)."""
        with self._lock:
            previous = self.previous_version()
            if previous is None:
                raise ConflictError("no previous model version to roll back to")
            log.info("rolling back from %s to %s", self._read_pointer(ACTIVE_POINTER), previous)
            return self.activate(previous)

    def tag(self, version: str, project: int | None) -> dict[str, int]:
        """Record `version` as `project`'s (None: the default) with its next number; a tagged version keeps its tag."""
        with self._lock:
            book = self._read_versions()
            tags: dict[str, dict[str, int]] = book.setdefault("versions", {})
            if version in tags:
                return tags[version]
            pid = project if project is not None else DEFAULT_PROJECT_ID
            counters: dict[str, int] = book.setdefault("counters", {})
            number = counters.get(str(pid), 0) + 1
            counters[str(pid)] = number
            tags[version] = {"project": pid, "number": number}
            self._write_versions(book)
            return tags[version]

    def version_tag(self, version: str) -> dict[str, int]:
        """{"project", "number"} of an installed version (an untagged one is tagged as the default project's now)."""
        with self._lock:
            tag = self._read_versions().get("versions", {}).get(version)
            if isinstance(tag, dict) and {"project", "number"} <= set(tag):
                return {"project": int(tag["project"]), "number": int(tag["number"])}
            return self.tag(version, None)

    def _read_versions(self) -> dict[str, Any]:
        try:
            data = json.loads((self.models_dir / VERSIONS_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            log.error("%s is unreadable; version numbers start again", self.models_dir / VERSIONS_FILE)
            return {}
        return data if isinstance(data, dict) else {}

    def _write_versions(self, book: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".pointer-", dir=self.models_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(book, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.models_dir / VERSIONS_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self, version: str) -> None:
        """Delete an installed version that is neither active nor previous."""
        with self._lock:
            self._ensure_loaded()
            if version in (self._read_pointer(ACTIVE_POINTER), self._read_pointer(PREVIOUS_POINTER)):
                raise ConflictError(f"model {version} is active or the rollback target; activate another first")
            _check_version_name(version)
            if not (self.models_dir / version).is_dir():
                raise NotFoundError(f"model version {version!r} is not installed")
            self._delete(version)

    def prune(self) -> list[str]:
        """Remove the oldest installs beyond keep_versions, never the active or previous one; the removed."""
        with self._lock:
            protected = {self._read_pointer(ACTIVE_POINTER), self._read_pointer(PREVIOUS_POINTER)} - {None}
            versions = self._installed_versions()
            kept = [v for v in versions if v in protected]
            removed: list[str] = []
            for version in versions:  # newest first
                if version in protected:
                    continue
                if len(kept) < self.keep_versions:
                    kept.append(version)
                else:
                    self._delete(version)
                    removed.append(version)
            if removed:
                log.info("pruned model versions %s (keeping %d)", removed, self.keep_versions)
            return removed

    # --- internals ---

    def _notify(self, manifest: Manifest, bundle_dir: Path) -> None:
        for callback in list(self._listeners):
            callback(manifest, bundle_dir)

    def _verify_installed(self, version: str) -> Manifest | None:
        try:
            manifest = verify_bundle_dir(self.models_dir / version, self.trusted_keys)
            if manifest.version != version:
                raise BundleError(f"directory {version} holds version {manifest.version}")
        except ShelfwatchError as err:
            self._refuse(version, str(err))
            return None
        self._verified[version] = manifest
        self._refused.pop(version, None)
        return manifest

    def _refuse(self, version: str, reason: str) -> None:
        self._verified.pop(version, None)
        self._refused[version] = reason
        self.last_refusal = Refusal(version, reason, utc_now_iso())
        log.error("installed model %s refused: %s", version, reason)

    def _installed_versions(self) -> list[str]:
        """Version directories, newest install first."""
        dirs = [p for p in self.models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        dirs.sort(key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
        return [p.name for p in dirs]

    def _delete(self, version: str) -> None:
        trash = self.models_dir / f"{_TRASH}{version}-{os.getpid()}"
        os.rename(self.models_dir / version, trash)  # gone from view at once; the slow delete follows
        shutil.rmtree(trash, ignore_errors=True)
        self._verified.pop(version, None)
        self._refused.pop(version, None)

    def _clear_leftovers(self) -> None:
        for path in self.models_dir.iterdir():
            if path.name.startswith((_INCOMING, _TRASH)) or path.name.startswith(".pointer-"):
                log.info("removing leftover %s from an interrupted install", path.name)
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

    def _read_pointer(self, name: str) -> str | None:
        try:
            text = (self.models_dir / name).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def _write_pointer(self, name: str, version: str | None) -> None:
        target = self.models_dir / name
        if version is None:
            target.unlink(missing_ok=True)
            return
        fd, tmp = tempfile.mkstemp(prefix=".pointer-", dir=self.models_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(version + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.models_dir)


def load_installed_model(bundle_dir: str | Path, settings: ModelConfig) -> ClassificationModel | DetectionModel:
    """The model wrapper of an installed (verified) bundle directory on the engine, threads and precision `settings`
    (`edge.yaml`'s `model:`) choose; batched across callers (edge.runtime.wrappers.load_model)."""
    from edge.runtime.wrappers import load_model  # the runtime (engines, numpy) loads with the first model

    return load_model(bundle_dir, settings.engine, settings.threads, settings.precision)


def _check_version_name(version: str) -> None:
    """NotFoundError unless `version` could be an installed version's directory name (no '/', '..', dot files)."""
    if not _SAFE_VERSION.match(version):
        raise NotFoundError(f"model version {version!r} is not installed")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
