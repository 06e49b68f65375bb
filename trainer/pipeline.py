"""The one training entry point: data -> model -> export -> honest evaluation -> signed bundle.

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
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.config.model import ZoneConfig
from edge.datasets.model import Dataset
from trainer.errors import TrainingCancelled, TrainingError

log = logging.getLogger(__name__)

KEY_DIR = "keys"
KEY_FILE = "bundle-signing.key"
PUB_FILE = "bundle-signing.pub"
MAX_PARITY_IMAGES = 16


@dataclass
class TrainSpec:
    """What to train: data, task, output bundle directory and the knobs a user may turn."""

    data: Path
    fmt: str | None
    task: Literal["classification", "detection"]
    out: Path
    backbone: str = "squeezenet1_1"
    weights: str | None = "imagenet"
    epochs: int | None = None
    seed: int = 0
    signing_key: Path | None = None
    name: str = "shelfwatch"
    input_size: int | None = None
    zones: list[ZoneConfig] | None = None
    threads: int | None = None
    int8: bool = False
    alert_labels: list[str] | None = None
    min_per_label: int = 10
    views: int | None = None  # augmented views per training image (classification); default from the data size
    weights_cache: Path | None = None
    target_precision: float = 0.9
    fine_tune: bool | None = None  # train the trunk's last modules too; None: when every label has 100+ images


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

    def __call__(
        self,
        stage: str,
        local: float,
        message: str = "",
        *,
        epoch: int | None = None,
        epochs: int | None = None,
        loss: float | None = None,
    ) -> None:
        self.check()
        if self.progress is None:
            return
        lo, hi = self.SPANS.get(stage, (1.0, 1.0))
        fraction = min(1.0, max(0.0, lo + (hi - lo) * min(1.0, max(0.0, local))))
        elapsed = time.monotonic() - self.started
        eta = elapsed * (1.0 - fraction) / fraction if fraction > 0.02 else None
        self.progress(Progress(stage, fraction, epoch, epochs, loss, eta, message))


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
    from edge.bundle import generate_keypair

    key_dir = Path(spec.out).resolve().parent / KEY_DIR
    private, public = key_dir / KEY_FILE, key_dir / PUB_FILE
    if not private.is_file():
        key_dir.mkdir(parents=True, exist_ok=True)
        private_pem, public_pem = generate_keypair()
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
        public.write_bytes(public_pem)
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
    reporter = _Reporter(progress, should_cancel)
    started = time.monotonic()
    reporter("loading", 0.0, f"reading {spec.data}")
    out = Path(spec.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").is_file())):
        raise TrainingError(f"{out} exists and is not a bundle directory; choose a new or empty --out")
    if spec.int8:
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
        if spec.task == "classification":
            result = _run_classification(spec, dataset, staging, reporter, started)
        elif spec.task == "detection":
            result = _run_detection(spec, dataset, staging, reporter, started)
        else:
            raise TrainingError(f"unknown task {spec.task!r}; use classification or detection")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if progress is not None:
        progress(Progress("done", 1.0, None, None, None, 0.0, f"bundle {result.version} written to {out}"))
    return result


# ------------------------------------------------------------------------------------------- classification


def _views_for(n_train: int, requested: int | None) -> int:
    if requested:
        return max(1, requested)
    # Few images: several views each; many images: the data itself varies enough. Embedding is the cost of a run
    # (about 300 views keep a 15-per-class, 5-label run well under a minute on two cores); grocery5 measured
    # 0.96-0.97 accuracy with 4 and 10 views alike.
    return int(max(2, min(8, 300 // max(1, n_train))))


def _run_classification(
    spec: TrainSpec, dataset: Dataset, staging: Path, reporter: _Reporter, started: float
) -> TrainResult:
    import torch

    from edge.bundle import ClassificationOutputs, DatasetInfo, Manifest, Thresholds, file_entry
    from trainer.backbones import build_backbone
    from trainer.classify import (
        FINE_TUNE_MIN_PER_LABEL,
        FINE_TUNE_MODULES,
        Classifier,
        Embedder,
        embed_images,
        fine_tune_tail,
        input_spec_for,
        seed_everything,
        tail_embeddings,
        train_head,
    )
    from trainer.data import augment, classification_samples, dataset_sha256, sample_image, split_classification
    from trainer.evaluate import classification_metrics, predict_probabilities
    from trainer.export import classification_parity, export_onnx, export_openvino, export_openvino_int8

    labels, samples, warnings = classification_samples(dataset, spec.zones)
    data = split_classification(labels, samples, seed=spec.seed, min_per_label=spec.min_per_label, warnings=warnings)
    warnings = data.warnings
    alert_labels = list(spec.alert_labels or [])
    unknown = [a for a in alert_labels if a not in labels]
    if unknown:
        raise TrainingError(f"alert labels {unknown} are not among the trained labels {labels}")
    seed_everything(spec.seed, spec.threads)
    reporter("loading", 0.5, f"building {spec.backbone}")
    backbone = build_backbone(spec.backbone, spec.weights, cache_dir=spec.weights_cache)
    weights_info = backbone.weights_info
    assert weights_info is not None
    if weights_info.warning:
        warnings.insert(0, weights_info.warning)
        reporter("loading", 0.9, f"WARNING: {weights_info.warning}")  # the job status shows it while training
    input_spec = input_spec_for(spec.backbone, spec.input_size)
    embedder = Embedder(backbone).eval()
    rng = np.random.default_rng(spec.seed)
    cache: dict[Path, np.ndarray] = {}

    # --- training: embed every view once, then fit the head on the cached embeddings
    train_started = time.monotonic()
    views = _views_for(len(data.train) + len(data.val), spec.views)
    fit_samples = data.train + data.val
    images: list[np.ndarray] = []
    for s in fit_samples:
        reporter.check()
        base = sample_image(s, cache)
        images.append(base)
        images.extend(augment(base, rng) for _ in range(views - 1))
    min_train = min(data.counts("train").values())
    fine_tune = (
        spec.fine_tune
        if spec.fine_tune is not None
        else (not weights_info.random and min_train >= FINE_TUNE_MIN_PER_LABEL)
    )
    fine_tune = bool(fine_tune and data.val)
    reporter("training", 0.02, f"embedding {len(images)} views of {len(fit_samples)} images")
    total_images = len(images)
    trunk_out: np.ndarray | None = None
    tail = None
    embed_kwargs: dict[str, Any] = {
        "on_batch": lambda done: reporter(
            "training", 0.02 + 0.8 * done / total_images, f"embedded {done}/{total_images}"
        ),
        "should_cancel": reporter.cancelled,
        "threads": spec.threads,
    }
    if fine_tune:
        # Cache what the frozen part of the trunk makes of every view; the tail and head then train on it.
        trunk, tail = embedder.split(FINE_TUNE_MODULES[spec.backbone])
        trunk_out = embed_images(trunk, images, input_spec, onnx_dir=staging / "trunk", **embed_kwargs).astype(
            np.float16
        )
        embeddings = tail_embeddings(tail, trunk_out)
    else:
        embeddings = embed_images(embedder, images, input_spec, onnx_dir=staging / "embedder", **embed_kwargs)
    del images
    dim = embeddings.shape[1]
    per_sample = embeddings.reshape(len(fit_samples), views, dim)
    fit_labels = np.array([s.label for s in fit_samples], dtype=np.int64)
    n_train = len(data.train)
    train_x = per_sample[:n_train].reshape(-1, dim)
    train_y = np.repeat(fit_labels[:n_train], views)
    val_x = per_sample[n_train:, 0]  # validation judges plain images, as the device sees them
    val_y = fit_labels[n_train:]

    def on_step(done: int, total: int, loss: float) -> None:
        reporter("training", 0.82 + 0.08 * done / max(1, total), "fitting head", epoch=done, epochs=total, loss=loss)

    def fit_head(refit: bool) -> Any:
        return train_head(
            train_x,
            train_y,
            val_x,
            val_y,
            len(labels),
            seed=spec.seed,
            epochs=spec.epochs,
            refit_x=per_sample.reshape(-1, dim) if refit else None,
            refit_y=np.repeat(fit_labels, views) if refit else None,
            on_step=on_step,
            should_cancel=reporter.cancelled,
        )

    # Fine-tuning is judged on validation, so its starting head must not have seen validation (no refit).
    fit = fit_head(refit=not fine_tune)
    head = fit.head
    fine_tune_info: dict[str, Any] = {"used": False}
    if fine_tune and trunk_out is not None and tail is not None:
        shaped = trunk_out.reshape(len(fit_samples), views, *trunk_out.shape[1:])

        def on_ft_step(done: int, total: int, loss: float) -> None:
            reporter("training", 0.9 + 0.1 * done / max(1, total), "fine-tuning", epoch=done, epochs=total, loss=loss)

        ft = fine_tune_tail(
            tail,
            head,
            shaped[:n_train].reshape(-1, *trunk_out.shape[1:]),
            train_y,
            shaped[n_train:, 0],
            val_y,
            seed=spec.seed,
            on_step=on_ft_step,
            should_cancel=reporter.cancelled,
        )
        fine_tune_info = {
            "used": True,
            "modules": FINE_TUNE_MODULES[spec.backbone],
            "kept": ft.kept,
            "best_epoch": ft.best_epoch,
            "epochs_run": ft.epochs_run,
            "val_loss_frozen": ft.val_loss_before,
            "val_loss_fine_tuned": ft.val_loss_after,
        }
        if ft.kept:
            train_plain = tail_embeddings(tail, shaped[:n_train, 0])
        else:
            fit = fit_head(refit=True)  # the frozen-trunk path with its usual refit on train + validation
            head = fit.head
            train_plain = per_sample[:n_train, 0]
    else:
        train_plain = per_sample[:n_train, 0]
    model = Classifier(embedder, head).eval()
    with torch.no_grad():
        train_logits = head(torch.from_numpy(np.ascontiguousarray(train_plain))).numpy()
    train_accuracy = float((train_logits.argmax(1) == fit_labels[:n_train]).mean())
    if train_accuracy >= 0.999:
        warnings.append(
            "100% accuracy on the training images means nothing (a model can memorise 15 images); "
            "judge it by the test metrics"
        )
    train_seconds = time.monotonic() - train_started

    # --- export
    export_started = time.monotonic()
    reporter("exporting", 0.0, "ONNX")
    files: dict[str, Path] = {"model.onnx": export_onnx(model, staging / "model.onnx", input_spec.height, ["logits"])}
    reporter("exporting", 0.4, "OpenVINO IR FP32 + FP16")
    files.update(export_openvino(files["model.onnx"], staging / "openvino"))
    test_images = [sample_image(s, cache) for s in data.test]
    if spec.int8:
        reporter("exporting", 0.6, "OpenVINO INT8 (NNCF)")
        from edge.runtime.preprocess import preprocess

        calib = [sample_image(s, cache) for s in fit_samples[:300]]
        tensor, _ = preprocess(calib, input_spec)
        files.update(export_openvino_int8(files["model.onnx"], staging / "openvino", tensor))
    reporter("exporting", 0.8, "parity check")
    from edge.runtime.preprocess import preprocess

    # Parity on the evaluation images first, topped up with plain training images when the test split is small.
    parity_images = test_images[:MAX_PARITY_IMAGES]
    parity_images += [sample_image(s, cache) for s in fit_samples[: MAX_PARITY_IMAGES - len(parity_images)]]
    parity_tensor, _ = preprocess(parity_images, input_spec)
    parity = classification_parity(model, files, parity_tensor)
    warnings.extend(parity["warnings"])
    export_seconds = time.monotonic() - export_started

    # --- evaluation with the exported model through the device's runtime wrapper (ONNX Runtime)
    eval_started = time.monotonic()
    reporter("evaluating", 0.0, f"{len(test_images)} test samples through ONNX Runtime")
    version = new_version()
    counts = data.counts()
    manifest_data: dict[str, Any] = {
        "schema": 1,
        "name": spec.name,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "task": "classification",
        "labels": labels,
        "alert_labels": alert_labels,
        "input": input_spec.model_dump(),
        "outputs": ClassificationOutputs(logits="logits", activation="softmax").model_dump(),
        "thresholds": Thresholds().model_dump(),
        "metrics": {},
        "dataset": DatasetInfo(sha256=dataset_sha256(labels, fit_samples + data.test), counts=counts).model_dump(),
        "base": {
            "backbone": spec.backbone,
            "weights": weights_info.source,
            "weights_sha256": weights_info.sha256,
        },
        "files": {rel: file_entry(path).model_dump() for rel, path in files.items()},
    }
    preliminary = Manifest.model_validate(manifest_data)
    probs = predict_probabilities(
        staging, test_images, len(test_images), engine="onnxruntime", manifest=preliminary, threads=spec.threads
    )
    effective_alerts = alert_labels or preliminary.effective_alert_labels()
    metrics = classification_metrics(
        labels,
        np.array([s.label for s in data.test]),
        probs,
        alert_labels=effective_alerts,
        target_precision=spec.target_precision,
    )
    threshold = metrics["suggested_score_threshold"]
    if threshold is None:
        warnings.append(
            f"no score threshold reaches precision {spec.target_precision:.2f} on the test split; "
            "the manifest keeps 0.5: add images where the model is wrong"
        )
        threshold = 0.5
    headline = {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "test_samples": metrics["samples"],
        "train_accuracy": train_accuracy,
    }
    manifest_data["thresholds"] = Thresholds(score=round(float(threshold), 4)).model_dump()
    manifest_data["metrics"] = headline
    evaluate_seconds = time.monotonic() - eval_started

    # --- report + signed bundle
    seconds = {
        "train": round(train_seconds, 3),
        "export": round(export_seconds, 3),
        "evaluate": round(evaluate_seconds, 3),
    }
    task_report: dict[str, Any] = {
        "train_accuracy": train_accuracy,
        "training": {
            "views_per_image": views,
            "best_epoch": fit.best_epoch,
            "epochs_run": fit.epochs_run,
            "train_loss": fit.train_loss,
            "val_loss": fit.val_loss,
            "val_accuracy": fit.val_accuracy,
            "seed": spec.seed,
            "zones": [z.id for z in spec.zones] if spec.zones else None,
            "fine_tune": fine_tune_info,
        },
        "split": {
            "source": data.split_source,
            "train": data.counts("train"),
            "val": data.counts("val"),
            "test": data.counts("test"),
        },
    }
    report = _report(spec, version, "classification", labels, metrics, task_report, parity, manifest_data, warnings)
    report["seconds"] = seconds  # the same dict: the returned report gets the total too, report.json does not
    bundle, public = _finish(spec, staging, report, manifest_data, files, reporter)
    seconds["total"] = round(time.monotonic() - started, 3)
    return TrainResult(
        bundle, seconds, headline | {"per_label": metrics["per_label"]}, report, warnings, public, version
    )


def _report(
    spec: TrainSpec,
    version: str,
    task: str,
    labels: list[str],
    metrics: dict[str, Any],
    task_report: dict[str, Any],
    parity: Any,
    manifest_data: dict[str, Any],
    warnings: list[str],
) -> dict[str, Any]:
    """report.json: what every task reports around the task's own `task_report` (training, split, ...)."""
    return {
        "name": spec.name,
        "version": version,
        "task": task,
        "engine": "onnxruntime",
        "labels": labels,
        "metrics": metrics,
        **task_report,
        "parity": parity,
        "base": manifest_data["base"],
        "dataset": manifest_data["dataset"],
        "warnings": warnings,
    }


