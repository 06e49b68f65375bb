"""The model the pipelines use for their next frame: loaded in the background, swapped by reference between frames.

Hot swap: `load_async(bundle_dir)` builds the new engine on a worker thread while the old one keeps serving;
`swap()` then replaces one reference. A pipeline reads `slot.current` once per frame, so a swap never stalls or
drops a frame, and a bundle that fails to load leaves the running model in place (and says why).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.bundle import MANIFEST, Manifest
from edge.errors import EngineError, ShelfwatchError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveModel:
    """A loaded model and what the pipeline needs to know about it."""

    model: Any  # edge.runtime.wrappers.ClassificationModel | DetectionModel
    bundle_dir: Path
    name: str
    version: str
    task: str
    labels: tuple[str, ...]
    alert_labels: tuple[str, ...]
    engine: str = "unknown"


ModelLoader = Callable[[Path], Any]
"""bundle dir -> model object (with a `.manifest` or not); edge.runtime.wrappers.load_model with settings bound."""


def read_manifest(bundle_dir: Path) -> Manifest:
    """The bundle's manifest (already verified by the repository that installed it)."""
    return Manifest.model_validate_json((bundle_dir / MANIFEST).read_bytes())


def build_active(bundle_dir: Path, loader: ModelLoader) -> ActiveModel:
    """Load the engine for a bundle directory and describe it."""
    manifest = read_manifest(bundle_dir)
    model = loader(bundle_dir)
    engine = str(getattr(getattr(model, "engine", None), "name", "unknown"))
    return ActiveModel(
        model=model,
        bundle_dir=bundle_dir,
        name=manifest.name,
        version=manifest.version,
        task=manifest.task,
        labels=tuple(manifest.labels),
        alert_labels=tuple(manifest.effective_alert_labels()),
        engine=engine,
    )


class ModelSlot:
    """Holds the current ActiveModel; thread-safe swap, background load, and reload (watchdog recovery)."""

    def __init__(self, loader: ModelLoader) -> None:
        self.loader = loader
        self._current: ActiveModel | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[ActiveModel | None, ActiveModel], None]] = []
        self.last_error: str | None = None

    @property
    def current(self) -> ActiveModel | None:
        """The model for the next frame (None before the first bundle is installed)."""
        return self._current

    def add_listener(self, callback: Callable[[ActiveModel | None, ActiveModel], None]) -> None:
        """Called with (old, new) after every swap."""
        self._listeners.append(callback)

    def swap(self, new: ActiveModel) -> None:
        """Make `new` the model of the next frame."""
        with self._lock:
            old, self._current = self._current, new
        log.info("model %s %s is active (engine %s)", new.name, new.version, new.engine)
        for cb in list(self._listeners):
            try:
                cb(old, new)
            except Exception:
                log.exception("model swap listener failed")

    def on_activated(self, manifest: Manifest, bundle_dir: Path) -> None:
        """The model repository's activation listener: load the new model, then swap it in (raises to refuse).

        Runs in the caller of activate() (start-up, a web request): the pipelines keep using the old engine until the
        new one is fully loaded, then one reference changes between two frames.
        """
        try:
            active = build_active(bundle_dir, self.loader)
        except ShelfwatchError:
            raise
        except Exception as err:
            raise EngineError(f"model {manifest.version} could not be loaded: {err}") from err
        self.swap(active)

    def load(self, bundle_dir: Path) -> ActiveModel:
        """Load a bundle synchronously and swap it in (raises when it cannot be loaded; the old model stays)."""
        try:
            active = build_active(bundle_dir, self.loader)
        except Exception as err:
            self.last_error = f"{bundle_dir.name}: {err}"
            log.error("model %s could not be loaded, keeping the running one: %s", bundle_dir, err)
            raise
        self.last_error = None
        self.swap(active)
        return active

    def load_async(self, bundle_dir: Path) -> threading.Thread:
        """Load on a background thread, then swap; the running model serves until then."""

        def work() -> None:
            try:
                self.load(bundle_dir)
            except Exception:  # already logged with the reason; the old model keeps running
                return

        t = threading.Thread(target=work, name=f"model-load-{bundle_dir.name}", daemon=True)
        t.start()
        return t

    def reload(self) -> ActiveModel | None:
        """Recreate the current model's engine from its bundle (after a hung call); None when nothing is loaded."""
        cur = self._current
        if cur is None:
            return None
        return self.load(cur.bundle_dir)
