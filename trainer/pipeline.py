"""The one training entry point: data -> model -> export -> honest evaluation -> signed bundle.

One pipeline for every task: staging, progress and cancel, export with its parity check, the manifest, the report
and signing live here; what a task means (its data, fitting, predictions and metrics) is its recipe
(`trainer.recipes`, one per task behind the `TaskRecipe` protocol).

The CLI (`shelfwatch train`) and the training service call `run_training(spec, progress, should_cancel)`. Progress
goes to one callback (the CLI draws a bar from it, the service stores it as the job status). Cancel is checked at
least once per optimisation step (and per embedding batch); nothing is written under `spec.out` until the very
end: every file is built in a staging directory beside it and `edge.bundle.write_bundle` renames the finished,
signed bundle into place, so a cancelled or failed run leaves no bundle.

Signing: `spec.signing_key` (PEM ed25519 private key), or else a key kept under `<out's parent>/keys/`
(`bundle-signing.key`, created on first use with its public half `bundle-signing.pub`; give the device that
.pub file or its base64 form as a trusted key). `TrainResult.public_key` says where it is.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edge.config.model import ZoneConfig
from edge.datasets.model import Dataset
from edge.vocabulary import DEFAULT_BACKBONE, TASKS, Task
from trainer.errors import TrainingCancelled, TrainingError

if TYPE_CHECKING:
    from edge.bundle import Manifest
    from trainer.recipes import TaskData, TaskRecipe, TrainedModel

log = logging.getLogger(__name__)

KEY_DIR = "keys"
KEY_FILE = "bundle-signing.key"
PUB_FILE = "bundle-signing.pub"


@dataclass
class TrainSpec:
    """What to train: data, task, output bundle directory and the knobs a user may turn."""

    data: Path
    fmt: str | None
    task: Task
    out: Path
    backbone: str = DEFAULT_BACKBONE
    weights: str | None = "imagenet"
    epochs: int | None = None
    seed: int = 0
    signing_key: Path | None = None
    name: str = "shelfwatch"
    input_size: int | None = None
    zones: list[ZoneConfig] | None = None
    threads: int | None = None
    int8: bool | None = None  # None: export INT8 when NNCF is installed; kept only when within 1 point
    alert_labels: list[str] | None = None
    min_per_label: int = 10
    views: int | None = None  # augmented views per training image (classification); default from the data size
    weights_cache: Path | None = None
    target_precision: float = 0.9
    fine_tune: bool | None = None  # train the trunk's last modules too; None: when every label has 100+ images
    # How the numbers are measured: auto = k-fold below 50 photos unless the dataset has its own test split.
    evaluation: Literal["auto", "kfold", "holdout"] = "auto"
    folds: int | None = None  # k of k-fold (default: the task's, fewer when a label has fewer photos)


@dataclass
class Progress:
    """One progress report: stage, overall fraction 0..1, epoch and loss while training, ETA, a sentence."""

    stage: str  # loading | training | exporting | evaluating | done
    fraction: float
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None
    message: str = ""


@dataclass
class TrainResult:
    """What a finished run produced."""

    bundle_dir: Path
    seconds: dict[str, float]
    metrics: dict[str, Any]
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    public_key: Path | None = None
    version: str = ""


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


class _Reporter:
    """Turns stage-local fractions into overall progress with an ETA, and checks for cancel."""

    # Share of the whole run each stage usually takes (embedding dominates "training").
    SPANS = {"loading": (0.0, 0.05), "training": (0.05, 0.75), "exporting": (0.75, 0.85), "evaluating": (0.85, 1.0)}

    def __init__(self, progress: ProgressCallback | None, should_cancel: CancelCheck | None) -> None:
        self.progress = progress
        self.should_cancel = should_cancel
        self.started = time.monotonic()

    def cancelled(self) -> bool:
        return bool(self.should_cancel and self.should_cancel())

    def check(self) -> None:
        if self.cancelled():
            raise TrainingCancelled("training cancelled")

    def stage(self, stage: str, lo: float = 0.0, hi: float = 1.0) -> _StageProgress:
        """Progress of one part of a stage (a recipe's fit) mapped onto [lo, hi] of that stage."""
        return _StageProgress(self, stage, lo, hi)

    def __call__(self, stage: str, local: float, message: str = "", **step: Any) -> None:
        """Report `local` (0..1) of `stage`; `step` holds a fit's `epoch`, `epochs` and `loss` (FitProgress)."""
        self.check()
        if self.progress is None:
            return
        lo, hi = self.SPANS.get(stage, (1.0, 1.0))
        fraction = min(1.0, max(0.0, lo + (hi - lo) * min(1.0, max(0.0, local))))
        elapsed = time.monotonic() - self.started
        eta = elapsed * (1.0 - fraction) / fraction if fraction > 0.02 else None
        epoch, epochs, loss = step.get("epoch"), step.get("epochs"), step.get("loss")
        self.progress(Progress(stage, fraction, epoch, epochs, loss, eta, message))


class _StageProgress:
    """A recipe's view of progress: local fractions of its part of one stage (`trainer.recipes.FitProgress`)."""

    def __init__(self, reporter: _Reporter, stage: str, lo: float, hi: float) -> None:
        self.reporter, self.stage, self.lo, self.hi = reporter, stage, lo, hi

    def __call__(self, local: float, message: str = "", **step: Any) -> None:
        share = self.lo + (self.hi - self.lo) * min(1.0, max(0.0, local))
        self.reporter(self.stage, share, message, **step)

    def cancelled(self) -> bool:
        return self.reporter.cancelled()

    def check(self) -> None:
        self.reporter.check()


def new_version() -> str:
    """A unique version per run: UTC time plus 4 random hex digits (20261121T143000Z-3f2a)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def signing_key_for(spec: TrainSpec) -> tuple[Path, Path | None]:
    """(private key, public key or None) to sign with: the given key, or the kept one beside the output."""
    if spec.signing_key is not None:
        if not Path(spec.signing_key).is_file():
            raise TrainingError(f"signing key {spec.signing_key} does not exist")
        pub = Path(spec.signing_key).with_suffix(".pub")
        return Path(spec.signing_key), pub if pub.is_file() else None
    from edge.bundle import write_keypair

    key_dir = Path(spec.out).resolve().parent / KEY_DIR
    private, public = key_dir / KEY_FILE, key_dir / PUB_FILE
    if not private.is_file():
        key_dir.mkdir(parents=True, exist_ok=True)
        write_keypair(private, public)
        log.warning("no signing key given: generated %s; trust %s on the device", private, public)
    return private, public if public.is_file() else None


def run_training(
    spec: TrainSpec,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    *,
    dataset: Dataset | None = None,
) -> TrainResult:
    """Train, export, evaluate and write a signed bundle to `spec.out` (`dataset` skips reading `spec.data`)."""
    from trainer.recipes import recipe_for

    reporter = _Reporter(progress, should_cancel)
    started = time.monotonic()
    reporter("loading", 0.0, f"reading {spec.data}")
    out = Path(spec.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").is_file())):
        raise TrainingError(f"{out} exists and is not a bundle directory; choose a new or empty --out")
    if spec.task not in TASKS:
        raise TrainingError(f"unknown task {spec.task!r}; use classification or detection")
    if spec.int8 is True:
        from trainer.export import nncf_available

        if not nncf_available():
            raise TrainingError(
                "INT8 export needs NNCF, which is not installed: pip install 'shelfwatch[int8]' (or nncf), "
                "or train without --int8"
            )
    if dataset is None:
        from trainer.data import read_any

        dataset = read_any(Path(spec.data), spec.fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        result = _run(spec, recipe_for(spec, staging), dataset, staging, reporter, started)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if progress is not None:
        progress(Progress("done", 1.0, None, None, None, 0.0, f"bundle {result.version} written to {out}"))
    return result


def _run(
    spec: TrainSpec, recipe: TaskRecipe, dataset: Dataset, staging: Path, reporter: _Reporter, started: float
) -> TrainResult:
    """prepare -> (k-fold) -> fit -> export + parity -> evaluate -> manifest, report, signature."""
    data = recipe.prepare(dataset, reporter.stage("loading"))
    warnings = data.warnings
    split = data.split
    plan = plan_evaluation(spec, recipe, data)

    cv: _CrossValidation | None = None
    test: list[int] = []
    if plan.method == "kfold":
        warnings[:] = kfold_size_warnings(warnings, plan, len(data.labels), recipe.task)
        cv = _cross_validate(spec, recipe, data, plan, reporter, staging)
        train, val = cv.train, cv.val
        fit_progress = reporter.stage("training", cv.final_from, 1.0)
    else:
        train, val, test = split.train, split.val, split.test
        data.pool = train + val
        fit_progress = reporter.stage("training")

    train_started = time.monotonic()
    model = recipe.fit(data, train, val, fit_progress)
    if model.weights_warning and model.weights_warning not in warnings:
        warnings.insert(0, model.weights_warning)
    warnings.extend(model.warnings)
    train_seconds = time.monotonic() - train_started + (cv.pool_seconds if cv else 0.0)

    export_started = time.monotonic()
    files, parity = _export(spec, recipe, data, model, test, staging, reporter)
    warnings.extend(parity["warnings"])
    export_seconds = time.monotonic() - export_started

    eval_started = time.monotonic()
    version = new_version()
    if cv is None:
        reporter("evaluating", 0.0, f"{len(test)} test samples through ONNX Runtime")
        preliminary = build_manifest(spec, recipe, data, model, files, version)
        predictions = recipe.predict_exported(staging, preliminary, data, test)
        evaluation = recipe.evaluate(data, test, predictions, model)
        evaluated, source, engine = test, split.source, "onnxruntime"
    else:
        # The folds' numbers come from torch, which the parity check above holds the exported model to (the INT8
        # gate alone exports each fold's model, `_fold_int8`).
        reporter("evaluating", 0.0, f"pooling {plan.folds} folds")
        evaluation = recipe.evaluate(data, cv.items, cv.predictions, model)
        for key, stats in cv.summary.items():
            evaluation.headline[key] = stats["mean"]
        evaluated, source, engine = cv.items, "kfold", "torch"
    summary = plan.summary(len(evaluated), cv)
    warnings.extend(evaluation.warnings)
    int8 = _int8_gate(recipe, data, model, files, staging, spec, version, evaluation, evaluated, cv)
    if int8 is not None and not int8["kept"]:
        warnings.append(int8["reason"])
    manifest = build_manifest(
        spec,
        recipe,
        data,
        model,
        files,
        version,
        score=evaluation.score_threshold,
        metrics=evaluation.headline | {"evaluation": summary},
    )
    evaluate_seconds = time.monotonic() - eval_started + (cv.seconds if cv else 0.0)

    seconds = {
        "train": round(train_seconds, 3),
        "export": round(export_seconds, 3),
        "evaluate": round(evaluate_seconds, 3),  # k-fold: with the folds' fits
    }
    report: dict[str, Any] = {
        "name": spec.name,
        "version": version,
        "task": recipe.task,
        "engine": engine,
        "labels": data.labels,
        "metrics": evaluation.metrics,
        "evaluation": summary | ({"per_fold": cv.per_fold, "out_of_fold": _out_of_fold(data, cv)} if cv else {}),
        **model.report,
        "split": recipe.split_report(data, source, train, val, evaluated),
        "parity": parity,
        **({"int8": int8} if int8 is not None else {}),
        "base": manifest.base.model_dump(),
        "dataset": manifest.dataset.model_dump(),
        "warnings": warnings,
        "seconds": seconds,  # the same dict: the returned report gets the total too, report.json does not
    }
    bundle, public = _finish(spec, staging, report, manifest, files, reporter)
    seconds["total"] = round(time.monotonic() - started, 3)
    metrics = evaluation.headline | evaluation.details | {"evaluation": summary}
    return TrainResult(bundle, seconds, metrics, report, warnings, public, version)


INT8_MAX_DROP = 0.01  # the INT8 IR ships only when its headline metric is at most 1 point below FP32's
_INT8_FILES = ("openvino/int8/model.xml", "openvino/int8/model.bin")


def _wants_int8(spec: TrainSpec) -> bool:
    """INT8 asked for (--int8), or by default (None) when NNCF is installed."""
    if spec.int8 is not None:
        return spec.int8
    from trainer.export import nncf_available

    return nncf_available()


def _int8_gate(
    recipe: TaskRecipe,
    data: TaskData,
    model: TrainedModel,
    files: dict[str, Path],
    staging: Path,
    spec: TrainSpec,
    version: str,
    evaluation: Any,
    evaluated: list[int],
    cv: _CrossValidation | None,
) -> dict[str, Any] | None:
    """Keep the INT8 IR in `files` only when its accuracy / mAP is within INT8_MAX_DROP of FP32's on images the
    quantised model never learnt from nor was calibrated on.

    Hold-out: the shipped IR and the shipped ONNX (ONNX Runtime) on the test split. K-fold (no held-out photo: the
    shipped model trained on every one): each fold's model was exported and quantised the same way, calibrated on
    that fold's training items only (`_fold_int8`), and its INT8 and FP32 scored on the fold's held-out items; the
    gate compares the pooled out-of-fold predictions, as the k-fold metrics stand in for the shipped model."""
    from edge.vocabulary import HEADLINE_METRIC

    if _INT8_FILES[0] not in files:
        return None
    metric = HEADLINE_METRIC[recipe.task]  # type: ignore[index]
    per_fold: list[dict[str, Any]] = []
    if cv is None:
        manifest = build_manifest(spec, recipe, data, model, files, version)
        fp32_eval = evaluation
        int8_eval = recipe.evaluate(
            data, evaluated, recipe.predict_exported(staging, manifest, data, evaluated, engine="openvino_int8"), model
        )
        tested, method, images = list(evaluated), "holdout", "evaluation images"
    else:
        if len(cv.int8_folds) != len(cv.per_fold):
            raise TrainingError(f"the k-fold INT8 gate quantised {len(cv.int8_folds)} of {len(cv.per_fold)} folds")
        tested = [i for fold in cv.int8_folds for i in fold.tested]
        fp32_preds = [p for fold in cv.int8_folds for p in fold.fp32]
        int8_preds = [p for fold in cv.int8_folds for p in fold.int8]
        fp32_eval = recipe.evaluate(data, tested, fp32_preds, model)
        int8_eval = recipe.evaluate(data, tested, int8_preds, model)
        for fold in cv.int8_folds:
            f32 = float(recipe.evaluate(data, fold.tested, fold.fp32, model).headline[metric])
            i8 = float(recipe.evaluate(data, fold.tested, fold.int8, model).headline[metric])
            per_fold.append(
                {
                    "fold": fold.fold,
                    "fp32": round(f32, 4),
                    "int8": round(i8, 4),
                    "tested": [_item_name(data, i) for i in fold.tested],
                    "calibrated_on": [_item_name(data, i) for i in fold.calibration],
                }
            )
        method, images = "kfold", f"out-of-fold items ({len(cv.int8_folds)} fold models, each quantised on its own)"
    fp32, got = float(fp32_eval.headline[metric]), float(int8_eval.headline[metric])
    kept = fp32 - got <= INT8_MAX_DROP + 1e-9
    reason = f"INT8 {metric} {got:.3f} vs FP32 {fp32:.3f} on the {len(tested)} {images}: " + (
        "within 1 point, shipped" if kept else "more than 1 point lower, not shipped"
    )
    if not kept:
        for rel in _INT8_FILES:
            files.pop(rel, None)
    out: dict[str, Any] = {
        "kept": kept,
        "method": method,
        "metric": metric,
        "fp32": round(fp32, 4),
        "int8": round(got, 4),
        "difference": round(got - fp32, 4),
        "max_drop": INT8_MAX_DROP,
        "images": len(tested),
        "on": "out_of_fold" if cv is not None else "evaluation",
        "reason": reason,
    }
    if cv is None:
        out["tested"] = [_item_name(data, i) for i in tested]
    else:
        out["per_fold"] = per_fold
    return out


def _item_name(data: TaskData, index: int) -> str:
    """An item's name in the report: the dataset's file name (`photo.jpg#zone` for a zone crop)."""
    item = data.items[index]
    return str(getattr(item, "name", "") or Path(str(getattr(item, "path", ""))).name)


@dataclass
class _FoldInt8:
    """One k-fold fold's INT8 check: its model exported and quantised like the shipped one, calibrated on the
    fold's training items only, and its FP32 (ONNX Runtime) and INT8 predictions on the fold's held-out items."""

    fold: int
    tested: list[int]
    calibration: list[int]
    fp32: list[Any]
    int8: list[Any]


def _calibration(recipe: TaskRecipe, data: TaskData, model: TrainedModel) -> tuple[list[int], Any]:
    """(items, input tensor) INT8 calibration uses for `model`: the first `recipe.calibration_images` of the items
    it learnt from (the shipped model's and every fold's the same way)."""
    from edge.runtime.preprocess import preprocess

    items = list(model.fit_items[: recipe.calibration_images])
    tensor, _ = preprocess([recipe.image(data, i) for i in items], model.input_spec)
    return items, tensor


def _fold_int8(
    spec: TrainSpec, recipe: TaskRecipe, data: TaskData, model: TrainedModel, fold: int, test: list[int], out: Path
) -> _FoldInt8:
    """Export one fold's model (ONNX, then INT8 by NNCF), score both on its held-out items, remove the files."""
    from trainer.export import export_onnx, export_openvino_int8

    spec_in = model.input_spec
    try:
        onnx = export_onnx(model.module, out / "model.onnx", (spec_in.height, spec_in.width), model.output_names)
        calibration, tensor = _calibration(recipe, data, model)
        overlap = set(calibration) & set(test)
        if overlap:  # cannot happen with the folds of trainer.crossval; the gate's honesty rests on it
            raise TrainingError(f"fold {fold}: INT8 calibration items {sorted(overlap)[:5]} are held-out items")
        files = {"model.onnx": onnx} | export_openvino_int8(onnx, out / "openvino", tensor)
        manifest = build_manifest(spec, recipe, data, model, files, f"int8-gate-fold-{fold}")
        fp32 = recipe.predict_exported(out, manifest, data, test)
        int8 = recipe.predict_exported(out, manifest, data, test, engine="openvino_int8")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return _FoldInt8(fold, list(test), calibration, fp32, int8)


@dataclass
class EvaluationPlan:
    """How a run's numbers are measured: on a hold-out test split, or by k-fold cross-validation."""

    method: Literal["holdout", "kfold"]
    folds: int
    photos: int
    items: int
    reason: str
    seed: int
    test_folds: list[list[int]] = field(default_factory=list)

    def summary(self, tested: int, cv: _CrossValidation | None) -> dict[str, Any]:
        """The `evaluation` entry of the manifest's metrics and of report.json (see docs/BUNDLE.md)."""
        out: dict[str, Any] = {
            "method": self.method,
            "folds": self.folds,
            "photos": self.photos,
            "items": self.items,
            "test_items": tested,
            "seed": self.seed,
            "reason": self.reason,
        }
        if cv is not None:
            out["metrics"] = cv.summary
        return out


def plan_evaluation(spec: TrainSpec, recipe: TaskRecipe, data: TaskData) -> EvaluationPlan:
    """k-fold below KFOLD_BELOW photos (unless the dataset brings its own test split), hold-out otherwise."""
    from trainer.crossval import KFOLD_BELOW, folds_for, kfold_splits, photo_count

    photos, items = photo_count(data.groups), len(data.items)

    def holdout(reason: str) -> EvaluationPlan:
        return EvaluationPlan("holdout", 1, photos, items, reason, spec.seed)

    if spec.evaluation not in ("auto", "kfold", "holdout"):
        raise TrainingError(f"unknown evaluation {spec.evaluation!r}; use auto, kfold or holdout")
    if spec.evaluation == "holdout":
        return holdout("hold-out split asked for")
    if spec.evaluation == "auto":
        if data.split.source == "dataset":
            return holdout("the dataset's own test split")
        if photos >= KFOLD_BELOW:
            return holdout(f"{photos} photos (>= {KFOLD_BELOW}): a hold-out split tests on enough of them")
    wanted = spec.folds or recipe.default_folds
    if wanted < 2:
        raise TrainingError(f"k-fold needs at least 2 folds, not {wanted}")
    k = folds_for(data.groups, data.strata, wanted)
    if k == 0:
        if spec.evaluation == "kfold":
            raise TrainingError("k-fold needs at least 2 photos of every label")
        return holdout("too few photos per label for k-fold")
    why = "asked for" if spec.evaluation == "kfold" else f"{photos} photos (< {KFOLD_BELOW})"
    reason = f"{why}: {k}-fold cross-validation by photo; the shipped model is trained on every image"
    return EvaluationPlan(
        "kfold", k, photos, items, reason, spec.seed, kfold_splits(data.groups, data.strata, k, spec.seed)
    )


def kfold_size_warnings(warnings: list[str], plan: EvaluationPlan, labels: int, task: str) -> list[str]:
    """The warnings of a k-fold run: the hold-out split's "tiny test set" does not apply (every item is tested once,
    by a fold's model that never saw it); a small k-fold estimate is said as such instead."""
    kept = [w for w in warnings if not w.startswith("tiny test set")]
    small = plan.photos < 10 if task == "detection" else plan.items < 10 * max(1, labels)
    if small:
        what = f"{plan.photos} photos" if task == "detection" else f"{plan.items} samples for {labels} labels"
        kept.append(
            f"small k-fold estimate ({plan.folds}-fold over {what}): every one is tested once by a model that "
            "never saw it, but so few make the metrics rough"
        )
    return kept


@dataclass
class _CrossValidation:
    """Out-of-fold predictions of every item, pooled, each fold's headline, and the shipped model's fit."""

    items: list[int]
    predictions: list[Any]
    per_fold: list[dict[str, Any]]
    summary: dict[str, dict[str, float]]
    train: list[int]  # the shipped model's training items (every item, validation apart where it is refitted on)
    val: list[int]
    final_from: float  # where in the training stage the shipped model's fit starts
    pool_seconds: float  # preparing every item once (training time)
    seconds: float  # the folds' fits and predictions (evaluation time)
    int8_folds: list[_FoldInt8] = field(default_factory=list)  # when INT8 is exported: every fold's INT8 check


def _out_of_fold(data: TaskData, cv: _CrossValidation) -> list[dict[str, Any]]:
    """Each image's out-of-fold prediction, for the device's deploy comparison (trainer/out_of_fold.py)."""
    from trainer.out_of_fold import out_of_fold

    return out_of_fold(data.labels, data.items, cv.items, cv.predictions)


def _cross_validate(
    spec: TrainSpec, recipe: TaskRecipe, data: TaskData, plan: EvaluationPlan, reporter: _Reporter, staging: Path
) -> _CrossValidation:
    """Fit one model per fold on the other folds (validation carved out of them), predict the fold; when INT8 is
    exported, quantise each fold's model too and score it on the fold (the INT8 gate's images, `_int8_gate`)."""
    from trainer.crossval import carve_validation, summarise_folds

    everything = list(range(len(data.items)))
    data.pool = everything
    if getattr(recipe, "validation_trains", True):
        final_train, final_val = carve_validation(everything, data.groups, data.strata, spec.seed)
    else:
        final_train, final_val = everything, []
    # Optional capability: a recipe that prepares every item once for all fits (the classification recipe embeds
    # them) does it first, counted as training; the folds' fits are then the evaluation's cost.
    prepare_pool = getattr(recipe, "prepare_pool", None)
    start, pool_seconds = 0.0, 0.0
    if prepare_pool is not None:
        pool_started = time.monotonic()
        start = 0.7
        prepare_pool(data, final_train, final_val, reporter.stage("training", 0.0, start))
        pool_seconds = time.monotonic() - pool_started
    started = time.monotonic()
    k = plan.folds
    # k fits and the shipped model's share what the pool's preparation leaves of the training stage.
    step = (1.0 - start) / (k + 1)
    spans = [(start + step * f, start + step * (f + 1)) for f in range(k + 1)]
    items: list[int] = []
    predictions: list[Any] = []
    per_fold: list[dict[str, Any]] = []
    int8_folds: list[_FoldInt8] = []
    wants_int8 = _wants_int8(spec)
    for f, test in enumerate(plan.test_folds):
        held = set(test)
        others = [i for i in range(len(data.items)) if i not in held]
        train, val = carve_validation(others, data.groups, data.strata, spec.seed + f + 1)
        lo, hi = spans[f]
        model = recipe.fit(data, train, val, reporter.stage("training", lo, hi))
        fold_predictions = recipe.predict(model, data, test)
        evaluation = recipe.evaluate(data, test, fold_predictions, model)
        row: dict[str, Any] = {
            "fold": f + 1,
            "test_items": len(test),
            "test_photos": len({data.groups[i] for i in test}),
        }
        row |= {key: evaluation.headline[key] for key in recipe.spread_metrics if key in evaluation.headline}
        row["score_threshold"] = evaluation.score_threshold
        per_fold.append(row)
        items.extend(test)
        predictions.extend(fold_predictions)
        log.info("fold %d/%d: %s", f + 1, k, row)
        if wants_int8:
            reporter("training", hi, f"fold {f + 1}/{k}: INT8 check on its {len(test)} held-out items")
            int8_folds.append(_fold_int8(spec, recipe, data, model, f + 1, test, staging / f"int8-fold-{f + 1}"))
    summary = summarise_folds(per_fold, recipe.spread_metrics)
    seconds = time.monotonic() - started
    return _CrossValidation(
        items, predictions, per_fold, summary, final_train, final_val, spans[k][0], pool_seconds, seconds, int8_folds
    )


def _export(
    spec: TrainSpec,
    recipe: TaskRecipe,
    data: TaskData,
    model: TrainedModel,
    test: list[int],
    staging: Path,
    reporter: _Reporter,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """ONNX, OpenVINO FP32 + FP16 (+ INT8), then every exported file against torch (the parity check)."""
    from edge.runtime.preprocess import preprocess
    from trainer.export import check_parity, export_onnx, export_openvino, export_openvino_int8

    spec_in = model.input_spec
    reporter("exporting", 0.0, "ONNX")
    onnx = export_onnx(model.module, staging / "model.onnx", (spec_in.height, spec_in.width), model.output_names)
    files: dict[str, Path] = {"model.onnx": onnx}
    reporter("exporting", 0.4, "OpenVINO IR FP32 + FP16")
    files.update(export_openvino(onnx, staging / "openvino"))
    if _wants_int8(spec):
        reporter("exporting", 0.6, "OpenVINO INT8 (NNCF)")
        _, calibration = _calibration(recipe, data, model)
        files.update(export_openvino_int8(onnx, staging / "openvino", calibration))
    reporter("exporting", 0.8, "parity check")
    # Parity on the evaluation images first, topped up with training images when the test split is small.
    images = [recipe.image(data, i) for i in (test + model.fit_items)[: recipe.parity_images]]
    tensor, _ = preprocess(images, spec_in)
    parity = check_parity(
        model.module,
        files,
        tensor,
        images,
        input_name=spec_in.tensor,
        output_names=model.output_names,
        rule=recipe.parity,
        header=recipe.parity_header,
        threads=spec.threads,
    )
    return files, parity


def build_manifest(
    spec: TrainSpec,
    recipe: TaskRecipe,
    data: TaskData,
    model: TrainedModel,
    files: dict[str, Path],
    version: str,
    *,
    score: float | None = None,
    metrics: dict[str, Any] | None = None,
) -> Manifest:
    """The bundle's manifest (schema 1) from the run's parts; `files` get their sha256 and size."""
    from edge.bundle import BaseInfo, Manifest, Thresholds, file_entry
    from edge.timestamps import utc_now_iso

    if score is None:
        score = model.score_threshold if model.score_threshold else 0.5
    return Manifest(
        name=spec.name,
        version=version,
        created=utc_now_iso(),
        task=recipe.task,  # type: ignore[arg-type]
        labels=data.labels,
        alert_labels=data.alert_labels,
        input=model.input_spec,
        outputs=recipe.outputs,
        thresholds=Thresholds(
            score=round(float(score), 4), **({"nms_iou": model.nms_iou} if model.nms_iou is not None else {})
        ),
        metrics=metrics or {},
        dataset=data.dataset,
        base=BaseInfo(backbone=spec.backbone, weights=model.weights_source, weights_sha256=model.weights_sha256),
        files={rel: file_entry(path) for rel, path in files.items()},
    )


def _finish(
    spec: TrainSpec,
    staging: Path,
    report: dict[str, Any],
    manifest: Manifest,
    files: dict[str, Path],
    reporter: _Reporter,
) -> tuple[Path, Path | None]:
    """Write the report (JSON, pictures, HTML) into the bundle's files, then sign and write the bundle."""
    from edge.bundle import write_bundle
    from trainer.evaluate import write_report

    files.update(write_report(staging / "report", report))
    reporter("evaluating", 0.95, "signing the bundle")
    private, public = signing_key_for(spec)
    reporter.check()  # last chance: after this the bundle is in place
    bundle = write_bundle(spec.out, manifest, files, private, overwrite=True)
    return bundle, public
