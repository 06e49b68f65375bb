"""The frozen trunk's features of every photo's augmented views, computed once per run and shared by its fits.

A detector trains on the output of its trunk's frozen part (`Detector.frozen_features`), which is the same for every
fit of one run: the k-fold folds and the shipped model start from the same pretrained trunk, cut at the same module,
at the same input size. So each photo's views are augmented, run through the frozen part and stored once
(`ViewCache`), and every fit takes the views of its own photos from there. A photo's views come from a random
generator seeded by the run's seed and the photo's name in its dataset, so they do not depend on which fit asked
first nor on where the dataset lies.

The frozen part runs in ONNX Runtime (`FrozenTrunk`): on these CPUs it is several times faster than eager torch
for the depthwise convolutions of EfficientNet-Lite0, and agrees with torch to float rounding (the features are
stored as float16 anyway).
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from edge.datasets.model import Sample
from edge.runtime.postprocess import Detection
from edge.runtime.preprocess import Letterbox, resize_for, to_tensor
from trainer.detection.augment import augment
from trainer.detection.predict import EVAL_SCORE_THRESHOLD, decode_batch, read_image
from trainer.detection.targets import Targets, assign_targets
from trainer.errors import TrainingError

if TYPE_CHECKING:
    from trainer.detection.model import Detector
    from trainer.detection.train import DetectorConfig


class _FrozenPart(nn.Module):
    """features[:cut] of a detector as a module of its own (for the ONNX export)."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, tap16 = self.detector.frozen_features(x)
        return (out,) if tap16 is None else (out, tap16)


