"""Task recipes: what differs between training a classifier and a detector, behind one small protocol.

The pipeline (`trainer.pipeline.run_training`) owns everything both tasks share: staging, progress and cancel,
choosing the evaluation method (hold-out or k-fold, `trainer.crossval`), ONNX / OpenVINO export, the parity check
(`trainer.export.check_parity`), the manifest (`edge.bundle.Manifest`), the report and signing. A recipe owns the
task's meaning:

- `prepare(dataset, progress)` turns a dataset into `TaskData`: labels, items (samples or zone crops), the photo
  group and stratum of every item (copies of one photo share a group and are never on both sides of a split), the
  hold-out split, the manifest's `dataset` entry;
- `fit(data, train, val, progress)` trains on items (indices into `data.items`) and returns a `TrainedModel` whose
  `module` is what gets exported (image tensor in, the manifest's output tensors out);
- `predict(model, data, items)` runs a trained model in torch (the folds of k-fold; only the INT8 gate exports them),
  `predict_exported(bundle_dir, manifest, data, items)` runs the exported model through the device's runtime;
- `evaluate(data, items, predictions, model)` gives the report's metrics, the manifest's `metrics` (headline) and
  score threshold;
- `parity(...)` compares one exported model's outputs with torch's (the pipeline runs every exported file through
  `edge.runtime`'s engines).

A recipe instance serves one run (`recipe_for(spec, scratch)`): it may cache what every fit reuses (the
classification recipe embeds each image's views once and fits a head per fold on the cached embeddings).

Optional capabilities, read with `getattr` by the pipeline's k-fold (trainer/crossval.py):

- `prepare_pool(data, train, val, progress)`: prepare every item of `data.pool` once before the folds' fits
  (`train` / `val`: the shipped model's), counted as training time;
- `validation_trains` (default True): whether a fit learns from its validation items too (the classification head
  is refitted on train + validation); when False (detection: validation only picks the score threshold) the
  shipped model of a k-fold run fits on every item with no validation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edge.bundle import ClassificationOutputs, DatasetInfo, DetectionOutputs, InputSpec, Manifest
from trainer.errors import TrainingError

if TYPE_CHECKING:
    from torch import nn

    from edge.datasets.model import Dataset
    from trainer.pipeline import TrainSpec


class FitProgress(Protocol):
    """Progress inside one fit: a local fraction 0..1 and a sentence; raises TrainingCancelled on cancel."""

    def __call__(
        self,
        local: float,
        message: str = "",
        *,
        epoch: int | None = None,
        epochs: int | None = None,
        loss: float | None = None,
    ) -> None: ...

    def cancelled(self) -> bool:
        """Whether the run was cancelled (for loops that check without reporting)."""
        ...

    def check(self) -> None:
        """Raise TrainingCancelled when the run was cancelled."""
        ...


@dataclass
class HoldoutSplit:
    """The hold-out split as indices into `TaskData.items`, and where it came from (dataset or stratified)."""

    train: list[int]
    val: list[int]
    test: list[int]
    source: str


@dataclass
class TaskData:
    """A dataset as one task sees it: items with their photo group and stratum, and the hold-out split."""

    labels: list[str]
    items: list[Any]
    groups: list[str]  # items of one photo (copies, zone crops) share a group
    strata: list[int]  # label index used to stratify splits (an item's label, a photo's main box label)
    split: HoldoutSplit
    dataset: DatasetInfo
    alert_labels: list[str]
    warnings: list[str] = field(default_factory=list)
    # Every item any fit of the run trains on (hold-out: train + val; k-fold: all), set by the pipeline before
    # the first fit: a recipe may prepare them all at once (the classification recipe embeds them).
    pool: list[int] = field(default_factory=list)


@dataclass
class TrainedModel:
    """One fit's result: the exportable module and what the report and manifest say about it."""

    module: nn.Module  # image tensor [N, 3, H, W] -> the output tensors, in `output_names` order
    input_spec: InputSpec
    output_names: list[str]
    fit_items: list[int]  # the items it learnt from, in order (calibration and parity images come from these)
    weights_source: str
    weights_sha256: str | None
    report: dict[str, Any]  # report.json entries of this task (training, train_accuracy, ...)
    score_threshold: float | None = None  # chosen on validation by the fit itself (detection)
    nms_iou: float | None = None  # the decode's per-class NMS IoU (detection; the manifest's thresholds.nms_iou)
    weights_warning: str | None = None  # e.g. random initialisation: the run's first warning
    warnings: list[str] = field(default_factory=list)


