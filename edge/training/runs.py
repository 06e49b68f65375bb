"""The records of a training round trip: what the user asked for (RunRequest) and what happened (TrainingRun)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.attributes import attributes
from edge.timestamps import utc_now_iso
from edge.vocabulary import HEADLINE_METRIC

RUN_STATES_ACTIVE = (
    "starting",
    "uploading",
    "queued",
    "training",
    "evaluating",
    "exporting",
    "downloading",
    "installing",
)
DEFAULT_DEPLOY_THRESHOLD = 0.85
# The headline a new model must reach to be activated, per task, unless the user sets one (docs/BENCHMARKS.md):
# 15-photo classifiers measure 0.92-0.97 accuracy, so 0.85 stops only a clearly worse one; 15-photo detectors
# measure mAP@0.5 0.59-0.63 (a model trained on the whole 84-photo set reaches 0.80), so 0.85 would never deploy
# one: 0.50, the detection bar of the benchmarks, deploys a useful first detector and stops a broken one.
DEFAULT_DEPLOY_THRESHOLDS: dict[str, float] = {"classification": DEFAULT_DEPLOY_THRESHOLD, "detection": 0.50}


def default_deploy_threshold(task: str) -> float:
    """The deploy threshold of `task` when the user set none."""
    return DEFAULT_DEPLOY_THRESHOLDS.get(task, DEFAULT_DEPLOY_THRESHOLD)


def manifest_name(project: Any) -> str | None:
    """A project's name as its bundles' manifest `name` (one line, no path separators, at most 64 characters);
    None for the default project, whose bundles keep the trainer's default name (`shelfwatch`)."""
    if getattr(project, "is_default", False):
        return None
    clean = "".join("-" if ch in "/\\" or not ch.isprintable() else ch for ch in str(project.name)).strip()
    return clean[:64] or None


@dataclass
class RunRequest:
    """What the user asked for: task, backbone, epochs, deploy threshold and how the dataset travels."""

    task: str
    backbone: str | None = None
    epochs: int | None = None
    seed: int | None = None
    input_size: int | None = None
    deploy_threshold: float = DEFAULT_DEPLOY_THRESHOLD
    metric: str | None = None  # headline metric compared with the threshold; default per task
    source: str = "upload"  # upload | pull
    device_url: str | None = None  # pull: the URL the trainer reaches this device at
    device_token: str | None = None  # pull: an API token of this device for the trainer
    after_dataset: Callable[[], None] | None = None  # called once the trainer holds the dataset (revoke the token)
    zones: list[dict[str, Any]] | None = None  # classification: train on these zone crops (what the pipeline crops)
    project: int | None = None  # the project whose dataset is trained (None: the default project)
    project_name: str | None = None  # the bundle's manifest `name`

    def headline_metric(self) -> str:
        """The metric compared with deploy_threshold."""
        return self.metric or HEADLINE_METRIC.get(self.task, "accuracy")

    def job_params(self) -> dict[str, Any]:
        """The trainer job's parameters besides dataset and task (None: the trainer's default)."""
        return attributes(self, "backbone", "epochs", "seed", "input_size", "zones") | {"name": self.project_name}


@dataclass
class TrainingRun:
    """One round trip: dataset -> job -> report -> bundle -> install (+ activate when good enough)."""

    id: str
    task: str
    backbone: str | None
    epochs: int | None
    deploy_threshold: float
    metric: str
    source: str
    state: str = "starting"
    created: str = ""
    updated: str = ""
    finished: str | None = None
    dataset_id: str | None = None
    job_id: str | None = None
    job_state: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    eta_seconds: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    headline: float | None = None
    version: str | None = None
    activated: bool = False
    decision: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    has_report: bool = False
    project: int | None = None  # the project trained (None in runs recorded before projects: the default)
    project_name: str | None = None
    # the new and the running version's headline metric on the same images (edge.assist.compare), when compared
    comparison: dict[str, Any] | None = None

    @property
    def in_progress(self) -> bool:
        """Whether the run is still going."""
        return self.state in RUN_STATES_ACTIVE

    def as_dict(self, active_version: str | None = None) -> dict[str, Any]:
        """JSON-friendly form (what the training API returns).

        `active` says whether this run's model is the device's active model now (`activated` only records the
        deploy decision, which a later activation or rollback overrides); `in_progress` whether the run still goes.
        """
        active = self.version is not None and self.version == active_version
        return asdict(self) | {"in_progress": self.in_progress, "active": active}


now_iso = utc_now_iso  # the time as run records write it (2026-01-31T12:00:00Z)