class FrozenTrunk:
    """Runs a detector's frozen trunk part: normalised NCHW float32 -> (features, stride-16 tap or None)."""

    def __init__(self, detector: Detector, threads: int | None = None) -> None:
        self.with_tap16 = detector.cut > detector.taps.index16 + 1
        self.session: Any = None
        if detector.cut == 0:  # nothing frozen: the cached "features" are the input itself
            return
        import onnxruntime as ort

        from trainer.export import export_onnx

        names = ["features", "tap16"] if self.with_tap16 else ["features"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        was_training = detector.training
        with tempfile.TemporaryDirectory(prefix="frozen-trunk-") as tmp:
            path = export_onnx(_FrozenPart(detector), Path(tmp) / "trunk.onnx", detector.input_size, names)
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        detector.train(was_training)

    def __call__(self, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.session is None:
            return torch.from_numpy(batch), None
        outputs = self.session.run(None, {"input": batch})
        tap16 = torch.from_numpy(outputs[1]) if self.with_tap16 else None
        return torch.from_numpy(outputs[0]), tap16


def views_for(photos: int, cfg: DetectorConfig) -> int:
    """Views per photo: `cfg.views`, fewer when `photos` x views would pass `cfg.max_cached_views`."""
    return max(1, min(cfg.views, cfg.max_cached_views // max(1, photos)))


def _sample_arrays(sample: Sample, label_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray([b.as_tuple() for b in sample.boxes], dtype=np.float32).reshape(-1, 4)
    try:
        labels = np.asarray([label_index[b.label] for b in sample.boxes], dtype=np.int64)
    except KeyError as err:
        raise TrainingError(f"{sample.name}: box label {err.args[0]!r} is not among the labels") from err
    return boxes, labels


@dataclass
class _PhotoViews:
    rows: list[int]  # indices into ViewCache.features / tap16 / targets, the photo as it is first
    placement: Letterbox  # of the photo as it is (the device decode clips to it)


@dataclass
class ViewCache:
    """Frozen features and training targets of each photo's views, for every fit of one run (see the module).

    `key` says what the features depend on; a fit with another backbone, weights, input size, cut, seed or
    augmentation is refused. `views` fixes the views per photo for all fits (None: each fit's `views_for`)."""

    key: tuple[Any, ...]
    labels: list[str]
    views: int | None = None
    features: list[torch.Tensor] = field(default_factory=list)  # per view [C, H, W] float16
    tap16: list[torch.Tensor] = field(default_factory=list)  # per view, when the cut lies past the stride-16 tap
    targets: list[Targets] = field(default_factory=list)
    photos: dict[str, _PhotoViews] = field(default_factory=dict)
    trunk: FrozenTrunk | None = None
    seconds: float = 0.0  # time spent filling it
    spec: Any = None  # the input spec the views were made with (set by fill)
    # The horizontally flipped photo-as-it-is of predicted photos, for a detector with `tta_flip` (made on demand)
    mirrored: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)

    @staticmethod
    def key_for(backbone: str, weights: str | Path | None, cfg: DetectorConfig) -> tuple[Any, ...]:
        return (backbone, str(weights), cfg.input_size, cfg.fine_tune_blocks, cfg.seed, cfg.augment, cfg.center_radius)

    def rows(self, samples: Sequence[Sample], views: int) -> list[int]:
        """The cached rows of the first `views` views of each sample (all must be cached)."""
        return [r for s in samples for r in self.photos[str(s.path)].rows[:views]]

    def fill(
        self,
        detector: Detector,
        samples: Sequence[Sample],
        cfg: DetectorConfig,
        views: int,
        tick: Callable[[int], None] | None = None,
    ) -> None:
        """Cache `views` views of every sample not cached with that many yet (the photo as it is, then random
        augmentations from a generator seeded by the run's seed and the photo's name)."""
        import time

        started = time.perf_counter()
        if self.trunk is None:
            self.trunk = FrozenTrunk(detector)
        spec = self.spec = cfg.input_spec()
        label_index = {name: i for i, name in enumerate(self.labels)}
        detector.eval()
        for n, sample in enumerate(samples):
            cached = self.photos.get(str(sample.path))
            if cached is None or len(cached.rows) < views:
                self._add(detector, sample, cfg, views, spec, label_index, cached)
            if tick is not None:
                tick(n + 1)
        self.seconds += time.perf_counter() - started

    def _add(
        self,
        detector: Detector,
        sample: Sample,
        cfg: DetectorConfig,
        views: int,
        spec: Any,
        label_index: dict[str, int],
        cached: _PhotoViews | None,
    ) -> None:
        try:
            image = read_image(sample.path)
        except ValueError as err:
            raise TrainingError(str(err)) from err
        boxes, labels = _sample_arrays(sample, label_index)
        # Seeded by the photo's name in its dataset, not its absolute path: the same photos give the same views (and
        # model) wherever the dataset lies (a job's temporary folder, a test's tmp_path).
        rng = np.random.default_rng([cfg.seed, zlib.crc32(sample.name.encode())])
        rows = list(cached.rows) if cached is not None else []
        placement = resize_for(image, spec)[1]
        for v in range(views):
            if v == 0:
                view, vboxes, vlabels = image, boxes, labels
            else:
                view, vboxes, vlabels = augment(image, boxes, labels, cfg.augment, rng)
            if v < len(rows):  # already cached: the generator had to pass this view to reach the next
                continue
            assert self.trunk is not None
            # One view at a time: on small CPUs the trunk runs faster per image than in a large batch.
            out, tap16 = self.trunk(to_tensor([resize_for(view, spec)[0]], spec))
            rows.append(len(self.features))
            self.features.append(out[0].half())
            if tap16 is not None:
                self.tap16.append(tap16[0].half())
            self.targets.append(
                assign_targets(detector.levels, torch.from_numpy(vboxes), torch.from_numpy(vlabels), cfg.center_radius)
            )
        self.photos[str(sample.path)] = _PhotoViews(rows, placement)

    def predict(
        self,
        detector: Detector,
        samples: Sequence[Sample],
        score_threshold: float = EVAL_SCORE_THRESHOLD,
        nms_iou: float = 0.5,
    ) -> list[list[Detection]]:
        """Detections per sample from its cached photo-as-it-is (fill first), decoded as the device decodes (per-class
        NMS at `nms_iou`, the manifest's `thresholds.nms_iou`): the detector's trained part only, the same numbers as
        running it on the photo to float rounding."""
        out: list[list[Detection]] = []
        detector.eval()
        for start in range(0, len(samples), 16):
            chunk_samples = samples[start : start + 16]
            chunk = [self.photos[str(s.path)] for s in chunk_samples]
            feats, tap16 = self.batch([p.rows[0] for p in chunk])
            flipped = self._mirrored(chunk_samples) if detector.tta_flip else None
            with torch.no_grad():
                boxes, scores = detector.decode(detector.raw_from_cache(feats, tap16, flipped))
            out.extend(
                decode_batch(
                    boxes.numpy(), scores.numpy(), [p.placement for p in chunk], self.labels, score_threshold, nms_iou
                )
            )
        return out

    def _mirrored(self, samples: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frozen features (and stride-16 taps) of these photos mirrored left to right, stacked as `batch` stacks."""
        assert self.trunk is not None and self.spec is not None, "fill the cache before predicting"
        for s in samples:
            if str(s.path) not in self.mirrored:
                image = np.ascontiguousarray(read_image(s.path)[:, ::-1])
                out, tap16 = self.trunk(to_tensor([resize_for(image, self.spec)[0]], self.spec))
                self.mirrored[str(s.path)] = (out[0].half(), None if tap16 is None else tap16[0].half())
        pairs = [self.mirrored[str(s.path)] for s in samples]
        feats = torch.stack([f for f, _ in pairs]).float()
        taps = [t for _, t in pairs if t is not None]
        return feats, (torch.stack(taps).float() if len(taps) == len(pairs) else None)

    def batch(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """float32 features (and stride-16 taps) of these rows, stacked."""
        feats = torch.stack([self.features[r] for r in rows]).float()
        tap16 = torch.stack([self.tap16[r] for r in rows]).float() if self.tap16 else None
        return feats, tap16

    def batch_targets(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stacked target labels [B, K], boxes [B, K, 4], centre-ness [B, K] of these rows."""
        picked = [self.targets[r] for r in rows]
        return (
            torch.stack([t.labels for t in picked]),
            torch.stack([t.boxes for t in picked]),
            torch.stack([t.centerness for t in picked]),
        )
