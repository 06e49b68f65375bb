"""The detection recipe: the detection package trains (trainer.detection); this says what the pipeline needs.

Items are whole photos with boxes (zones do not apply). The validation photos of a fit only choose its score
threshold (the best F1 on them); they are not trained on.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.bundle import ClassificationOutputs, DatasetInfo, DetectionOutputs, Manifest
from edge.vocabulary import TASK_METRICS
from trainer.errors import TrainingError
from trainer.recipes import Evaluation, FitProgress, HoldoutSplit, Infer, TaskData, TrainedModel, check_alert_labels

if TYPE_CHECKING:
    from edge.datasets.model import Dataset
    from trainer.detection.views import ViewCache
    from trainer.pipeline import TrainSpec

# From this many photos the detector also fine-tunes the trunk's stride-16 stage (`deep_fine_tune`): on all 84
# empty_shelf photos (5-fold by photo, median of 3 seeds) it gives 0.913 / 0.556 mAP@0.5 / mAP@0.5:0.95 against
# 0.822 / 0.468 for training the last module alone, for about 7x the CPU; below it a run keeps the one-module
# recipe that trains 15 photos in about a minute (docs/TRAINING.md, "What the detection recipe was chosen from").
DEEP_FINE_TUNE_PHOTOS = 50
EXACT_TOLERANCE = 1e-3  # FP32 engines: max |difference| of boxes and scores
REDUCED_AGREEMENT_MIN = 0.8  # FP16 / INT8: share of detections both find


class DetectionRecipe:
    """Object detection on whole photos (see the module docstring)."""

    task = "detection"
    # The trunk's stride-16 map (manifest outputs.feature_map) feeds the studio's per-box similarity to drawn boxes.
    outputs: ClassificationOutputs | DetectionOutputs = DetectionOutputs(feature_map="features")
    default_folds = 3  # every fold trains a detector: a minute or two each on two cores
    spread_metrics = TASK_METRICS["detection"]
    parity_images = 8
    calibration_images = 100
    parity_header: dict[str, Any] = {}
    validation_trains = False  # validation photos only pick the score threshold

    def __init__(self, spec: TrainSpec, scratch: Path) -> None:
        from trainer.detection.train import DetectorConfig

        self.spec = spec
        self.scratch = scratch
        self._labels: list[str] = []
        self.cfg = DetectorConfig(seed=spec.seed, backbone=spec.backbone)
        self._views: ViewCache | None = None  # k-fold: every photo's views, shared by the folds and the final fit
        if spec.epochs:  # asked for: that many epochs, however many steps they take
            self.cfg.epochs, self.cfg.max_steps = spec.epochs, None
        if spec.input_size:
            self.cfg.input_size = spec.input_size
        if spec.views:
            self.cfg.views = spec.views

    def prepare(self, dataset: Dataset, progress: FitProgress) -> TaskData:
        """Photos with boxes, grouped (copies of one photo together) and stratified by their main box label."""
        from trainer.data import dataset_sha256_samples, detection_stratum, group_key, split_detection

        spec = self.spec
        if spec.zones:
            raise TrainingError("zones apply to classification (zone crops); detection trains on whole photos")
        split = split_detection(dataset, seed=spec.seed, min_images=spec.min_per_label)
        labels = split.labels
        self._labels = labels
        alert_labels = check_alert_labels(spec.alert_labels, labels)
        if spec.threads:
            import torch

            torch.set_num_threads(spec.threads)
        items = split.train + split.val + split.test
        groups = [group_key(s.name) for s in items]
        # Photos a fit may learn from: a test split the dataset brings is never trained on.
        trainable = {g for g, s in zip(groups, items, strict=True) if s.split != "test"}
        deep = spec.fine_tune if spec.fine_tune is not None else len(trainable) >= DEEP_FINE_TUNE_PHOTOS
        if deep:
            from trainer.detection.train import deep_fine_tune

            deep_fine_tune(self.cfg)
            if spec.views:  # asked for: it wins over the deep recipe's views too
                self.cfg.views = spec.views
        index = {name: k for k, name in enumerate(labels)}
        n_train, n_fit = len(split.train), len(split.train) + len(split.val)
        return TaskData(
            labels=labels,
            items=items,
            groups=groups,
            strata=[detection_stratum(s, index) for s in items],
            split=HoldoutSplit(
                list(range(n_train)), list(range(n_train, n_fit)), list(range(n_fit, len(items))), split.split_source
            ),
            dataset=DatasetInfo(sha256=dataset_sha256_samples(items), counts=split.box_counts()),
            alert_labels=alert_labels,
            warnings=split.warnings,
        )

    def image(self, data: TaskData, item: int) -> np.ndarray:
        """The photo's pixels."""
        from trainer.data import load_image

        return load_image(data.items[item].path)

    def split_report(
        self, data: TaskData, source: str, train: list[int], val: list[int], test: list[int]
    ) -> dict[str, Any]:
        """Photos on each side and boxes per label in train and test."""

        def boxes(items: list[int]) -> dict[str, int]:
            counter = Counter(b.label for i in items for b in data.items[i].boxes)
            return {lab: counter.get(lab, 0) for lab in data.labels}

        return {
            "source": source,
            "train_images": len(train),
            "val_images": len(val),
            "test_images": len(test),
            "train_boxes": boxes(train),
            "test_boxes": boxes(test),
        }

    def prepare_pool(self, data: TaskData, train: list[int], val: list[int], progress: FitProgress) -> None:
        """k-fold: run every photo's views through the frozen trunk once; each fold and the shipped model then train
        on their photos' cached views, and the folds predict their test photos from the cache too."""
        from trainer.detection.train import build_detector
        from trainer.detection.views import ViewCache, views_for

        spec, cfg = self.spec, self.cfg
        items = [data.items[i] for i in sorted(set(train) | set(val))]
        views = views_for(len(items), cfg)
        self._views = ViewCache(ViewCache.key_for(spec.backbone, spec.weights, cfg), list(data.labels), views)
        progress(0.0, f"caching {views} views of {len(items)} photos")
        detector = build_detector(spec.backbone, spec.weights, len(data.labels), cfg)

        def tick(done: int) -> None:
            progress.check()
            progress(done / len(items), f"features of {done}/{len(items)} photos")

        self._views.fill(detector, items, cfg, views, tick)

    def fit(self, data: TaskData, train: list[int], val: list[int], progress: FitProgress) -> TrainedModel:
        """Train a detector on the train photos; the validation photos choose its score threshold."""
        from trainer.detection.train import train_detector

        spec = self.spec

        def on_progress(fraction: float, epoch: int, epochs: int, loss: float, phase: str) -> None:
            loss_or_none = None if math.isnan(loss) else loss  # NaN while features are cached
            progress(fraction, phase, epoch=epoch or None, epochs=epochs, loss=loss_or_none)

        progress(0.0, f"training a detector on {len(train)} photos")
        detector, info = train_detector(
            [data.items[i] for i in train],
            [data.items[i] for i in val],
            data.labels,
            spec.backbone,
            spec.weights,
            self.cfg,
            on_progress,
            progress.cancelled,
            self._views,
        )
        weights = getattr(detector, "weights_info", None)
        if weights is not None and weights.warning:
            progress(1.0, f"WARNING: {weights.warning}")
        threshold = info.get("score_threshold")
        detector.export_features = True  # type: ignore[assignment]
        return TrainedModel(
            module=detector,
            input_spec=self.cfg.input_spec(),
            output_names=["boxes", "scores", "features"],
            fit_items=list(train),
            weights_source=weights.source if weights is not None else str(spec.weights),
            weights_sha256=weights.sha256 if weights is not None else None,
            weights_warning=weights.warning if weights is not None else None,
            report={"training": {k: v for k, v in info.items() if k != "seconds"} | {"seed": spec.seed}},
            score_threshold=float(threshold) if threshold else None,
            nms_iou=self.cfg.nms_iou,
        )

    def predict(self, model: TrainedModel, data: TaskData, items: Sequence[int]) -> list[Any]:
        """Detections per photo from the torch model, decoded as the device decodes them (k-fold: its trained part on
        the photos' cached trunk features)."""
        from trainer.detection.predict import predict_detections, torch_infer

        samples = [data.items[i] for i in items]
        if self._views is not None and all(str(s.path) in self._views.photos for s in samples):
            return self._views.predict(model.module, samples, nms_iou=self.cfg.nms_iou)  # type: ignore[arg-type]
        return predict_detections(
            torch_infer(model.module),
            [data.items[i].path for i in items],
            model.input_spec,
            data.labels,
            nms_iou=self.cfg.nms_iou,
        )

    def predict_exported(
        self, bundle_dir: Path, manifest: Manifest, data: TaskData, items: Sequence[int], engine: str = "onnxruntime"
    ) -> list[Any]:
        """Detections per photo from the exported model through the device's wrapper (ONNX Runtime)."""
        from trainer.evaluate import detection_predictions

        paths = [data.items[i].path for i in items]
        return detection_predictions(bundle_dir, manifest, paths, engine=engine, threads=self.spec.threads)

    def evaluate(self, data: TaskData, items: Sequence[int], predictions: list[Any], model: TrainedModel) -> Evaluation:
        """mAP, and precision / recall / F1 at the fit's validation threshold (the best F1 here without one)."""
        from trainer.detection.metrics import detection_metrics

        metrics = detection_metrics(
            predictions,
            [data.items[i].boxes for i in items],
            data.labels,
            score_threshold=model.score_threshold,
            target_precision=self.spec.target_precision,
        )
        metrics["mistakes"] = detection_mistakes(data, items, predictions, float(metrics["score_threshold"]))
        headline: dict[str, Any] = {k: metrics[k] for k in ("map50", "map50_95", "precision", "recall", "f1")}
        headline["test_images"] = metrics["images"]
        return Evaluation(metrics, headline, float(metrics["score_threshold"]))

    def parity(
        self, engine: str, reference: Infer, exported: Infer, tensor: np.ndarray, images: list[np.ndarray]
    ) -> tuple[dict[str, Any], str | None, str | None]:
        """Raw boxes and scores against torch (FP32 within tolerance) and the share of detections both find."""
        from trainer.detection.metrics import compare_detections
        from trainer.detection.predict import predict_detections

        ref, out = reference(tensor), exported(tensor)
        spec = self.cfg.input_spec()

        def decoded(infer: Infer) -> list[Any]:
            def pair(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                outputs = infer(t)
                return outputs["boxes"], outputs["scores"]

            return predict_detections(pair, images, spec, self._labels, nms_iou=self.cfg.nms_iou)

        agreement = float(compare_detections(decoded(reference), decoded(exported))["agreement"])
        stats = {
            "max_abs_diff_boxes": float(np.max(np.abs(out["boxes"] - ref["boxes"]))),
            "max_abs_diff_scores": float(np.max(np.abs(out["scores"] - ref["scores"]))),
            "detection_agreement": agreement,
        }
        if engine in ("onnxruntime", "openvino"):
            exact = stats["max_abs_diff_boxes"] <= EXACT_TOLERANCE and stats["max_abs_diff_scores"] <= EXACT_TOLERANCE
            return stats, None if exact else f"{engine}: {stats}", None
        if agreement < REDUCED_AGREEMENT_MIN:
            return stats, None, f"{engine}: detection agreement {agreement:.2f} < {REDUCED_AGREEMENT_MIN}"
        return stats, None, None


MAX_MISTAKES = 60  # the device's mistakes gallery shows at most this many


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detection_mistakes(
    data: TaskData, items: Sequence[int], predictions: list[Any], score_threshold: float, iou: float = 0.5
) -> list[dict[str, Any]]:
    """The evaluated photos with false boxes (detections at the score threshold that match no box of their label at
    `iou`) or missed boxes (boxes no such detection matches), most mistakes first, normalised 0..1 (issue 11)."""
    out = []
    for row, item_index in enumerate(items):
        item = data.items[item_index]
        truth = [(b.label, (b.x1, b.y1, b.x2, b.y2)) for b in item.boxes]
        found = sorted((d for d in predictions[row] if d.score >= score_threshold), key=lambda d: -d.score)
        matched: set[int] = set()
        false_boxes = []
        for det in found:
            best, best_iou = None, iou
            for k, (label, box) in enumerate(truth):
                overlap = _iou(det.bbox, box)
                if k not in matched and label == det.label and overlap >= best_iou:
                    best, best_iou = k, overlap
            if best is None:
                x1, y1, x2, y2 = (round(float(v), 4) for v in det.bbox)
                false_boxes.append(
                    {"label": det.label, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "score": round(float(det.score), 4)}
                )
            else:
                matched.add(best)
        missed = [
            {"label": label, **dict(zip(("x1", "y1", "x2", "y2"), (round(float(v), 4) for v in box), strict=True))}
            for k, (label, box) in enumerate(truth)
            if k not in matched
        ]
        if false_boxes or missed:
            name = str(getattr(item, "name", "") or Path(str(getattr(item, "path", ""))).name)
            out.append({"image": name, "false_boxes": false_boxes, "missed_boxes": missed})
    out.sort(key=lambda m: -(len(m["false_boxes"]) + len(m["missed_boxes"])))
    return out[:MAX_MISTAKES]
