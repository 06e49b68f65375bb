"""Model wrappers: a bundle's meaning around an engine. Each owns preprocess -> infer -> postprocess exactly as
the manifest says and returns typed results; engines stay ignorant of labels and images.

`load_model(bundle_dir)` reads the manifest and builds the right wrapper. It does NOT verify the signature: the
repository (edge.model_repository) verifies a bundle before it is installed and again when it is loaded at start-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import ClassificationOutputs, DetectionOutputs, Manifest, read_manifest
from edge.errors import EngineError, ImageError
from edge.runtime.batching import DEFAULT_BUDGET_MS, BatchingEngine
from edge.runtime.engines import Engine, EngineChoice, Precision, create_engine
from edge.runtime.postprocess import Detection, decode_detections, softmax
from edge.runtime.preprocess import PreprocessBuffers, preprocess

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 16


@dataclass
class Timing:
    """Milliseconds spent in each stage of the last predict call (summed over its batches)."""

    preprocess_ms: float = 0.0
    infer_ms: float = 0.0
    postprocess_ms: float = 0.0
    images: int = 0

    @property
    def total_ms(self) -> float:
        """All three stages together."""
        return self.preprocess_ms + self.infer_ms + self.postprocess_ms

    def as_dict(self) -> dict[str, float]:
        """JSON-friendly form."""
        return {
            "preprocess_ms": round(self.preprocess_ms, 3),
            "infer_ms": round(self.infer_ms, 3),
            "postprocess_ms": round(self.postprocess_ms, 3),
            "total_ms": round(self.total_ms, 3),
            "images": self.images,
        }


@dataclass(frozen=True)
class ClassificationResult:
    """Top label, its score and every label's score (the Predict API's shape)."""

    label: str
    score: float
    label_scores: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """`{"label", "score", "label_scores"}`."""
        return {"label": self.label, "score": self.score, "label_scores": dict(self.label_scores)}


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Check an image is a non-empty uint8 array and make it 3-channel BGR (grey and BGRA are converted)."""
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise ImageError("image is empty or not an array")
    if image.dtype != np.uint8:
        raise ImageError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    raise ImageError(f"image must be H x W x 3 BGR, got shape {image.shape}")


