"""The classification recipe: whole images or zone crops, a frozen pretrained backbone, a linear head.

Every image of the fitting pool is seen as `views` views (the plain image plus augmentations), each embedded once
by the frozen backbone (or, when fine-tuning, by its frozen part); every fit then trains a head (and the tail
modules) on those cached embeddings, so the folds of k-fold cost a head fit each, not an embedding pass. See
trainer/classify.py for the head and the fine-tuning.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.bundle import ClassificationOutputs, DatasetInfo, DetectionOutputs, Manifest
from edge.vocabulary import TASK_METRICS, default_alert_labels
from trainer.export import FP32_TOLERANCE, MIN_IMAGES_TO_FAIL_REDUCED, REDUCED_TOP1_MIN, compare_logits
from trainer.recipes import (
    Evaluation,
    FitProgress,
    HoldoutSplit,
    Infer,
    TaskData,
    TrainedModel,
    check_alert_labels,
)

if TYPE_CHECKING:
    from edge.datasets.model import Dataset
    from trainer.classify import Embedder
    from trainer.pipeline import TrainSpec

MAX_PARITY_IMAGES = 16
MAX_CALIBRATION_IMAGES = 300


# Views embedded per run when the images are few (about what 25 photos x 8 views cost): the extra crop views help
# most where there are fewest photos, and a run of 75 photos keeps image + mirror (its 60 s budget).
VIEW_BUDGET = 200


def views_for(n_images: int, requested: int | None, zones: bool = False) -> int:
    """Views per training image (trainer.classify.training_views): what `requested` says, else image + mirror for
    zone crops (a crop of a zone can cut off the gap it is labelled by), else as many of the fixed multi-crop views
    as VIEW_BUDGET allows for `n_images`, at least image + mirror."""
    from trainer.classify import MULTI_CROP_VIEWS

    if requested:
        return max(1, requested)
    if zones:
        return 2
    # Measured on grocery5 test/ (docs/TRAINING.md): 8 views at 5 photos per class +4 points over image + mirror;
    # at 15 per class no gain, so the budget keeps those runs at 2 views.
    return min(MULTI_CROP_VIEWS, max(2, VIEW_BUDGET // max(1, n_images)))


@dataclass
class _Features:
    """What every fit of a run reuses: the embeddings of every view of the pool's images."""

    pool: list[int]
    row: dict[int, int]  # item -> row in `per_sample`
    views: int
    per_sample: np.ndarray  # [pool, views, dim]
    labels: np.ndarray  # [pool]
    fine_tune: bool
    trunk_out: np.ndarray | None  # [pool, views, C, H, W] float16 when fine-tuning


