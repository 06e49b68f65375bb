"""Few-shot classification: a frozen pretrained backbone, cached embeddings of augmented views, a linear head.

Few images cannot retrain a network, but a pretrained backbone already separates most things a shelf camera
sees; what is left is a linear decision on its embedding. So: every training image is seen as `views` views (the
image, its mirror and, for small sets, fixed 80% crops: `training_views`), each view is embedded once by the
frozen backbone, and a class-balanced L2 logistic regression is fitted on the cached embeddings, its strength
chosen by grouped cross-validation on the training images (`fit_logistic_head`; all views of a photo in one
fold). `--epochs N` trains the earlier softmax layer instead (early stopping on validation, then a refit on
train + validation). Embeddings are standardised while fitting and the standardisation is folded into the
exported linear layer.

Embedding: SqueezeNet 1.1 uses the global average of `features` (512); the MobileNetV3s also keep their
pretrained `classifier[0:2]` (Linear + Hardswish: 1024 / 1280), which is part of what ImageNet taught them.

Determinism: everything random is drawn from generators seeded with the run's seed and the thread count is fixed
for the run; the same data, seed and threads give the same model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge.bundle import InputSpec
from edge.runtime.preprocess import preprocess
from trainer.backbones import BackboneNet, MobileNetV3, Stage
from trainer.errors import TrainingCancelled

log = logging.getLogger(__name__)

StepCallback = Callable[[int, int, float], None]  # (done, total, loss)
CancelCheck = Callable[[], bool]


class GlobalPool(nn.Module):
    """Global average pooling, or average and max pooling side by side (`avgmax`: twice the channels).

    The max keeps "there is a banana somewhere in the frame" when the object fills a small part of it, which the
    average dilutes; measured on grocery5 (docs/TRAINING.md) it is worth a few points with few images.
    """

    def __init__(self, mode: str = "avg") -> None:
        super().__init__()
        if mode not in ("avg", "avgmax"):
            raise ValueError(f"pooling must be avg or avgmax, not {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        if self.mode == "avg":
            return avg
        return torch.cat([avg, torch.flatten(nn.functional.adaptive_max_pool2d(x, 1), 1)], 1)


class Embedder(nn.Module):
    """Backbone trunk -> global pooling (+ average-pooled taps) (-> MobileNetV3: pre-logits) = one vector per image.

    `pooling` defaults to the backbone's `embed_pooling` and `taps` to its `embed_taps` (feature indices whose
    outputs are average-pooled and appended): EfficientNet-Lite0 embeds the average of its pre-activation head
    plus the average of its last block (1280 + 320), SqueezeNet the average and max of its trunk; both measured
    best on grocery5 (docs/TRAINING.md).
    """

    def __init__(self, backbone: BackboneNet, pooling: str | None = None, taps: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.features = backbone.features
        self.pre_logits: nn.Module = nn.Identity()
        self.taps = tuple(backbone.embed_taps if taps is None else taps)
        channels = {st.index: st.channels for st in _all_stages(backbone)}
        tap_dim = sum(channels[t] for t in self.taps)
        if isinstance(backbone, MobileNetV3):
            # Its pretrained Linear + Hardswish reads the average-pooled trunk: keep that pairing.
            self.pool = GlobalPool("avg")
            self.pre_logits = nn.Sequential(backbone.classifier[0], backbone.classifier[1])
            first = backbone.classifier[0]
            assert isinstance(first, nn.Linear)
            self.dim = first.out_features
            self.taps = ()
        else:
            mode = pooling or backbone.embed_pooling
            self.pool = GlobalPool(mode)
            self.dim = backbone.out_channels * (2 if mode == "avgmax" else 1) + tap_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _embed(self.features, self.taps, self.pool, self.pre_logits, x)

    def split(self, tail_modules: int) -> tuple[nn.Module, EmbedTail]:
        """(trunk, tail): the trunk is `features` without its last `tail_modules` modules; the tail is the rest
        plus pooling (sharing the same module objects, so training the tail trains this embedder)."""
        cut = len(self.features) - tail_modules
        if any(t < cut for t in self.taps):
            raise ValueError(f"taps {self.taps} must lie in the last {tail_modules} modules to split there")
        trunk = nn.Sequential(*list(self.features)[:cut])
        blocks = nn.Sequential(*list(self.features)[cut:])
        return trunk, EmbedTail(blocks, self.pool, self.pre_logits, self.dim, tuple(t - cut for t in self.taps))


def _all_stages(backbone: BackboneNet) -> list[Stage]:
    return [*backbone.stages, *getattr(backbone, "embed_tap_stages", ())]


def _embed(
    blocks: nn.Sequential, taps: tuple[int, ...], pool: nn.Module, pre_logits: nn.Module, x: torch.Tensor
) -> torch.Tensor:
    if not taps:
        return pre_logits(pool(blocks(x)))
    tapped = []
    for i, block in enumerate(blocks):
        x = block(x)
        if i in taps:
            tapped.append(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
    return pre_logits(torch.cat([pool(x), *tapped], 1))


class EmbedTail(nn.Module):
    """The last trunk modules + pooling and taps (+ pre-logits): cached trunk activations -> embedding."""

    def __init__(
        self, blocks: nn.Sequential, pool: nn.Module, pre_logits: nn.Module, dim: int, taps: tuple[int, ...] = ()
    ) -> None:
        super().__init__()
        self.blocks = blocks
        self.pool = pool
        self.pre_logits = pre_logits
        self.dim = dim
        self.taps = taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _embed(self.blocks, self.taps, self.pool, self.pre_logits, x)


# How many of the trunk's last modules fine-tuning trains: the last two Fire modules of SqueezeNet (13x13 at 224);
# MobileNetV3's last two inverted-residual blocks and its final 1x1 convolution.
# EfficientNet-Lite0's last block and its head convolution.
FINE_TUNE_MODULES = {"squeezenet1_1": 2, "mobilenet_v3_small": 3, "mobilenet_v3_large": 3, "efficientnet_lite0": 2}
FINE_TUNE_MIN_PER_LABEL = 100  # auto mode: fine-tune only when every label has this many training images


class Classifier(nn.Module):
    """What gets exported: image tensor -> logits [N, C] (softmax is applied by the device)."""

    def __init__(self, embedder: Embedder, head: nn.Linear) -> None:
        super().__init__()
        self.embedder = embedder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedder(x))


class ClassifierWithEmbedding(Classifier):
    """What the bundle exports: image tensor -> (logits [N, C], embedding [N, D]); the device keeps the embedding
    of each image to show how similar a photo is to each label's labelled examples (edge.assist)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        embedding = self.embedder(x)
        return self.head(embedding), embedding


