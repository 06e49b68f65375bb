"""Benchmark: how good are the studio's suggestions on real photos (model-assisted labelling, issue 13)?

classification: one bundle trained as `shelfwatch train` does on 15 grocery5 train/ photos per class (seed 0,
EfficientNet-Lite0, k-fold evaluation, benchmarks/train_classification.py's pick()); its suggestions
(edge.assist.suggest, ONNX Runtime through the device wrapper) for all 105 photos of test/: how often the top
suggestion is the photo's class, and for "accept all above t" how many photos it accepts (coverage) and how many of
those are right (precision), at the bundle's default t (manifest thresholds.score) and a few others.

detection: the same for empty_shelf with a detector trained on 15 photos (benchmarks/train_detection.py's split):
a suggested box is right when it matches a ground-truth box of its label at IoU >= 0.5 (each box once); top
suggestion = the best-scoring box of a photo; precision of accept-all-above-t over every box scoring >= t.

    .venv/bin/python benchmarks/assist_suggestions.py classification [--threads 2]
    .venv/bin/python benchmarks/assist_suggestions.py detection [--threads 2]
    .venv/bin/python benchmarks/assist_suggestions.py deploy [--threads 2]   # shuffled labels vs the running one
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


def classification(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from benchmarks.train_classification import GROCERY, pick
    from edge.assist.suggest import suggest
    from edge.datasets.formats import read_dataset
    from edge.runtime.wrappers import load_model
    from trainer.data import load_image
    from trainer.pipeline import TrainSpec, run_training
    from trainer.weight_signatures import resolve_backbone

    ds = pick(0, 15)
    spec = TrainSpec(
        data=GROCERY, fmt="folders", task="classification", out=tmp / "cls",
        backbone=resolve_backbone(None, "imagenet"), weights="imagenet", seed=0, threads=args.threads,
        min_per_label=10, evaluation="kfold",
    )  # fmt: skip
    started = time.perf_counter()
    result = run_training(spec, dataset=ds)
    train_s = time.perf_counter() - started
    model = load_model(result.bundle_dir, engine="onnxruntime", threads=args.threads, batch_budget_ms=None)
    test = read_dataset(GROCERY / "test", "folders")
    truth = [s.tags[0] for s in test.samples]
    suggestions = []
    for start in range(0, len(test.samples), 16):
        chunk = test.samples[start : start + 16]
        suggestions += suggest(model, [load_image(s.path) for s in chunk])
    top = [s.tags[0] for s in suggestions]
    default_t = model.manifest.thresholds.score
    rows = {}
    for t in sorted({default_t, *THRESHOLDS}):
        accepted = [(s.tags[0]["label"], y) for s, y in zip(suggestions, truth, strict=True) if s.tags[0]["score"] >= t]
        right = sum(1 for p, y in accepted if p == y)
        rows[f"{t:g}"] = {
            "accepted": len(accepted),
            "coverage": round(len(accepted) / len(truth), 3),
            "precision": round(right / len(accepted), 3) if accepted else None,
        }
    return {
        "benchmark": "grocery5 test/ suggestions, 15 per class",
        "photos": len(truth),
        "top_suggestion_accuracy": round(
            sum(1 for t, y in zip(top, truth, strict=True) if t["label"] == y) / len(truth), 3
        ),
        "default_t": default_t,
        "accept_all_above_t": rows,
        "train_seconds": round(train_s, 1),
        "version": model.version,
    }


def deploy(args: argparse.Namespace, tmp: Path, cross_validated: bool = False) -> dict[str, Any]:
    """A version trained on shuffled labels against the running, honestly trained one, on the same images: the
    store holds the 75 training photos and grocery5 test/ as its test split; the deploy decision is the device's.

    cross_validated (`deploy-kfold`): a project without a test split. grocery5 test/ (105 photos of other visits)
    is added after the running version is installed, untagged-split; the shuffled version trains on all 180 photos
    (k-fold), so the device compares its out-of-fold predictions with the running version on those 105."""
    import random
    import time
    from dataclasses import replace

    from benchmarks.train_classification import GROCERY, pick
    from edge.assist.compare import compare
    from edge.datasets.formats import read_dataset
    from edge.model_repository import ModelRepository
    from edge.runtime.wrappers import load_model
    from edge.store import DatasetStore
    from edge.training.deploy import decide_deployment
    from tests.helpers.tiny_bundle import ensure_keys
    from trainer.pipeline import TrainSpec, run_training
    from trainer.weight_signatures import resolve_backbone

    private, public = ensure_keys(tmp / "keys")
    good = pick(0, 15)
    shuffled = pick(0, 15)
    test = read_dataset(GROCERY / "test", "folders")
    for s in test.samples:
        s.split = "auto" if cross_validated else s.split
    if cross_validated:
        shuffled.samples += test.samples
    labels = [s.tags[0] for s in shuffled.samples]
    random.Random(0).shuffle(labels)
    shuffled.samples = [replace(s, tags=[label]) for s, label in zip(shuffled.samples, labels, strict=True)]
    bundles = {}
    for name, ds in (("good", good), ("shuffled", shuffled)):
        spec = TrainSpec(
            data=GROCERY, fmt="folders", task="classification", out=tmp / name,
            backbone=resolve_backbone(None, "imagenet"), weights="imagenet", seed=0, threads=args.threads,
            min_per_label=10, evaluation="kfold", signing_key=private,
        )  # fmt: skip
        bundles[name] = run_training(spec, dataset=ds)
    store = DatasetStore(tmp / "data")
    for label in good.label_names:
        store.create_label(label)
    for s in good.samples:
        record = store.add_image(s.path.read_bytes(), filename=s.name)
        store.set_annotations(record.id, s.tags, [])
    repo = ModelRepository(tmp / "models", [str(public)])
    running = repo.install(bundles["good"].bundle_dir, activate=True, project=1)
    time.sleep(1.1)  # install and image times count seconds: the photos below come after it
    for s in test.samples:
        record = store.add_image(s.path.read_bytes(), filename=s.name, split="auto" if cross_validated else "test")
        store.set_annotations(record.id, s.tags, [])
    new = repo.install(bundles["shuffled"].bundle_dir, activate=False, project=1)
    installed = next(r["installed"] for r in repo.list_versions(project=1) if r["version"] == running.version)

    def loader(path: Path) -> Any:
        return load_model(path, engine="onnxruntime", threads=args.threads, batch_budget_ms=None)

    result = compare(store, 1, "accuracy", repo.path_of(new.version), repo.path_of(running.version), loader, installed)
    assert result is not None
    decision = decide_deployment(new.version, new.metrics, "accuracy", 0.85, comparison=result.as_dict())
    return {
        "benchmark": "deploy only when better: shuffled labels vs the running version, grocery5"
        + (" (cross-validated project)" if cross_validated else ""),
        "shuffled_kfold_accuracy": new.metrics.get("accuracy"),
        "comparison": result.as_dict(),
        "activated": decision.activate,
        "decision": decision.reason,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["classification", "detection", "deploy", "deploy-kfold"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-assist-") as tmp:
        if args.task == "classification":
            out = classification(args, Path(tmp))
        elif args.task in ("deploy", "deploy-kfold"):
            out = deploy(args, Path(tmp), cross_validated=args.task == "deploy-kfold")
        else:
            out = detection(args, Path(tmp))
    print(json.dumps(out))
    return 0


def _iou(a: dict[str, float], b: Any) -> float:
    ix = max(0.0, min(a["x2"], b.x2) - max(a["x1"], b.x1))
    iy = max(0.0, min(a["y2"], b.y2) - max(a["y1"], b.y1))
    inter = ix * iy
    union = (a["x2"] - a["x1"]) * (a["y2"] - a["y1"]) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def _hits(boxes: list[dict[str, Any]], truth: list[Any]) -> list[bool]:
    """Whether each suggested box (best first) matches a still-unmatched ground-truth box of its label (IoU 0.5)."""
    used = [False] * len(truth)
    out = []
    for box in boxes:
        best, best_iou = -1, 0.5
        for j, gt in enumerate(truth):
            iou = _iou(box, gt)
            if not used[j] and gt.label == box["label"] and iou >= best_iou:
                best, best_iou = j, iou
        if best >= 0:
            used[best] = True
        out.append(best >= 0)
    return out


def detection(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from dataclasses import replace

    from benchmarks.train_detection import DATASET, read_empty_shelf, split_by_photo
    from edge.assist.suggest import suggest
    from edge.datasets.model import Dataset, LabelInfo
    from edge.runtime.wrappers import load_model
    from trainer.data import load_image
    from trainer.pipeline import TrainSpec, run_training
    from trainer.weight_signatures import resolve_backbone

    labels, samples = read_empty_shelf(DATASET)
    train, val, test = split_by_photo(samples, 15, 0)
    dataset = Dataset(labels=[LabelInfo(n) for n in labels])
    for split, part in zip(("train", "val", "test"), (train, val, test), strict=True):
        dataset.samples.extend(replace(s, split=split) for s in part)
    spec = TrainSpec(
        data=DATASET, fmt="yolo", task="detection", out=tmp / "det", backbone=resolve_backbone(None, "imagenet"),
        weights="imagenet", seed=0, threads=args.threads,
    )  # fmt: skip
    started = time.perf_counter()
    result = run_training(spec, dataset=dataset)
    train_s = time.perf_counter() - started
    model = load_model(result.bundle_dir, engine="onnxruntime", threads=args.threads, batch_budget_ms=None)
    suggestions = []
    for start in range(0, len(test), 8):
        suggestions += suggest(model, [load_image(s.path) for s in test[start : start + 8]])
    default_t = model.manifest.thresholds.score
    judged = [(s.boxes, _hits(s.boxes, t.boxes), len(t.boxes)) for s, t in zip(suggestions, test, strict=True)]
    with_truth = [(b, h) for b, h, n in judged if n > 0]
    top_right = sum(1 for b, h in with_truth if b and h[0])
    rows = {}
    for t in sorted({default_t, *THRESHOLDS}):
        taken = [hit for boxes, hits, _ in judged for box, hit in zip(boxes, hits, strict=True) if box["score"] >= t]
        found = sum(taken)
        rows[f"{t:g}"] = {
            "accepted_boxes": len(taken),
            "precision": round(found / len(taken), 3) if taken else None,
            "recall": round(found / max(1, sum(n for _, _, n in judged)), 3),
        }
    return {
        "benchmark": "empty_shelf suggestions, detector trained on 15 photos",
        "test_photos": len(test),
        "ground_truth_boxes": sum(n for _, _, n in judged),
        "top_suggestion_right": round(top_right / max(1, len(with_truth)), 3),
        "default_t": default_t,
        "accept_all_above_t": rows,
        "test_map50_report": result.metrics.get("map50"),
        "train_seconds": round(train_s, 1),
    }


if __name__ == "__main__":
    raise SystemExit(main())