class ClassificationRecipe:
    """Classification of whole images or zone crops (see the module docstring)."""

    task = "classification"
    # The embedding output (manifest outputs.embedding) feeds the studio's similarity to labelled examples.
    outputs: ClassificationOutputs | DetectionOutputs = ClassificationOutputs(
        logits="logits", activation="softmax", embedding="embedding"
    )
    default_folds = 5
    spread_metrics = TASK_METRICS["classification"]
    parity_images = MAX_PARITY_IMAGES
    calibration_images = MAX_CALIBRATION_IMAGES
    parity_header: dict[str, Any] = {"tolerance": FP32_TOLERANCE}

    def __init__(self, spec: TrainSpec, scratch: Path) -> None:
        self.spec = spec
        self.scratch = scratch
        self._images: dict[Path, np.ndarray] = {}
        self._features: _Features | None = None
        self._embedder: Embedder | None = None
        self._weights: Any = None
        self._input_spec: Any = None
        self._rng = np.random.default_rng(spec.seed)

    # ------------------------------------------------------------------------------------------ data

    def prepare(self, dataset: Dataset, progress: FitProgress) -> TaskData:
        """Samples (tags or zone crops), the hold-out split; then the backbone with its weights."""
        from trainer.backbones import build_backbone
        from trainer.classify import Embedder, input_spec_for, seed_everything
        from trainer.data import classification_samples, dataset_sha256, sample_image, split_classification

        spec = self.spec
        labels, samples, warnings = classification_samples(dataset, spec.zones)
        split = split_classification(
            labels, samples, seed=spec.seed, min_per_label=spec.min_per_label, warnings=warnings
        )
        alert_labels = check_alert_labels(spec.alert_labels, labels)
        items = split.train + split.val + split.test
        n_train, n_fit = len(split.train), len(split.train) + len(split.val)
        seed_everything(spec.seed, spec.threads)
        progress(0.5, f"building {spec.backbone}")
        backbone = build_backbone(spec.backbone, spec.weights, cache_dir=spec.weights_cache)
        self._weights = backbone.weights_info
        assert self._weights is not None
        if self._weights.warning:
            progress(0.9, f"WARNING: {self._weights.warning}")  # the job status shows it while training
        aspect = None
        if spec.zones:
            shapes = [sample_image(s, self._images).shape for s in items[:: max(1, len(items) // 24)]]
            aspect = float(np.median([w / max(1, h) for h, w, *_ in shapes]))
        self._input_spec = input_spec_for(spec.backbone, spec.input_size, aspect)
        self._embedder = Embedder(backbone).eval()
        return TaskData(
            labels=labels,
            items=items,
            groups=[s.group for s in items],
            strata=[s.label for s in items],
            split=HoldoutSplit(
                list(range(n_train)), list(range(n_train, n_fit)), list(range(n_fit, len(items))), split.split_source
            ),
            dataset=DatasetInfo(sha256=dataset_sha256(labels, items), counts=split.counts()),
            alert_labels=alert_labels,
            warnings=split.warnings,
        )

    def image(self, data: TaskData, item: int) -> np.ndarray:
        """The sample's pixels (its zone crop when it has one), decoded images shared across the run."""
        from trainer.data import sample_image

        return sample_image(data.items[item], self._images)

    def split_report(
        self, data: TaskData, source: str, train: list[int], val: list[int], test: list[int]
    ) -> dict[str, Any]:
        """Samples per label on each side."""

        def counts(items: list[int]) -> dict[str, int]:
            counter = Counter(data.items[i].label for i in items)
            return {lab: counter.get(k, 0) for k, lab in enumerate(data.labels)}

        return {"source": source, "train": counts(train), "val": counts(val), "test": counts(test)}

    # ------------------------------------------------------------------------------------------ training

    def prepare_pool(self, data: TaskData, train: list[int], val: list[int], progress: FitProgress) -> None:
        """Embed every view of the pool's images (`data.pool`) once, before the run's first fit; `train` and `val`
        (the shipped model's) decide whether fine-tuning runs, which changes what is cached."""
        from trainer.classify import (
            FINE_TUNE_MIN_PER_LABEL,
            FINE_TUNE_MODULES,
            embed_images,
            tail_embeddings,
            training_views,
        )

        spec = self.spec
        pool = data.pool or train + val
        assert self._embedder is not None and self._weights is not None
        views = views_for(len(pool), spec.views, zones=bool(spec.zones))
        images: list[np.ndarray] = []
        for item in pool:
            progress.check()
            base = self.image(data, item)
            images.extend(training_views(base, views, self._rng))
        counter = Counter(data.items[i].label for i in train)
        min_train = min(counter.get(k, 0) for k in range(len(data.labels)))
        fine_tune = (
            spec.fine_tune
            if spec.fine_tune is not None
            else (not self._weights.random and min_train >= FINE_TUNE_MIN_PER_LABEL)
        )
        fine_tune = bool(fine_tune and val)
        progress(0.02, f"embedding {len(images)} views of {len(pool)} images")
        total = len(images)
        kwargs: dict[str, Any] = {
            "on_batch": lambda done: progress(0.02 + 0.8 * done / total, f"embedded {done}/{total}"),
            "should_cancel": progress.cancelled,
            "threads": spec.threads,
        }
        trunk_out = None
        if fine_tune:
            # Cache what the frozen part of the trunk makes of every view; the tail and head then train on it.
            trunk, tail = self._embedder.split(FINE_TUNE_MODULES[spec.backbone])
            trunk_out = embed_images(trunk, images, self._input_spec, onnx_dir=self.scratch / "trunk", **kwargs).astype(
                np.float16
            )
            embeddings = tail_embeddings(tail, trunk_out)
            trunk_out = trunk_out.reshape(len(pool), views, *trunk_out.shape[1:])
        else:
            embeddings = embed_images(
                self._embedder, images, self._input_spec, onnx_dir=self.scratch / "embedder", **kwargs
            )
        del images
        self._features = _Features(
            pool=list(pool),
            row={item: r for r, item in enumerate(pool)},
            views=views,
            per_sample=embeddings.reshape(len(pool), views, embeddings.shape[1]),
            labels=np.array([data.items[i].label for i in pool], dtype=np.int64),
            fine_tune=fine_tune,
            trunk_out=trunk_out,
        )

    def fit(self, data: TaskData, train: list[int], val: list[int], progress: FitProgress) -> TrainedModel:
        """Fit the head (and, when fine-tuning, the tail modules) on the cached embeddings of train; val stops it.

        The first fit of a run embeds `data.pool` (every item any fit of the run trains on).
        """
        import torch

        from trainer.classify import (
            FINE_TUNE_MODULES,
            ClassifierWithEmbedding,
            fine_tune_tail,
            tail_embeddings,
            train_head,
        )

        spec = self.spec
        if self._features is None:
            self.prepare_pool(data, train, val, progress)
        f = self._features
        assert f is not None and self._embedder is not None and self._weights is not None
        missing = [i for i in train + val if i not in f.row]
        if missing:
            raise ValueError(f"items {missing[:5]} were not in the run's pool of embedded images")
        tr = np.array([f.row[i] for i in train], dtype=np.int64)
        va = np.array([f.row[i] for i in val], dtype=np.int64)
        both = np.concatenate([tr, va])
        dim = f.per_sample.shape[2]
        views = f.views
        train_x = f.per_sample[tr].reshape(-1, dim)
        train_y = np.repeat(f.labels[tr], views)
        val_x = f.per_sample[va, 0]  # validation judges plain images, as the device sees them
        val_y = f.labels[va]

        def on_step(done: int, total: int, loss: float) -> None:
            progress(0.82 + 0.08 * done / max(1, total), "fitting head", epoch=done, epochs=total, loss=loss)

        def fit_head(refit: bool) -> Any:
            return train_head(
                train_x,
                train_y,
                val_x,
                val_y,
                len(data.labels),
                seed=spec.seed,
                epochs=spec.epochs,
                refit_x=f.per_sample[both].reshape(-1, dim) if refit else None,
                refit_y=np.repeat(f.labels[both], views) if refit else None,
                on_step=on_step,
                should_cancel=progress.cancelled,
                views=views,  # each image's views are one cross-validation group
            )

        # Fine-tuning is judged on validation, so its starting head must not have seen validation (no refit).
        fit = fit_head(refit=not f.fine_tune)
        head = fit.head
        embedder: Embedder = self._embedder
        fine_tune_info: dict[str, Any] = {"used": False}
        if f.fine_tune and f.trunk_out is not None:
            # Each fit tunes its own copy: the folds of k-fold must not train the shipped model's tail.
            embedder = copy.deepcopy(self._embedder)
            _, tail = embedder.split(FINE_TUNE_MODULES[spec.backbone])
            cached = f.trunk_out
            shape = cached.shape[2:]

            def on_ft_step(done: int, total: int, loss: float) -> None:
                progress(0.9 + 0.1 * done / max(1, total), "fine-tuning", epoch=done, epochs=total, loss=loss)

            ft = fine_tune_tail(
                tail,
                head,
                cached[tr].reshape(-1, *shape),
                train_y,
                cached[va, 0],
                val_y,
                seed=spec.seed,
                on_step=on_ft_step,
                should_cancel=progress.cancelled,
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
                train_plain = tail_embeddings(tail, cached[tr, 0])
            else:
                fit = fit_head(refit=True)  # the frozen-trunk path with its usual refit on train + validation
                head = fit.head
                embedder = self._embedder
                train_plain = f.per_sample[tr, 0]
        else:
            train_plain = f.per_sample[tr, 0]
        model = ClassifierWithEmbedding(embedder, head).eval()
        with torch.no_grad():
            train_logits = head(torch.from_numpy(np.ascontiguousarray(train_plain))).numpy()
        train_accuracy = float((train_logits.argmax(1) == f.labels[tr]).mean())
        warnings = []
        if train_accuracy >= 0.999:
            warnings.append(
                "100% accuracy on the training images means nothing (a model can memorise 15 images); "
                "judge it by the test metrics"
            )
        return TrainedModel(
            module=model,
            input_spec=self._input_spec,
            output_names=["logits", "embedding"],
            fit_items=list(train) + list(val),
            weights_source=self._weights.source,
            weights_sha256=self._weights.sha256,
            weights_warning=self._weights.warning,
            report={
                "train_accuracy": train_accuracy,
                "training": {
                    "views_per_image": views,
                    "head": {"kind": fit.head_kind, "c": fit.c, "cv_folds": fit.cv_folds, "cv_log_loss": fit.cv},
                    "best_epoch": fit.best_epoch,
                    "epochs_run": fit.epochs_run,
                    "train_loss": fit.train_loss,
                    "val_loss": fit.val_loss,
                    "val_accuracy": fit.val_accuracy,
                    "seed": spec.seed,
                    "zones": [z.id for z in spec.zones] if spec.zones else None,
                    "fine_tune": fine_tune_info,
                },
            },
            warnings=warnings,
        )

    # ------------------------------------------------------------------------------------------ evaluation

    def predict(self, model: TrainedModel, data: TaskData, items: Sequence[int]) -> list[Any]:
        """Probabilities per item from the torch model (preprocessing and softmax as on the device)."""
        import torch

        from edge.runtime.postprocess import softmax
        from trainer.classify import Classifier, embed_images

        f = self._features
        module = model.module
        if f is not None and getattr(module, "embedder", None) is self._embedder and all(i in f.row for i in items):
            # The frozen backbone already embedded these images (their plain view) for the run: only the head runs.
            plain = f.per_sample[[f.row[i] for i in items], 0]
            with torch.no_grad():
                logits = module.head(torch.from_numpy(np.ascontiguousarray(plain))).numpy()  # type: ignore[operator]
        else:
            if isinstance(module, Classifier):  # logits only (the exported module also returns its embedding)
                module = Classifier(module.embedder, module.head)
            logits = embed_images(module, [self.image(data, i) for i in items], model.input_spec)
        return list(softmax(logits.astype(np.float64)))

    def predict_exported(
        self, bundle_dir: Path, manifest: Manifest, data: TaskData, items: Sequence[int], engine: str = "onnxruntime"
    ) -> list[Any]:
        """Probabilities per item from the exported model through the device's wrapper (ONNX Runtime)."""
        from trainer.evaluate import predict_probabilities

        images = [self.image(data, i) for i in items]
        probs = predict_probabilities(
            bundle_dir, images, len(images), engine=engine, manifest=manifest, threads=self.spec.threads
        )
        return list(probs)

    def evaluate(self, data: TaskData, items: Sequence[int], predictions: list[Any], model: TrainedModel) -> Evaluation:
        """Confusion matrix, per-label P/R/F1, PR curves; the threshold at which alerts reach the target precision."""
        from trainer.evaluate import classification_metrics

        n = len(data.labels)
        probs = np.stack(predictions) if predictions else np.zeros((0, n))
        metrics = classification_metrics(
            data.labels,
            np.array([data.items[i].label for i in items], dtype=np.int64),
            probs,
            alert_labels=data.alert_labels or default_alert_labels(data.labels),
            target_precision=self.spec.target_precision,
        )
        metrics["mistakes"] = classification_mistakes(data, items, probs)
        warnings = []
        threshold = metrics["suggested_score_threshold"]
        if threshold is None:
            warnings.append(
                f"no score threshold reaches precision {self.spec.target_precision:.2f} on the test split; "
                "the manifest keeps 0.5: add images where the model is wrong"
            )
            threshold = 0.5
        headline = {
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "test_samples": metrics["samples"],
            "train_accuracy": model.report["train_accuracy"],
        }
        return Evaluation(metrics, headline, float(threshold), warnings, {"per_label": metrics["per_label"]})

    def parity(
        self, engine: str, reference: Infer, exported: Infer, tensor: np.ndarray, images: list[np.ndarray]
    ) -> tuple[dict[str, Any], str | None, str | None]:
        """Logits against torch: FP32 within tolerance and the same top-1; reduced precision keeps the top-1."""
        stats = compare_logits(reference(tensor)["logits"], exported(tensor)["logits"])
        if engine in ("onnxruntime", "openvino"):
            if stats["relative_diff"] > FP32_TOLERANCE or stats["top1_agreement"] < 1.0:
                return stats, f"{engine}: {stats}", None
            return stats, None, None
        if stats["top1_agreement"] >= REDUCED_TOP1_MIN:
            return stats, None, None
        message = (
            f"{engine}: top-1 agreement with the trained model {stats['top1_agreement']:.2f} "
            f"< {REDUCED_TOP1_MIN} on {len(tensor)} images"
        )
        # FP16 is what a device may pick by itself, so it must hold; INT8 is opt-in and reported.
        if engine == "openvino_fp16" and len(tensor) >= MIN_IMAGES_TO_FAIL_REDUCED:
            return stats, message, None
        return stats, None, message + "; prefer the FP32 model"


MAX_MISTAKES = 60  # the device's mistakes gallery shows at most this many


def classification_mistakes(data: TaskData, items: Sequence[int], probs: np.ndarray) -> list[dict[str, Any]]:
    """The evaluated items the model got wrong, most confident first: the image (its dataset name), the zone and its
    box for a zone crop, the true and the predicted label and the predicted label's probability (issue 11)."""
    wrong = []
    for row, item_index in enumerate(items):
        item = data.items[item_index]
        predicted = int(np.argmax(probs[row]))
        if predicted == item.label:
            continue
        image, _, zone = str(getattr(item, "name", "")).partition("#")
        crop = getattr(item, "crop", None)
        wrong.append(
            {
                "image": image,
                "zone": zone or None,
                "zone_box": dict(zip(("x1", "y1", "x2", "y2"), (round(float(v), 4) for v in crop), strict=True))
                if crop
                else None,
                "true": data.labels[item.label],
                "predicted": data.labels[predicted],
                "score": round(float(probs[row][predicted]), 4),
            }
        )
    wrong.sort(key=lambda m: -m["score"])
    return wrong[:MAX_MISTAKES]
