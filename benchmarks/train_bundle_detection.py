"""Benchmark: a full detection run through the training pipeline (train + export + evaluate + sign) on 15 photos.

`benchmarks/train_detection.py` (the detection package's benchmark) measures the detector itself; this one measures
what `shelfwatch train --task detection` does end to end: `trainer.pipeline.run_training` with the detector's
default schedule, ONNX + OpenVINO FP32/FP16 export, the parity check, evaluation through the device's runtime
wrapper on ONNX Runtime, report, signature and bundle.

Photos are picked exactly like train_detection.py: group the empty_shelf images by the prefix before `_jpg.rf.`,
shuffle the sorted group keys with `random.Random(seed)`, take one random copy of each of the first 15 groups for
training and one random copy of every other group for testing. The pipeline holds 2 of the 15 out for validation
(the score threshold is chosen there), so the detector trains on 13 photos.

    .venv/bin/python benchmarks/train_bundle_detection.py [--seeds 0 1 2] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DATASET = SHARED / "datasets" / "empty_shelf"
WEIGHTS = SHARED / "weights" / "squeezenet1_1_torchvision" / "squeezenet1_1_imagenet_norm_fp32.npz"
TRAIN_PHOTOS = 15


def main() -> int:
    """Run the seeds; print one JSON line per seed and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="detector epochs (default: the detector's)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if not DATASET.is_dir():
        print(f"{DATASET} is absent: this benchmark needs the shared datasets", file=sys.stderr)
        return 2
    from edge.datasets.formats import read_dataset
    from edge.datasets.model import Dataset
    from trainer.data import group_key
    from trainer.pipeline import TrainSpec, run_training

    full = read_dataset(DATASET, "yolo")
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-det-") as tmp:
        for seed in args.seeds:
            groups = defaultdict(list)
            for s in full.samples:
                groups[group_key(s.name)].append(s)
            rng = random.Random(seed)
            keys = sorted(groups)
            rng.shuffle(keys)
            picked = []
            for i, key in enumerate(keys):
                sample = rng.choice(sorted(groups[key], key=lambda s: s.name))
                sample.split = "train" if i < TRAIN_PHOTOS else "test"
                picked.append(sample)
            ds = Dataset(labels=list(full.labels), samples=picked)
            spec = TrainSpec(
                data=DATASET,
                fmt="yolo",
                task="detection",
                out=Path(tmp) / f"seed{seed}",
                weights=str(WEIGHTS),
                epochs=args.epochs,
                seed=seed,
                threads=args.threads,
            )
            started, cpu_started = time.perf_counter(), time.process_time()
            result = run_training(spec, dataset=ds)
            run = {
                "seed": seed,
                **{k: round(float(v), 4) for k, v in result.metrics.items()},
                "seconds": {
                    **result.seconds,
                    "wall": round(time.perf_counter() - started, 2),
                    "cpu": round(time.process_time() - cpu_started, 2),
                },
            }
            runs.append(run)
            print(json.dumps(run), flush=True)
    print(
        json.dumps(
            {
                "benchmark": "empty_shelf detection through run_training, 15 photos",
                "median_map50": statistics.median(r["map50"] for r in runs),
                "median_map50_95": statistics.median(r["map50_95"] for r in runs),
                "median_seconds": statistics.median(r["seconds"]["wall"] for r in runs),
                "map50_bar_met": statistics.median(r["map50"] for r in runs) >= 0.5,
                "time_bar_met": statistics.median(r["seconds"]["wall"] for r in runs) <= 300.0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