def _finish(
    spec: TrainSpec,
    staging: Path,
    report: dict[str, Any],
    manifest_data: dict[str, Any],
    files: dict[str, Path],
    reporter: _Reporter,
) -> tuple[Path, Path | None]:
    """Write the report (JSON, pictures, HTML) into the bundle's files, then sign and write the bundle."""
    from trainer.evaluate import write_report

    files.update(write_report(staging / "report", report))
    return _sign_and_write(spec, manifest_data, files, reporter)


def _sign_and_write(
    spec: TrainSpec, manifest_data: dict[str, Any], files: dict[str, Path], reporter: _Reporter
) -> tuple[Path, Path | None]:
    from edge.bundle import write_bundle

    reporter("evaluating", 0.95, "signing the bundle")
    private, public = signing_key_for(spec)
    reporter.check()  # last chance: after this the bundle is in place
    bundle = write_bundle(spec.out, manifest_data, files, private, overwrite=True)
    return bundle, public


# ------------------------------------------------------------------------------------------------ detection


def _run_detection(
    spec: TrainSpec, dataset: Dataset, staging: Path, reporter: _Reporter, started: float
) -> TrainResult:
    """Detection: the detection package trains (trainer.detection), this exports, evaluates and signs."""
    import torch

    from edge.bundle import DatasetInfo, DetectionOutputs, Manifest, Thresholds, file_entry
    from edge.runtime.preprocess import preprocess
    from trainer.data import dataset_sha256_samples, load_image, split_detection
    from trainer.detection.metrics import compare_detections, detection_metrics
    from trainer.detection.predict import predict_detections, torch_infer
    from trainer.detection.train import DetectorConfig, train_detector
    from trainer.evaluate import detection_predictions
    from trainer.export import export_onnx, export_openvino, export_openvino_int8, run_onnxruntime, run_openvino

    if spec.zones:
        raise TrainingError("zones apply to classification (zone crops); detection trains on whole photos")
    data = split_detection(dataset, seed=spec.seed, min_images=spec.min_per_label)
    warnings = data.warnings
    labels = data.labels
    alert_labels = list(spec.alert_labels or [])
    unknown = [a for a in alert_labels if a not in labels]
    if unknown:
        raise TrainingError(f"alert labels {unknown} are not among the trained labels {labels}")
    if spec.threads:
        torch.set_num_threads(spec.threads)
    cfg = DetectorConfig(seed=spec.seed)
    if spec.epochs:
        cfg.epochs = spec.epochs
    if spec.input_size:
        cfg.input_size = spec.input_size
    if spec.views:
        cfg.views = spec.views
    input_spec = cfg.input_spec()

    def on_progress(fraction: float, epoch: int, epochs: int, loss: float, phase: str) -> None:
        reporter(
            "training",
            fraction,
            phase,
            epoch=epoch or None,
            epochs=epochs,
            loss=None if loss != loss else loss,  # NaN while features are cached
        )

    train_started = time.monotonic()
    reporter("training", 0.0, f"training a detector on {len(data.train)} photos")
    detector, info = train_detector(
        data.train, data.val, labels, spec.backbone, spec.weights, cfg, on_progress, reporter.cancelled
    )
    weights_info = getattr(detector, "weights_info", None)
    if weights_info is not None and weights_info.warning:
        warnings.insert(0, weights_info.warning)
        reporter("training", 0.0, f"WARNING: {weights_info.warning}")
    train_seconds = time.monotonic() - train_started

    export_started = time.monotonic()
    reporter("exporting", 0.0, "ONNX")
    files: dict[str, Path] = {
        "model.onnx": export_onnx(detector, staging / "model.onnx", cfg.input_size, ["boxes", "scores"])
    }
    reporter("exporting", 0.4, "OpenVINO IR FP32 + FP16")
    files.update(export_openvino(files["model.onnx"], staging / "openvino"))
    test_paths = [s.path for s in data.test]
    parity_images = [load_image(p) for p in (test_paths + [s.path for s in data.train])[:8]]
    tensor, _ = preprocess(parity_images, input_spec)
    if spec.int8:
        reporter("exporting", 0.6, "OpenVINO INT8 (NNCF)")
        calib, _ = preprocess([load_image(s.path) for s in data.train[:100]], input_spec)
        files.update(export_openvino_int8(files["model.onnx"], staging / "openvino", calib))
    reporter("exporting", 0.8, "parity check")
    with torch.no_grad():
        ref_boxes, ref_scores = (t.numpy() for t in detector(torch.from_numpy(tensor)))
    parity: dict[str, Any] = {"images": len(parity_images), "warnings": []}
    reference = predict_detections(torch_infer(detector), parity_images, input_spec, labels)
    engines: dict[str, Any] = {"onnxruntime": lambda t: run_onnxruntime(files["model.onnx"], t)}
    for name, rel in (("openvino", "openvino/model.xml"), ("openvino_fp16", "openvino/fp16/model.xml")):
        engines[name] = lambda t, p=files[rel]: run_openvino(p, t)
    if "openvino/int8/model.xml" in files:
        engines["openvino_int8"] = lambda t: run_openvino(files["openvino/int8/model.xml"], t)
    failures = []
    for name, run in engines.items():
        outputs = run(tensor)
        boxes, scores = outputs[0], outputs[1]

        def infer(t: np.ndarray, r: Any = run) -> tuple[np.ndarray, np.ndarray]:
            out = r(t)
            return out[0], out[1]

        agreement = float(
            compare_detections(reference, predict_detections(infer, parity_images, input_spec, labels))["agreement"]
        )
        diff_boxes = float(np.max(np.abs(boxes - ref_boxes)))
        diff_scores = float(np.max(np.abs(scores - ref_scores)))
        parity[name] = {
            "max_abs_diff_boxes": diff_boxes,
            "max_abs_diff_scores": diff_scores,
            "detection_agreement": agreement,
        }
        exact = name in ("onnxruntime", "openvino")
        if exact and (diff_boxes > 1e-3 or diff_scores > 1e-3):
            failures.append(f"{name}: {parity[name]}")
        elif not exact and agreement < 0.8:
            parity["warnings"].append(f"{name}: detection agreement {agreement:.2f} < 0.8")
    parity["passed"] = not failures
    if failures:
        raise TrainingError("exported detector disagrees with the trained one: " + "; ".join(failures))
    warnings.extend(parity["warnings"])
    export_seconds = time.monotonic() - export_started

    eval_started = time.monotonic()
    reporter("evaluating", 0.0, f"{len(test_paths)} test photos through ONNX Runtime")
    version = new_version()
    counts = data.box_counts()
    val_threshold = info.get("score_threshold")
    manifest_data: dict[str, Any] = {
        "schema": 1,
        "name": spec.name,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "task": "detection",
        "labels": labels,
        "alert_labels": alert_labels,
        "input": input_spec.model_dump(),
        "outputs": DetectionOutputs().model_dump(),
        "thresholds": Thresholds(score=round(float(val_threshold), 4) if val_threshold else 0.5).model_dump(),
        "metrics": {},
        "dataset": DatasetInfo(
            sha256=dataset_sha256_samples(data.train + data.val + data.test), counts=counts
        ).model_dump(),
        "base": {
            "backbone": spec.backbone,
            "weights": weights_info.source if weights_info else str(spec.weights),
            "weights_sha256": weights_info.sha256 if weights_info else None,
        },
        "files": {rel: file_entry(path).model_dump() for rel, path in files.items()},
    }
    preliminary = Manifest.model_validate(manifest_data)
    predictions = detection_predictions(staging, preliminary, test_paths, engine="onnxruntime", threads=spec.threads)
    metrics = detection_metrics(
        predictions,
        [s.boxes for s in data.test],
        labels,
        score_threshold=float(val_threshold) if val_threshold else None,
        target_precision=spec.target_precision,
    )
    manifest_data["thresholds"]["score"] = round(float(metrics["score_threshold"]), 4)
    headline = {k: metrics[k] for k in ("map50", "map50_95", "precision", "recall", "f1")}
    headline["test_images"] = metrics["images"]
    manifest_data["metrics"] = headline
    evaluate_seconds = time.monotonic() - eval_started
    seconds = {
        "train": round(train_seconds, 3),
        "export": round(export_seconds, 3),
        "evaluate": round(evaluate_seconds, 3),
    }
    task_report: dict[str, Any] = {
        "training": {k: v for k, v in info.items() if k != "seconds"} | {"seed": spec.seed},
        "split": {
            "source": data.split_source,
            "train_images": len(data.train),
            "val_images": len(data.val),
            "test_images": len(data.test),
            "train_boxes": data.box_counts("train"),
            "test_boxes": data.box_counts("test"),
        },
    }
    report = _report(spec, version, "detection", labels, metrics, task_report, parity, manifest_data, warnings)
    report["seconds"] = seconds  # the same dict: the returned report gets the total too, report.json does not
    bundle, public = _finish(spec, staging, report, manifest_data, files, reporter)
    seconds["total"] = round(time.monotonic() - started, 3)
    return TrainResult(bundle, seconds, headline, report, warnings, public, version)