@dataclass
class HeadFit:
    """The trained head and how training went."""

    head: nn.Linear
    best_epoch: int
    epochs_run: int
    train_loss: float
    val_loss: float | None
    val_accuracy: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    head_kind: str = "softmax-epochs"  # or "logistic-cv": L2 logistic regression, C chosen by cross-validation
    c: float | None = None
    cv_folds: int = 0
    cv: dict[str, float] = field(default_factory=dict)


# Input size when a run does not name one (measured on grocery5, docs/TRAINING.md): EfficientNet-Lite0 gains
# from 384 px, where the 224 px ImageNet resolution loses fruit texture; the others keep their 224.
DEFAULT_INPUT_SIZE = {"efficientnet_lite0": 384}


# Zone crops (a shelf row is several times wider than tall) keep their shape instead of being stretched to a
# square: the network input gets the zones' median aspect ratio at about this many pixels (320 x 307 for square
# zones, 768 x 128 for the demo shelf's rows), a third fewer than 384 x 384 (docs/TRAINING.md, device inference).
ZONE_INPUT_PIXELS = 96 * 1024


def input_spec_for(backbone_name: str, input_size: int | None, zone_aspect: float | None = None) -> InputSpec:
    """The network input the backbone was pretrained with: RGB, its mean/std (torchvision's ImageNet ones, or
    EfficientNet-Lite's 0.498/0.502), stretched to a square of `input_size` (default: the measured best); or, for
    EfficientNet-Lite0 zone crops of median width/height `zone_aspect` with no size given, a rectangle of that shape
    (sides multiples of 32) of about ZONE_INPUT_PIXELS."""
    width = height = input_size or DEFAULT_INPUT_SIZE.get(backbone_name, 224)
    if backbone_name == "efficientnet_lite0":
        from trainer.efficientnet_lite import MEAN, STD

        if zone_aspect and input_size is None:
            aspect = min(16.0, max(1 / 16, zone_aspect))
            height = max(64, 32 * round((ZONE_INPUT_PIXELS / aspect) ** 0.5 / 32))
            width = max(64, 32 * round(ZONE_INPUT_PIXELS / height / 32))
        return InputSpec(width=width, height=height, color="RGB", mean=MEAN, std=STD, resize="stretch")
    return InputSpec(width=width, height=height, color="RGB", resize="stretch")


