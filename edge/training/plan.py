"""What a training run trains on (task, zones) and whether the dataset is ready for exactly that.

One plan serves every caller: the review page shows its readiness, the Train button and `shelfwatch edge train`
refuse through `require_ready()` with the same reasons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from edge.errors import ConflictError, NotFoundError
from edge.training.runs import RunRequest

if TYPE_CHECKING:
    from edge.config import CameraConfig, EdgeConfig
    from edge.store import DatasetStore
    from edge.store.readiness import Task


class DatasetNotReady(ConflictError):
    """The dataset does not meet the readiness rules of the task it would train (the web answers 409)."""


@dataclass(frozen=True)
class TrainingPlan:
    """The task, the zones a classifier is trained on (None: whole images) and the readiness judged for them."""

    task: str
    zones: list[dict[str, Any]] | None
    summary: dict[str, Any]

    @property
    def ready(self) -> bool:
        """Whether the dataset meets the task's readiness rules."""
        return bool(self.summary.get("ready"))

    def require_ready(self) -> TrainingPlan:
        """This plan, or DatasetNotReady with the readiness problems."""
        if not self.ready:
            problems = "; ".join(self.summary.get("problems") or []) or "the dataset is not ready"
            raise DatasetNotReady(f"the dataset is not ready for {self.task}: {problems}")
        return self

    def request(self, **options: Any) -> RunRequest:
        """The RunRequest that trains this plan's task on its zones, with the user's options (backbone, epochs, ...)."""
        return RunRequest(task=self.task, zones=self.zones, **options)


def training_zones(
    config: EdgeConfig, store: DatasetStore, task: str, camera: str | None = None
) -> list[dict[str, Any]] | None:
    """The zones a classifier should be trained on, so training crops exactly what the pipeline will classify.

    Detection trains on whole photos (None). For classification: the zones of `camera` (the web page's zones override
    edge.yaml's), or, when no camera is named, the one zone layout the enabled cameras have; several cameras with
    different layouts must be told apart with `camera`. No zones anywhere: whole images (None).
    """
    if task != "classification":
        return None

    def zones_of(cam: CameraConfig) -> list[dict[str, Any]]:
        edited = store.get_zones(cam.id)
        zones = edited if edited is not None else cam.zones
        return [z.model_dump(mode="json") for z in zones]

    cameras = [c for c in config.cameras if c.enabled]
    if camera is not None:
        chosen = next((c for c in config.cameras if c.id == camera), None)
        if chosen is None:
            raise NotFoundError(f"no camera {camera!r} on this device")
        return zones_of(chosen) or None
    layouts: dict[str, list[dict[str, Any]]] = {}
    for cam in cameras:
        zones = zones_of(cam)
        if zones:
            layouts.setdefault(json.dumps(zones, sort_keys=True), zones)
    if len(layouts) > 1:
        raise ConflictError(
            "the cameras have different zones: name the camera whose zones the classifier is trained on "
            f"({', '.join(c.id for c in cameras)})"
        )
    return next(iter(layouts.values()), None)


def _auto_task(config: EdgeConfig, store: DatasetStore, project: int | str | None) -> str:
    """The task of "auto": the project's own; for the default project without one, classification when the cameras
    have zones (the pipeline classifies zones: boxes drawn over them label the zone crops), else the store's rule
    (detection once any box exists)."""
    record = store.get_project(project)
    if record.task:
        return record.task
    if any(store.get_zones(c.id) or c.zones for c in config.cameras if c.enabled):
        return "classification"
    return store.default_task(project=record.id)


def training_plan(
    config: EdgeConfig,
    store: DatasetStore,
    task: str | None,
    *,
    camera: str | None = None,
    use_zones: bool = True,
    strict: bool = True,
    project: int | str | None = None,
) -> TrainingPlan:
    """What a training run would train on, and the readiness verdict judged for exactly that.

    `task` None: the store's default. With `strict` False (the review page), cameras with different zone layouts are
    judged by whole images instead of raising ConflictError.
    """
    from edge.config import ZoneConfig

    resolved = task or _auto_task(config, store, project)
    try:
        zones = training_zones(config, store, resolved, camera) if use_zones else None
    except ConflictError:
        if strict:
            raise
        zones = None
    summary = store.summary(
        cast("Task", resolved), [ZoneConfig.model_validate(z) for z in zones] if zones else None, project=project
    )
    return TrainingPlan(resolved, zones, summary)