class _BundleModel:
    """What both wrappers share: the manifest, the engine, batching and timing."""

    def __init__(self, bundle_dir: Path, manifest: Manifest, engine: Engine, max_batch: int = DEFAULT_MAX_BATCH):
        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest
        self.engine = engine
        self.max_batch = max(1, max_batch)
        self.timing = Timing()
        self._fixed_batch: int | None = None
        # Each calling thread's resized images and tensor, reused from its previous call (edge.runtime.preprocess).
        self._buffers = PreprocessBuffers()
        if manifest.input.tensor not in engine.input_names:
            raise EngineError(
                f"bundle {manifest.version}: input tensor {manifest.input.tensor!r} is not in the model "
                f"(it has {engine.input_names})"
            )
        missing = [name for name in self._output_tensors() if name not in engine.output_names]
        if missing:
            raise EngineError(
                f"bundle {manifest.version}: output tensor(s) {missing} are not in the model "
                f"(it has {engine.output_names})"
            )
        self._check_input_shape()

    def _check_input_shape(self) -> None:
        """Refuse a model whose fixed input size contradicts the manifest; batch one at a time if batch is fixed."""
        shapes = getattr(self.engine, "input_shapes", None)
        shape = shapes.get(self.manifest.input.tensor) if isinstance(shapes, dict) else None
        if shape is None:
            return
        spec = self.manifest.input
        if len(shape) != 4:
            raise EngineError(f"bundle {self.version}: model input has {len(shape)} dims, the contract says 4 (NCHW)")
        expected = (3, spec.height, spec.width)
        for axis, (have, want) in enumerate(zip(shape[1:], expected, strict=True), start=1):
            if have is not None and have != want:
                raise EngineError(
                    f"bundle {self.version}: model input is {list(shape)}, the manifest says "
                    f"[N, 3, {spec.height}, {spec.width}] (axis {axis} differs)"
                )
        if shape[0] is not None:
            log.warning("bundle %s has a fixed batch of %d (the contract says dynamic)", self.version, shape[0])
            self.max_batch = self._fixed_batch = shape[0]

    @property
    def labels(self) -> list[str]:
        """The bundle's labels, in output order."""
        return list(self.manifest.labels)

    @property
    def version(self) -> str:
        """The bundle version this model runs."""
        return self.manifest.version

    @property
    def task(self) -> str:
        """classification or detection."""
        return self.manifest.task

    def describe(self) -> dict[str, Any]:
        """Version, task, engine and precision, for status pages and logs."""
        return {
            "version": self.version,
            "name": self.manifest.name,
            "task": self.task,
            "labels": self.labels,
            "engine": self.engine.name,
            "precision": self.engine.precision,
            "input": [self.manifest.input.width, self.manifest.input.height],
        }

    def _output_tensors(self) -> list[str]:
        raise NotImplementedError

    def _run_batches(self, images: Sequence[np.ndarray]) -> list[tuple[dict[str, np.ndarray], list[Any]]]:
        """Preprocess and infer in chunks of max_batch; resets and fills `timing` (postprocess is the caller's)."""
        timing = Timing(images=len(images))
        chunks = []
        for start in range(0, len(images), self.max_batch):
            t0 = time.perf_counter()
            batch = [as_bgr(im) for im in images[start : start + self.max_batch]]
            # Into this thread's arrays of its last call: the engine is done with them once infer() returned.
            tensor, placements = preprocess(batch, self.manifest.input, self._buffers)
            real = tensor.shape[0]
            if self._fixed_batch is not None and real < self._fixed_batch:
                # pad a short last chunk by repeating its last image; the padded rows are dropped below
                pad = np.repeat(tensor[-1:], self._fixed_batch - real, axis=0)
                tensor = np.concatenate([tensor, pad])
            t1 = time.perf_counter()
            outputs = self.engine.infer({self.manifest.input.tensor: tensor})
            if tensor.shape[0] != real:
                outputs = {name: value[:real] for name, value in outputs.items()}
            t2 = time.perf_counter()
            timing.preprocess_ms += (t1 - t0) * 1000.0
            timing.infer_ms += (t2 - t1) * 1000.0
            chunks.append((outputs, placements))
        self.timing = timing
        return chunks


class ClassificationModel(_BundleModel):
    """Whole images or crops -> label, score and per-label scores."""

    def _output_tensors(self) -> list[str]:
        return [self._outputs.logits]

    @property
    def _outputs(self) -> ClassificationOutputs:
        assert isinstance(self.manifest.outputs, ClassificationOutputs)
        return self.manifest.outputs

    def predict(self, image_bgr: np.ndarray) -> ClassificationResult:
        """Classify one BGR image."""
        return self.predict_batch([image_bgr])[0]

    def predict_batch(self, images_bgr: Sequence[np.ndarray]) -> list[ClassificationResult]:
        """Classify several BGR images (any sizes), batched through the engine."""
        if not images_bgr:
            return []
        chunks = self._run_batches(images_bgr)
        t0 = time.perf_counter()
        results: list[ClassificationResult] = []
        for outputs, _ in chunks:
            probs = self.probabilities(outputs[self._outputs.logits])
            results.extend(self._result(row) for row in probs)
        self.timing.postprocess_ms = (time.perf_counter() - t0) * 1000.0
        return results

    def predict_crops(
        self, image_bgr: np.ndarray, rects: Sequence[tuple[float, float, float, float]]
    ) -> list[ClassificationResult]:
        """Classify regions of one image, batched; rects are normalised x1, y1, x2, y2 (clipped to the image)."""
        image = as_bgr(image_bgr)
        return self.predict_batch([crop(image, rect) for rect in rects])

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Raw output [N, C] -> probabilities [N, C] as the manifest's activation says."""
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim != 2 or logits.shape[1] != len(self.manifest.labels):
            raise EngineError(
                f"bundle {self.version}: logits have shape {logits.shape}, expected [N, {len(self.manifest.labels)}]"
            )
        return softmax(logits, axis=1) if self._outputs.activation == "softmax" else logits

    def _result(self, probs: np.ndarray) -> ClassificationResult:
        top = int(np.argmax(probs))
        scores = {label: float(p) for label, p in zip(self.manifest.labels, probs, strict=True)}
        return ClassificationResult(self.manifest.labels[top], float(probs[top]), scores)