MULTI_CROP_VIEWS = 8  # the plain image, its mirror and six fixed crops (training_views)
CROP_SHARE = 0.8  # each side of a crop view keeps this share of the image


def _crop(image: np.ndarray, where: str) -> np.ndarray:
    """The CROP_SHARE crop of `image` at the centre ("c"), top-left ("tl") or bottom-right ("br")."""
    h, w = image.shape[:2]
    ch, cw = max(1, round(h * CROP_SHARE)), max(1, round(w * CROP_SHARE))
    y, x = {"c": ((h - ch) // 2, (w - cw) // 2), "tl": (0, 0), "br": (h - ch, w - cw)}[where]
    return np.ascontiguousarray(image[y : y + ch, x : x + cw])


def training_views(image: np.ndarray, views: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`views` views of one training image: the image as it is, its mirror image, then fixed crops keeping 80% of
    each side (the centre of the image and of its mirror, the top-left and bottom-right corners of each), then
    random augmentations (trainer.data.augment) beyond MULTI_CROP_VIEWS.

    The mirror is always plausible on a shelf; the crops teach the head that an object may fill more of the frame
    than in the few photos it has: measured on grocery5 test/ with 5 photos per class, 8 views gave 0.924 median
    over 10 seeds against 0.886 for image + mirror; random crops and colour jitter did not help
    (docs/TRAINING.md).
    """
    from trainer.data import augment

    mirror = np.ascontiguousarray(image[:, ::-1])
    fixed = [image, mirror, _crop(image, "c"), _crop(mirror, "c")]
    fixed += [_crop(image, "tl"), _crop(image, "br"), _crop(mirror, "tl"), _crop(mirror, "br")]
    out = fixed[: max(1, views)]
    out.extend(augment(image, rng) for _ in range(views - len(fixed)))
    return out


def seed_everything(seed: int, threads: int | None = None) -> torch.Generator:
    """Seed torch and fix the thread count; returns a generator for the run.

    Not `torch.use_deterministic_algorithms`: it only changes CUDA kernels, costs seconds of imports per run, and
    every CPU kernel used here (convolutions, linear, AdamW, ONNX Runtime's CPU provider) is deterministic for a
    fixed thread count; the tests check the exported model bit for bit across runs.
    """
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def embed_images(
    embedder: Embedder | nn.Module,
    images_bgr: Sequence[np.ndarray],
    spec: InputSpec,
    *,
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
    should_cancel: CancelCheck | None = None,
    onnx_dir: Path | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Embed BGR images (any sizes) through the shared preprocessing; [N, D] float32.

    With `onnx_dir` the frozen embedder is exported there and run by ONNX Runtime, which embeds about three
    times faster than eager torch on these CPUs; the numbers agree to float rounding (the export parity check
    holds the whole classifier to 1e-3 afterwards anyway).
    """
    embedder.eval()
    run: Callable[[np.ndarray], np.ndarray]
    if onnx_dir is not None:
        import onnxruntime as ort

        from trainer.export import export_onnx

        path = export_onnx(embedder, onnx_dir / "embedder.onnx", (spec.height, spec.width), ["embedding"])
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(batch: np.ndarray) -> np.ndarray:
            return np.asarray(session.run(None, {"input": batch})[0])
    else:

        def run(batch: np.ndarray) -> np.ndarray:
            return embedder(torch.from_numpy(batch)).numpy()

    out: list[np.ndarray] = []
    for start in range(0, len(images_bgr), batch_size):
        if should_cancel and should_cancel():
            raise TrainingCancelled("training cancelled")
        tensor, _ = preprocess(images_bgr[start : start + batch_size], spec)
        out.append(run(tensor))
        if on_batch:
            on_batch(min(len(images_bgr), start + batch_size))
    return np.concatenate(out, 0) if out else np.zeros((0, int(getattr(embedder, "dim", 0))), np.float32)


def _fit(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    epochs: int,
    generator: torch.Generator,
    *,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    patience: int = 40,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> tuple[nn.Linear, int, list[dict[str, float]]]:
    head = nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.01)
        head.bias.zero_()
    counts = torch.bincount(y, minlength=n_classes).float().clamp(min=1)
    class_weight = counts.sum() / (n_classes * counts)  # balance the loss so a big label does not win by size
    loss_fn = nn.CrossEntropyLoss(weight=class_weight, label_smoothing=0.1)
    optimiser = torch.optim.AdamW(head.parameters(), lr=0.01, weight_decay=0.05)
    best = (float("inf"), 0, {k: v.clone() for k, v in head.state_dict().items()})
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        if should_cancel and should_cancel():
            raise TrainingCancelled("training cancelled")
        head.train()
        optimiser.zero_grad()
        loss = loss_fn(head(x), y)
        loss.backward()
        optimiser.step()
        row = {"epoch": float(epoch), "loss": float(loss.detach())}
        if val is not None and len(val[1]):
            with torch.no_grad():
                logits = head(val[0])
                val_loss = float(nn.functional.cross_entropy(logits, val[1]))
                row["val_loss"] = val_loss
                row["val_accuracy"] = float((logits.argmax(1) == val[1]).float().mean())
            if val_loss < best[0] - 1e-5:
                best = (val_loss, epoch, {k: v.clone() for k, v in head.state_dict().items()})
            elif epoch - best[1] >= patience:
                history.append(row)
                if on_step:
                    on_step(epoch, epochs, row["loss"])
                break
        history.append(row)
        if on_step:
            on_step(epoch, epochs, row["loss"])
    if val is not None and len(val[1]):
        head.load_state_dict(best[2])
        return head, best[1], history
    return head, epochs, history


def train_head(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    n_classes: int,
    *,
    seed: int,
    epochs: int | None = None,
    refit_x: np.ndarray | None = None,
    refit_y: np.ndarray | None = None,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
    views: int = 1,
) -> HeadFit:
    """The linear head on embeddings; the returned head takes raw embeddings (standardisation folded in).

    Default: an L2 logistic regression whose strength is chosen by grouped cross-validation (`fit_logistic_head`)
    on train, or on train + validation when `refit_x/y` are given (rows are `views` consecutive views per image:
    one group each). Validation then only reports: nothing is early-stopped.
    With an explicit `epochs`: the earlier softmax layer trained by AdamW for that many epochs (fixed weight
    decay), early-stopped on validation and refitted on train + validation.
    """
    if epochs is None:
        refit = refit_x is not None and refit_y is not None
        x, y = (refit_x, refit_y) if refit_x is not None and refit_y is not None else (train_x, train_y)
        groups = np.arange(len(y)) // max(1, views)
        fit = fit_logistic_head(x, y, groups, n_classes, seed=seed, on_step=on_step, should_cancel=should_cancel)
        val_loss = val_accuracy = None
        if len(val_y) and not refit:
            probs = fit.predict_proba(val_x)
            val_loss = float(-np.log(np.clip(probs[np.arange(len(val_y)), val_y], 1e-12, None)).mean())
            val_accuracy = float((probs.argmax(1) == val_y).mean())
        elif fit.cv:
            val_loss = fit.cv[f"{fit.c:g}"]  # held-out log-loss of the chosen C over the folds
        return HeadFit(
            fit.head, 0, 0, fit.train_loss, val_loss, val_accuracy, [], "logistic-cv", fit.c, fit.folds, fit.cv
        )
    started = time.monotonic()
    generator = torch.Generator().manual_seed(seed)
    mean = train_x.mean(0, keepdims=True)
    std = train_x.std(0, keepdims=True) + 1e-6

    def _t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((a - mean) / std).astype(np.float32))

    max_epochs = epochs or 300
    has_val = len(val_y) > 0
    total = max_epochs * (2 if refit_x is not None and has_val else 1)

    def _step(offset: int) -> StepCallback | None:
        if on_step is None:
            return None
        cb = on_step
        return lambda done, _total, loss: cb(offset + done, total, loss)

    head, best_epoch, history = _fit(
        _t(train_x),
        torch.from_numpy(train_y.astype(np.int64)),
        n_classes,
        max_epochs,
        generator,
        val=(_t(val_x), torch.from_numpy(val_y.astype(np.int64))) if has_val else None,
        on_step=_step(0),
        should_cancel=should_cancel,
    )
    val_row = next((r for r in history if int(r["epoch"]) == best_epoch), history[-1] if history else {})
    if epochs is not None:
        best_epoch = epochs  # an explicit epoch count is obeyed; validation is still reported
    epochs_run = len(history)
    if refit_x is not None and refit_y is not None and has_val:
        if on_step:
            total = epochs_run + best_epoch
        head, _, refit_history = _fit(
            _t(refit_x),
            torch.from_numpy(refit_y.astype(np.int64)),
            n_classes,
            best_epoch,
            torch.Generator().manual_seed(seed + 1),
            on_step=_step(epochs_run),
            should_cancel=should_cancel,
        )
        epochs_run += len(refit_history)
    with torch.no_grad():
        loss = float(nn.functional.cross_entropy(head(_t(train_x)), torch.from_numpy(train_y.astype(np.int64))))
        # Fold the standardisation into the layer: W((f - m) / s) + b = (W / s) f + (b - W (m / s)).
        folded = nn.Linear(train_x.shape[1], n_classes)
        w = head.weight / torch.from_numpy(std.astype(np.float32))
        folded.weight.copy_(w)
        folded.bias.copy_(head.bias - (w * torch.from_numpy(mean.astype(np.float32))).sum(1))
    log.info("head trained: best epoch %d of %d run in %.2fs", best_epoch, epochs_run, time.monotonic() - started)
    return HeadFit(
        folded,
        best_epoch,
        epochs_run,
        loss,
        val_row.get("val_loss") if has_val else None,
        val_row.get("val_accuracy") if has_val else None,
        history,
    )


@dataclass
class FineTuneResult:
    """Whether fine-tuning the last modules beat the frozen-trunk head on validation, and by how much."""

    head: nn.Linear
    kept: bool
    best_epoch: int
    epochs_run: int
    val_loss_before: float | None
    val_loss_after: float | None


def _embed_cached(tail: EmbedTail, cached: np.ndarray, batch: int = 64) -> torch.Tensor:
    return torch.cat([tail(torch.from_numpy(cached[i : i + batch]).float()) for i in range(0, len(cached), batch)])


@torch.no_grad()
def tail_embeddings(tail: EmbedTail, cached: np.ndarray) -> np.ndarray:
    """Embeddings [N, D] from cached trunk activations [N, C, H, W] (float16 or float32)."""
    tail.eval()
    return _embed_cached(tail, cached).numpy()


def fine_tune_tail(
    tail: EmbedTail,
    head: nn.Linear,
    train_in: np.ndarray,
    train_y: np.ndarray,
    val_in: np.ndarray,
    val_y: np.ndarray,
    *,
    seed: int,
    epochs: int = 12,
    batch_size: int = 32,
    lr: float = 1e-4,
    patience: int = 3,
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> FineTuneResult:
    """Train the tail modules and the head together on cached trunk activations (BatchNorm statistics frozen),
    early-stopped on validation loss; keeps the result only when it beats the starting point's validation loss,
    otherwise the tail and head are restored exactly."""
    generator = torch.Generator().manual_seed(seed + 7)
    start_tail = {k: v.clone() for k, v in tail.state_dict().items()}
    start_head = {k: v.clone() for k, v in head.state_dict().items()}
    n_classes = head.out_features
    y = torch.from_numpy(train_y.astype(np.int64))
    vy = torch.from_numpy(val_y.astype(np.int64))
    counts = torch.bincount(y, minlength=n_classes).float().clamp(min=1)
    loss_fn = nn.CrossEntropyLoss(weight=counts.sum() / (n_classes * counts), label_smoothing=0.1)
    optimiser = torch.optim.AdamW(
        [{"params": list(tail.parameters()), "lr": lr}, {"params": list(head.parameters()), "lr": lr}],
        weight_decay=1e-4,
    )
    steps_per_epoch = max(1, (len(train_in) + batch_size - 1) // batch_size)
    total = epochs * steps_per_epoch
    # Both sides are judged with the training criterion (label-smoothed): plain cross-entropy would favour the
    # frozen head, whose logits were never pulled towards smoothed targets by these steps.
    val_criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    tail.eval()
    with torch.no_grad():
        baseline = float(val_criterion(head(_embed_cached(tail, val_in)), vy))
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None
    epochs_run = 0
    for epoch in range(1, epochs + 1):
        tail.train()
        for m in tail.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()  # a few images must not rewrite ImageNet's normalisation statistics
        order = torch.randperm(len(train_in), generator=generator)
        for step in range(steps_per_epoch):
            if should_cancel and should_cancel():
                tail.load_state_dict(start_tail)
                head.load_state_dict(start_head)
                raise TrainingCancelled("training cancelled")
            idx = order[step * batch_size : (step + 1) * batch_size].numpy()
            x = torch.from_numpy(train_in[idx]).float()
            loss = loss_fn(head(tail(x)), y[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if on_step:
                on_step((epoch - 1) * steps_per_epoch + step + 1, total, float(loss.detach()))
        epochs_run = epoch
        tail.eval()
        with torch.no_grad():
            val_loss = float(val_criterion(head(_embed_cached(tail, val_in)), vy))
        if best is None or val_loss < best[0] - 1e-5:
            best = (
                val_loss,
                epoch,
                {k: v.clone() for k, v in tail.state_dict().items()},
                {k: v.clone() for k, v in head.state_dict().items()},
            )
        elif epoch - best[1] >= patience:
            break
    tail.eval()
    if best is not None and best[0] < baseline - 1e-4:
        tail.load_state_dict(best[2])
        head.load_state_dict(best[3])
        return FineTuneResult(head, True, best[1], epochs_run, baseline, best[0])
    tail.load_state_dict(start_tail)
    head.load_state_dict(start_head)
    return FineTuneResult(head, False, 0, epochs_run, baseline, best[0] if best else None)


# ------------------------------------------------------------------------- logistic-regression head (the default)

# L2 strengths tried by cross-validation (sklearn's C: the inverse of the penalty, on standardised embeddings).
# 3.0 and weaker were never chosen by the one-standard-error rule on grocery5 and converge slowest.
C_GRID: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
DEFAULT_C = 0.03  # when there are too few images per label to cross-validate (fewer than 2 groups of a label)
CV_FOLDS = 5


@dataclass
class LogisticFit:
    """A multinomial L2 logistic regression on standardised embeddings, folded into one `nn.Linear`."""

    head: nn.Linear  # takes raw embeddings: the standardisation is folded in
    c: float
    cv: dict[str, float] = field(default_factory=dict)  # C -> mean held-out log-loss (empty without CV)
    folds: int = 0
    cv_se: dict[str, float] = field(default_factory=dict)  # C -> standard error of that mean
    train_loss: float = 0.0

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities [N, C] for raw embeddings [N, D]."""
        return torch.softmax(self.head(torch.from_numpy(np.ascontiguousarray(x, np.float32))), 1).numpy()


class _Logistic:
    """Class-balanced L2 logistic regressions on one set of rows `x`, fitted for several C in turn.

    With fewer rows than dimensions (a few dozen photos, 1600 values each) the L2 solution lies in the span of the
    rows (the intercept is not penalised), so the problem is solved in that span's coordinates (x = u s vt: fit on
    u s, weights a vt): the same optimum with n instead of 1600 numbers per row. Each fit starts from the previous
    one's solution (warm start), so a grid in increasing C costs half the iterations. Together 2.5x faster on
    grocery5's embeddings, and closer to the exact optimum than cold fits at sklearn's tolerance (docs/TRAINING.md).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> None:
        from sklearn.linear_model import LogisticRegression

        self.y, self.n_classes, self.dim = y, n_classes, x.shape[1]
        self.basis: np.ndarray | None = None
        if len(x) < x.shape[1]:
            u, s, self.basis = np.linalg.svd(x, full_matrices=False)
            x = u * s
        self.x = x
        self.model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed, warm_start=True)

    def fit(self, c: float) -> tuple[np.ndarray, np.ndarray]:
        """(weights [n_classes, D], bias [n_classes]) at strength `c`."""
        present = np.unique(self.y)
        if len(present) == 1:  # a fold may hold one label only: a constant prediction
            w, b = np.zeros((self.n_classes, self.dim)), np.full(self.n_classes, -20.0)
            b[present[0]] = 20.0
            return w, b
        model = self.model.set_params(C=c).fit(self.x, self.y)
        coef = model.coef_ @ self.basis if self.basis is not None else model.coef_
        w = np.zeros((self.n_classes, self.dim))
        b = np.full(self.n_classes, -30.0)  # a label absent from this fit is never predicted
        if len(model.classes_) == 2:  # sklearn keeps one row for two classes: logit difference split evenly
            w[model.classes_[1]], b[model.classes_[1]] = coef[0] / 2, model.intercept_[0] / 2
            w[model.classes_[0]], b[model.classes_[0]] = -coef[0] / 2, -model.intercept_[0] / 2
        else:
            w[model.classes_], b[model.classes_] = coef, model.intercept_
        return w, b


def fit_logistic_head(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    *,
    seed: int,
    c: float | None = None,
    grid: Sequence[float] = C_GRID,
    rule: str = "1se",
    on_step: StepCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> LogisticFit:
    """Fit the head on embeddings `x` [N, D] (several views per image allowed), choosing the L2 strength by
    stratified group k-fold cross-validation over `grid` unless `c` is given.

    `groups` names the photo each row comes from: all views (and copies) of one photo fall in the same fold, so a
    flipped copy never tells the held-out fold what its photo looks like. The chosen C is the smallest (strongest
    penalty) whose mean held-out log-loss is within one standard error of the lowest (the "one-standard-error
    rule", measured best on grocery5: docs/TRAINING.md; `rule="min"` takes the lowest); the head is then refitted
    on everything. Deterministic for a seed.
    """
    from threadpoolctl import threadpool_limits

    # One BLAS thread: these matrices are small, and spinning BLAS threads on a busy two-core machine made each
    # fit 30 times slower (0.1 s -> 3 s measured).
    with threadpool_limits(limits=1):
        return _fit_logistic_head(x, y, groups, n_classes, seed, c, grid, rule, on_step, should_cancel)


def _fit_logistic_head(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    seed: int,
    c: float | None,
    grid: Sequence[float],
    rule: str,
    on_step: StepCallback | None,
    should_cancel: CancelCheck | None,
) -> LogisticFit:
    from sklearn.model_selection import StratifiedGroupKFold

    started = time.monotonic()
    mean = x.mean(0, keepdims=True)
    std = x.std(0, keepdims=True) + 1e-6
    z = (x - mean) / std
    per_label_groups = [len(np.unique(groups[y == k])) for k in np.unique(y)]
    folds = min(CV_FOLDS, min(per_label_groups)) if c is None else 0
    cv: dict[str, float] = {}
    cv_se: dict[str, float] = {}
    total = (len(grid) * folds if folds >= 2 else 0) + 1
    done = 0
    if c is None and folds >= 2:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(z, y, groups))
        rows: dict[float, list[np.ndarray]] = {candidate: [] for candidate in grid}
        for train_idx, held_idx in splits:
            fits = _Logistic(z[train_idx], y[train_idx], n_classes, seed)
            for candidate in sorted(grid):  # increasing C: each fit starts from the stronger penalty's solution
                if should_cancel and should_cancel():
                    raise TrainingCancelled("training cancelled")
                w, b = fits.fit(candidate)
                logits = z[held_idx] @ w.T + b
                logits -= logits.max(1, keepdims=True)
                logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
                rows[candidate].append(-logp[np.arange(len(held_idx)), y[held_idx]])
                done += 1
                if on_step:
                    on_step(done, total, float(rows[candidate][-1].mean()))
        spread: dict[float, float] = {}
        for candidate in grid:
            pooled = np.concatenate(rows[candidate])
            cv[f"{candidate:g}"] = float(pooled.mean())
            spread[candidate] = float(pooled.std() / np.sqrt(len(pooled)))
            cv_se[f"{candidate:g}"] = spread[candidate]
        best = min(grid, key=lambda g: cv[f"{g:g}"])
        if rule == "1se":
            # The strongest penalty whose held-out loss is within one standard error of the best: with a few
            # dozen photos the loss curve is flat near its minimum and the weaker penalties there overfit.
            c = float(min(g for g in grid if cv[f"{g:g}"] <= cv[f"{best:g}"] + spread[best]))
        else:
            c = float(best)
    elif c is None:
        c = DEFAULT_C
        folds = 0
    if should_cancel and should_cancel():
        raise TrainingCancelled("training cancelled")
    w, b = _Logistic(z, y, n_classes, seed).fit(c)
    folded = nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        # W((f - m) / s) + b = (W / s) f + (b - W (m / s))
        ws = w / std
        folded.weight.copy_(torch.from_numpy(ws.astype(np.float32)))
        folded.bias.copy_(torch.from_numpy((b - (ws * mean).sum(1)).astype(np.float32)))
    fit = LogisticFit(folded, c, cv, folds, cv_se)
    probs = fit.predict_proba(x)
    fit.train_loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
    if on_step:
        on_step(total, total, fit.train_loss)
    log.info(
        "logistic head: C=%g chosen by %d-fold CV over %d values in %.2fs",
        c,
        folds,
        len(grid),
        time.monotonic() - started,
    )
    return fit