@dataclass
class Evaluation:
    """Metrics of predictions on some items: the report's `metrics`, the manifest's, the score threshold."""

    metrics: dict[str, Any]
    headline: dict[str, Any]  # the manifest's `metrics` (the device reads the task's headline metric from it)
    score_threshold: float
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # what the run's result adds to the headline (per_label)


Outputs = dict[str, np.ndarray]
Infer = Callable[[np.ndarray], Outputs]


class TaskRecipe(Protocol):
    """What the pipeline asks of a task (see the module docstring)."""

    task: str
    outputs: ClassificationOutputs | DetectionOutputs
    default_folds: int  # k of k-fold when a dataset is small
    spread_metrics: tuple[str, ...]  # headline metrics whose mean and spread over folds k-fold reports
    parity_images: int  # images the parity check runs
    calibration_images: int  # images INT8 calibration uses
    parity_header: dict[str, Any]  # fields the parity report starts with besides `images` (tolerances)

    def prepare(self, dataset: Dataset, progress: FitProgress) -> TaskData:
        """Items, groups, hold-out split and the manifest's dataset entry; TrainingError when unusable."""
        ...

    def fit(self, data: TaskData, train: list[int], val: list[int], progress: FitProgress) -> TrainedModel:
        """Train on `train`, validate on `val` (early stopping, thresholds)."""
        ...

    def image(self, data: TaskData, item: int) -> np.ndarray:
        """The BGR pixels of one item, as the device would see them."""
        ...

    def predict(self, model: TrainedModel, data: TaskData, items: Sequence[int]) -> list[Any]:
        """One prediction per item from the torch model (the folds of k-fold)."""
        ...

    def predict_exported(
        self, bundle_dir: Path, manifest: Manifest, data: TaskData, items: Sequence[int], engine: str = "onnxruntime"
    ) -> list[Any]:
        """One prediction per item from the exported model through the device's runtime (ONNX Runtime, or `engine`:
        a registered engine kind such as openvino_int8)."""
        ...

    def evaluate(self, data: TaskData, items: Sequence[int], predictions: list[Any], model: TrainedModel) -> Evaluation:
        """Metrics, headline and score threshold of predictions on items."""
        ...

    def split_report(self, data: TaskData, source: str, train: list[int], val: list[int], test: list[int]) -> dict:
        """report.json's `split`."""
        ...

    def parity(
        self, engine: str, reference: Infer, exported: Infer, tensor: np.ndarray, images: list[np.ndarray]
    ) -> tuple[dict[str, Any], str | None, str | None]:
        """(statistics, failure, warning) of one exported model against torch; a failure stops the run."""
        ...


def recipe_for(spec: TrainSpec, scratch: Path) -> TaskRecipe:
    """The recipe of `spec.task` for one run; `scratch` is a directory it may write temporary files to."""
    if spec.task == "classification":
        from trainer.recipes.classification import ClassificationRecipe

        return ClassificationRecipe(spec, scratch)
    if spec.task == "detection":
        from trainer.recipes.detection import DetectionRecipe

        return DetectionRecipe(spec, scratch)
    raise TrainingError(f"unknown task {spec.task!r}; use classification or detection")


def check_alert_labels(alert_labels: Sequence[str] | None, labels: list[str]) -> list[str]:
    """The requested alert labels, refused when one is not a trained label."""
    alerts = list(alert_labels or [])
    unknown = [a for a in alerts if a not in labels]
    if unknown:
        raise TrainingError(f"alert labels {unknown} are not among the trained labels {labels}")
    return alerts
