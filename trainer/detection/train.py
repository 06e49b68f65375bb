"""Few-shot detector training: cache the frozen trunk's features of many augmented views, train the rest.

With a handful of photos the quality comes from the pretrained backbone, so its trunk stays frozen up to its last
`fine_tune_blocks` modules (one by default: SqueezeNet's last Fire) and the frozen part runs once per augmented view;
those last modules, the pyramid and the head then train for many epochs on the cached features, which is what makes
a CPU run take a minute or two instead of hours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge.bundle import InputSpec
from edge.datasets.model import Sample
from edge.vocabulary import DEFAULT_BACKBONE
from trainer.detection.augment import AugmentConfig
from trainer.detection.loss import fcos_loss
from trainer.detection.model import Detector, taps_for
from trainer.detection.views import ViewCache, views_for
from trainer.errors import TrainingCancelled, TrainingError

log = logging.getLogger(__name__)

NMS_IOU = 0.3  # DetectorConfig.nms_iou's default (docs/TRAINING.md, round 5)
DEEP_FINE_TUNE_BLOCKS = 8  # deep_fine_tune: EfficientNet-Lite0's modules 10-17 (two 112-channel blocks on)
DEEP_MAX_STEPS = 500  # deep_fine_tune's step cap (round 5: +0.5 / +1.7 points over 300 on seed 0, docs/TRAINING.md)

Progress = Callable[[float, int, int, float, str], None]


@dataclass
class DetectorConfig:
    """Detector size and training schedule; the defaults are tuned for about 15 photos on a 2-core CPU."""

    input_size: int = 384  # square network input (stretched, as the manifest's `input.resize` says)
    views: int = 16  # augmented views per training image (the first is the photo as it is)
    # Cap on cached views over all images (about 0.5 MB each at 384 px with SqueezeNet): larger datasets get fewer
    # views per image, so memory and epoch time stop growing with the dataset.
    max_cached_views: int = 2400
    epochs: int = 20  # passes over all cached views ...
    # ... but at most this many optimiser steps (20 epochs of 15 photos x 16 views): a larger dataset trains fewer
    # epochs over more distinct views, so a fit's time stops growing with the dataset (None: always `epochs`).
    max_steps: int | None = 300
    batch: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    seed: int = 0
    fine_tune_blocks: int = 1  # last trunk modules that train too (0: whole trunk frozen)
    # Learning-rate factor for those trunk modules (the pyramid and head train at `lr`), and whether their
    # BatchNorms keep the pretrained statistics (1) instead of re-estimating them from batches of cached views (0).
    trunk_lr_scale: float = 1.0
    frozen_bn: int = 0
    head_width: int = 64
    head_depth: int = 2
    top_down: int = 0  # 1: FPN top-down path from the stride-32 level into the stride-16 one
    # 1: the trained detector also runs the mirrored photo and averages the two (Detector.tta_flip): twice the
    # device's inference per photo
    tta_flip: int = 0
    # Exponential moving average of the trained weights (decay per step; 0: the last step's weights are the model)
    ema: float = 0.0
    # Per-class NMS IoU of the decode (the manifest's `thresholds.nms_iou`, what the device applies; every
    # evaluation of the run decodes with it too). Chosen by 3-fold CV on the 15-photo benchmark's training photos
    # (docs/TRAINING.md, round 5): loosely bounded regions such as empty shelf stretches give overlapping
    # near-duplicates that 0.5 keeps.
    nms_iou: float = NMS_IOU
    box_weight: float = 2.0
    center_radius: float = 1.5
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    backbone: str = DEFAULT_BACKBONE  # decides the input normalisation; train_detector sets it to what it trains

    def input_spec(self) -> InputSpec:
        """The manifest `input` this detector is trained for (the backbone's normalisation, RGB, stretch)."""
        from trainer.classify import input_spec_for

        return input_spec_for(self.backbone, self.input_size)


def deep_fine_tune(cfg: DetectorConfig) -> DetectorConfig:
    """Switch `cfg` to the recipe for larger datasets: the trunk trains from the last two modules of its stride-16
    stage on (EfficientNet-Lite0: modules 10-17, `fine_tune_blocks` 8) at 0.3x the head's learning rate, with the
    pretrained BatchNorm statistics kept, on 32 augmented views per photo (at most 3000 cached views; a view is
    ~0.13 MB there) instead of 16, for at most 500 steps instead of 300. Measured on empty_shelf
    (docs/TRAINING.md); about 7x the step cost of the default, so the detection recipe uses it from
    `DEEP_FINE_TUNE_PHOTOS` photos on."""
    cfg.fine_tune_blocks = DEEP_FINE_TUNE_BLOCKS
    cfg.trunk_lr_scale = 0.3
    cfg.frozen_bn = 1
    cfg.views = 32
    cfg.max_cached_views = 3000
    if cfg.max_steps is not None:  # explicit epochs (no cap) stay as asked
        cfg.max_steps = DEEP_MAX_STEPS
    return cfg


def build_detector(backbone_name: str, weights: str | Path | None, num_classes: int, cfg: DetectorConfig) -> Detector:
    """A detector on a pretrained backbone; forward(x [N, 3, H, W] normalised) -> (boxes [N, K, 4] normalised
    x1, y1, x2, y2, scores [N, K, C] probabilities), exportable to ONNX with a dynamic batch, no NMS inside."""
    from trainer.backbones import build_backbone

    if num_classes < 1:
        raise TrainingError("detection needs at least one label")
    backbone = build_backbone(backbone_name, weights)
    taps = taps_for(backbone)
    trunk_end = (taps.index32 if taps.index32 is not None else taps.index16) + 1
    torch.manual_seed(cfg.seed)
    detector = Detector(
        backbone.features,  # type: ignore[arg-type]
        taps,
        num_classes,
        cfg.input_size,
        width=cfg.head_width,
        head_depth=cfg.head_depth,
        top_down=bool(cfg.top_down),
        cut=trunk_end - cfg.fine_tune_blocks,
    )
    detector.weights_info = getattr(backbone, "weights_info", None)  # type: ignore[assignment]
    for i, module in enumerate(detector.features):
        module.requires_grad_(i >= detector.cut)
    return detector


def train_detector(
    train: list[Sample],
    val: list[Sample],
    labels: list[str],
    backbone_name: str,
    weights: str | Path | None,
    cfg: DetectorConfig,
    progress: Progress | None = None,
    should_cancel: Callable[[], bool] | None = None,
    cache: ViewCache | None = None,
) -> tuple[Detector, dict[str, Any]]:
    """Train a detector on `train` (samples with boxes); returns the model (eval mode) and training info:
    losses, timings, and on `val` (when given) torch-side metrics and a suggested score threshold.

    `progress(fraction, epoch, epochs, loss, phase)` is called at least once per epoch; `should_cancel()` is
    checked every step and raises TrainingCancelled. `cache` holds the frozen trunk's features of the photos'
    views across the fits of one run (trainer.detection.views); without one, this fit makes its own."""
    from trainer.detection.metrics import detection_metrics

    if not train:
        raise TrainingError("detection training needs at least one image with boxes")
    if not any(s.boxes for s in train):
        raise TrainingError("no training image has a box: draw boxes around the regions to detect")
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    cfg.backbone = backbone_name  # the views below and the manifest must use this backbone's normalisation
    detector = build_detector(backbone_name, weights, len(labels), cfg)
    epochs = cfg.epochs  # what the step cap leaves of them, once the views are counted

    def report(fraction: float, epoch: int, loss: float, phase: str) -> None:
        if progress is not None:
            progress(round(min(max(fraction, 0.0), 1.0), 6), epoch, epochs, loss, phase)

    def check_cancel() -> None:
        if should_cancel is not None and should_cancel():
            raise TrainingCancelled("training was cancelled")

    # Caching the views is about a third of the work with the default schedule.
    cache_share = 0.3

    def tick(done: int) -> None:
        check_cancel()
        report(cache_share * done / len(train), 0, float("nan"), "features")

    if cache is None:
        cache = ViewCache(ViewCache.key_for(backbone_name, weights, cfg), list(labels))
    elif cache.key != ViewCache.key_for(backbone_name, weights, cfg) or cache.labels != list(labels):
        raise TrainingError("the cached views were made for another backbone, input size, seed or label set")
    views_per_image = cache.views or views_for(len(train), cfg)
    if views_per_image < cfg.views:
        log.info("%d training images: %d views each instead of %d", len(train), views_per_image, cfg.views)
    cache_seconds = cache.seconds
    cache.fill(detector, train, cfg, views_per_image, tick)
    rows = cache.rows(train, views_per_image)
    cached_at = time.perf_counter()
    log.info("%d views of %d images ready in %.1f s", len(rows), len(train), cached_at - started)

    trunk_params = [p for p in detector.features.parameters() if p.requires_grad]
    trunk_ids = {id(p) for p in trunk_params}
    other_params = [p for p in detector.parameters() if p.requires_grad and id(p) not in trunk_ids]
    groups = [{"params": other_params, "scale": 1.0}]
    if trunk_params:
        groups.append({"params": trunk_params, "scale": cfg.trunk_lr_scale})
    optimiser = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Training stride-16 blocks runs their depthwise convolutions in eager torch on every step: channels-last is
    # about 1.4x faster there on these CPUs (same results to float rounding). The cache stays NCHW.
    deep = detector.cut <= detector.taps.index16
    if deep:
        detector.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    count = len(rows)
    row_index = torch.tensor(rows)
    steps_per_epoch = max(1, (count + cfg.batch - 1) // cfg.batch)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = max(1, min(total_steps, cfg.max_steps))
    epochs = (total_steps + steps_per_epoch - 1) // steps_per_epoch

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        progress_share = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return cfg.lr * 0.5 * (1 + np.cos(np.pi * min(progress_share, 1.0)))

    generator = torch.Generator().manual_seed(cfg.seed)
    averaged = None
    if cfg.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        averaged = AveragedModel(detector, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=False)
    history: list[float] = []
    step = 0
    detector.train()
    if cfg.frozen_bn:
        for module in detector.features.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(count, generator=generator)
        epoch_loss = 0.0
        epoch_steps = min(steps_per_epoch, total_steps - step)
        for b in range(epoch_steps):
            check_cancel()
            idx = row_index[order[b * cfg.batch : (b + 1) * cfg.batch]].tolist()
            for group in optimiser.param_groups:
                group["lr"] = lr_at(step) * group["scale"]
            feats, tap16 = cache.batch(idx)
            if deep:
                feats = feats.contiguous(memory_format=torch.channels_last)
                tap16 = None if tap16 is None else tap16.contiguous(memory_format=torch.channels_last)
            raw = detector.raw_from_cache(feats, tap16)
            boxes, _ = detector.decode(raw)
            parts = fcos_loss(raw[0], boxes, raw[2], *cache.batch_targets(idx), cfg.box_weight)
            optimiser.zero_grad(set_to_none=True)
            parts.total.backward()
            optimiser.step()
            if averaged is not None:
                averaged.update_parameters(detector)
            step += 1
            epoch_loss += float(parts.total.detach())
        history.append(epoch_loss / epoch_steps)
        report(cache_share + (1 - cache_share) * epoch / epochs, epoch, history[-1], "train")
        log.debug("epoch %d/%d loss %.4f", epoch, epochs, history[-1])
    if averaged is not None:
        with torch.no_grad():
            for mine, mean in zip(detector.parameters(), averaged.module.parameters(), strict=True):
                mine.copy_(mean)
        del averaged
    detector.eval()
    detector.tta_flip = bool(cfg.tta_flip)
    if deep:
        detector.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    trained_at = time.perf_counter()

    info: dict[str, Any] = {
        "epochs": epochs,
        "views_per_image": views_per_image,
        "views": count,
        "steps": total_steps,
        "loss_history": [round(x, 5) for x in history],
        "final_loss": history[-1] if history else None,
        "frozen_trunk_modules": detector.cut,
        "trunk_lr_scale": cfg.trunk_lr_scale if cfg.fine_tune_blocks else None,
        "frozen_bn": bool(cfg.frozen_bn),
        "ema": cfg.ema or None,
        "test_time_flip": bool(cfg.tta_flip),
        "nms_iou": cfg.nms_iou,
        "seconds": {"features": cache.seconds - cache_seconds, "train": trained_at - cached_at},
    }
    if val:
        cache.fill(detector, val, cfg, 1)
        predictions = cache.predict(detector, val, nms_iou=cfg.nms_iou)
        metrics = detection_metrics(predictions, [s.boxes for s in val], labels)
        info["val"] = {k: metrics[k] for k in ("map50", "map50_95", "precision", "recall", "f1", "score_threshold")}
        info["score_threshold"] = metrics["score_threshold"]
        info["seconds"]["val"] = time.perf_counter() - trained_at
    return detector, info
