"""Benchmark: few-shot classification on grocery5, 15 training images per class, 3 seeds.

Data: ../shared/datasets/grocery5 (GroceryStoreDataset subset, MIT), read with the project's folder-per-class
reader. Its 5 classes are the folder names that directly hold the images (Avocado, Banana, Kiwi, Lemon under
Fruit/, Carrots under Vegetables/); the class name is that folder's name, nothing is merged or renamed.

Picking: for each seed, 15 images per class are drawn at random (numpy default_rng(seed), from the class's images
in the dataset's train/ folder, sorted by file name before drawing). Those 75 images are the only training
material (the pipeline takes 2 of each class's 15 for early stopping and then refits on all 15). Every other
grocery5 image (the rest of train/ and all of val/, 168 images) is the test set, evaluated with the exported
ONNX model through ONNX Runtime. Weights: the shared ImageNet SqueezeNet 1.1 (torchvision key names).

A run's time is the whole `run_training` call: read images, embed, fit, export ONNX + OpenVINO FP32/FP16, parity
check, evaluate, write the report, sign and write the bundle. Bars: median accuracy >= 0.90, median time <= 60 s.

    .venv/bin/python benchmarks/train_classification.py [--seeds 0 1 2] [--backbone squeezenet1_1] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.datasets.model import Dataset

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
GROCERY = SHARED / "datasets" / "grocery5"
WEIGHTS = SHARED / "weights" / "squeezenet1_1_torchvision" / "squeezenet1_1_imagenet_norm_fp32.npz"
PER_CLASS = 15


def pick(seed: int, per_class: int = PER_CLASS) -> Dataset:
    """grocery5 with `per_class` random train/ images per class marked train and every other image marked test."""
    from edge.datasets.formats import read_dataset

    ds = read_dataset(GROCERY, "folders")
    rng = np.random.default_rng(seed)
    for label in ds.label_names:
        pool = sorted((s for s in ds.samples if s.tags == [label] and s.split == "train"), key=lambda s: s.name)
        chosen = {id(pool[i]) for i in rng.choice(len(pool), per_class, replace=False)}
        for s in ds.samples:
            if s.tags == [label]:
                s.split = "train" if id(s) in chosen else "test"
    return ds


def main() -> int:
    """Run the benchmark, print per-seed results and medians as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbone", default="squeezenet1_1")
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--per-class", type=int, default=PER_CLASS, help="training images per class (default 15)")
    parser.add_argument("--fine-tune", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--views", type=int, default=None, help="views per training image (default: pipeline's)")
    args = parser.parse_args()
    if not GROCERY.is_dir():
        print(f"{GROCERY} is absent: this benchmark needs the shared datasets", file=sys.stderr)
        return 2
    from trainer.pipeline import TrainSpec, run_training

    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-cls-") as tmp:
        for seed in args.seeds:
            ds = pick(seed, args.per_class)
            spec = TrainSpec(
                data=GROCERY,
                fmt="folders",
                task="classification",
                out=Path(tmp) / f"seed{seed}",
                backbone=args.backbone,
                weights=args.weights,
                seed=seed,
                threads=args.threads,
                views=args.views,
                fine_tune={"auto": None, "on": True, "off": False}[args.fine_tune],
            )
            started, cpu_started = time.perf_counter(), time.process_time()
            result = run_training(spec, dataset=ds)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            split = result.report["split"]
            run = {
                "seed": seed,
                "accuracy": round(result.metrics["accuracy"], 4),
                "macro_f1": round(result.metrics["macro_f1"], 4),
                "fine_tune": result.report["training"]["fine_tune"],
                "train_images": sum(split["train"].values()) + sum(split["val"].values()),
                "test_images": sum(split["test"].values()),
                "seconds": {**result.seconds, "wall": round(wall, 2), "cpu": round(cpu, 2)},
            }
            runs.append(run)
            print(json.dumps(run), flush=True)
    summary = {
        "benchmark": f"grocery5 classification, {args.per_class} images per class",
        "backbone": args.backbone,
        "seeds": args.seeds,
        "median_accuracy": statistics.median(r["accuracy"] for r in runs),
        "median_macro_f1": statistics.median(r["macro_f1"] for r in runs),
        "median_seconds": statistics.median(r["seconds"]["wall"] for r in runs),
        "median_cpu_seconds": statistics.median(r["seconds"]["cpu"] for r in runs),
        "median_train_seconds": statistics.median(r["seconds"]["train"] for r in runs),
        "median_export_seconds": statistics.median(r["seconds"]["export"] for r in runs),
        "median_evaluate_seconds": statistics.median(r["seconds"]["evaluate"] for r in runs),
        "accuracy_bar_met": statistics.median(r["accuracy"] for r in runs) >= 0.90,
        "time_bar_met": statistics.median(r["seconds"]["wall"] for r in runs) <= 60.0,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