class DetectionModel(_BundleModel):
    """Images -> detections after thresholding, per-class NMS and undoing the letterbox."""

    def _output_tensors(self) -> list[str]:
        return [self._outputs.boxes, self._outputs.scores]

    @property
    def _outputs(self) -> DetectionOutputs:
        assert isinstance(self.manifest.outputs, DetectionOutputs)
        return self.manifest.outputs

    def predict(self, image_bgr: np.ndarray, score_threshold: float | None = None) -> list[Detection]:
        """Detect in one BGR image; boxes are normalised to that image."""
        return self.predict_batch([image_bgr], score_threshold)[0]

    def predict_batch(
        self, images_bgr: Sequence[np.ndarray], score_threshold: float | None = None
    ) -> list[list[Detection]]:
        """Detect in several images; `score_threshold` overrides the manifest's (evaluation wants low ones)."""
        if not images_bgr:
            return []
        threshold = self.manifest.thresholds.score if score_threshold is None else score_threshold
        chunks = self._run_batches(images_bgr)
        t0 = time.perf_counter()
        results: list[list[Detection]] = []
        n_labels = len(self.manifest.labels)
        for outputs, placements in chunks:
            boxes = np.asarray(outputs[self._outputs.boxes], dtype=np.float32)
            scores = np.asarray(outputs[self._outputs.scores], dtype=np.float32)
            if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.shape != (*boxes.shape[:2], n_labels):
                raise EngineError(
                    f"bundle {self.version}: boxes {boxes.shape} / scores {scores.shape} do not match "
                    f"[N, K, 4] / [N, K, {n_labels}]"
                )
            for i, placement in enumerate(placements):
                results.append(
                    decode_detections(
                        boxes[i],
                        scores[i],
                        self.manifest.labels,
                        threshold,
                        self.manifest.thresholds.nms_iou,
                        self._outputs.max_detections,
                        placement.valid_w,
                        placement.valid_h,
                    )
                )
        self.timing.postprocess_ms = (time.perf_counter() - t0) * 1000.0
        return results


def crop(image_bgr: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    """The pixels of a normalised x1, y1, x2, y2 rectangle (clipped; at least one pixel)."""
    h, w = image_bgr.shape[:2]
    x1, y1, x2, y2 = rect
    if not (x2 > x1 and y2 > y1):
        raise ImageError(f"crop rectangle {rect} is empty")
    px1 = min(max(int(np.floor(x1 * w)), 0), w - 1)
    py1 = min(max(int(np.floor(y1 * h)), 0), h - 1)
    px2 = min(max(int(np.ceil(x2 * w)), px1 + 1), w)
    py2 = min(max(int(np.ceil(y2 * h)), py1 + 1), h)
    return image_bgr[py1:py2, px1:px2]


def load_model(
    bundle_dir: str | Path,
    engine: EngineChoice = "auto",
    threads: int | None = None,
    precision: Precision = "fp32",
    manifest: Manifest | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    batch_budget_ms: float | None = DEFAULT_BUDGET_MS,
) -> ClassificationModel | DetectionModel:
    """The wrapper for a bundle directory (already verified by the caller), on the chosen engine.

    The engine is a BatchingEngine (edge.runtime.batching): callers on several threads (cameras, skills) that ask
    at the same time share one engine call, waiting at most `batch_budget_ms` for each other; None = the plain
    engine (one call per request).
    """
    bundle_dir = Path(bundle_dir)
    manifest = manifest or read_manifest(bundle_dir)
    runner: Engine = create_engine(bundle_dir, manifest, engine, threads, precision)
    if batch_budget_ms is not None:
        runner = BatchingEngine(runner, batch_budget_ms)
    model: ClassificationModel | DetectionModel
    if manifest.task == "classification":
        model = ClassificationModel(bundle_dir, manifest, runner, max_batch)
    else:
        model = DetectionModel(bundle_dir, manifest, runner, max_batch)
    log.info(
        "loaded %s model %s (%s, %s) from %s",
        manifest.task,
        manifest.version,
        runner.name,
        runner.precision,
        bundle_dir,
    )
    return model
