"""Benchmark: the demo's 4-zone low-stock classifier, trained from 15 captures, tested on 100 later frames.

The camera is the demo's synthetic shelf (edge.cameras.synthetic, 1280x720, 4 rows, 60 s restock period), which
knows which rows are low at any time t (`ground_truth`). Captures are taken as a user would: 15 frames, one every
4 s from t = 0 (one restock cycle), each labelled from the ground truth the way the studio labels a capture (a
`low_stock` box over every low row's zone; rows without one fall to the dataset's `none` class; a capture with
no low row is tagged `none`). `shelfwatch train --zones` semantics: each capture gives one crop per zone, so 60
labelled crops. Default backbone and weights (no flags), seeds as given (they move the capture times by
`seed` seconds and seed the run).

Test: 100 later frames (t = 300 + 1.7 s * i: other phases of other cycles), each zone cut by the device pipeline's
own `crop_zone` and classified by the exported bundle through the device wrapper (ONNX Runtime); accuracy of
"low" vs the ground truth over the 400 zone crops. Also: run seconds, inference ms per zone crop (2 threads,
median of 30), and the load average. Bar: median accuracy >= 0.98; inference <= 15 ms per zone crop.

    .venv/bin/python benchmarks/train_synthetic_zones.py [--seeds 0 1 2] [--threads 2]
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

import cv2

CAPTURES = 15
TEST_FRAMES = 100
LOW = "low_stock"
NONE = "none"


def captures_dataset(shelf: object, times: list[float], folder: Path) -> object:
    """The captures at `times` as a Dataset of JPEGs on disk, labelled from the shelf's ground truth."""
    from edge.datasets.model import Box, Dataset, LabelInfo, Sample
    from edge.datasets.zone_crops import zone_box

    folder.mkdir(parents=True, exist_ok=True)
    zones = shelf.zones()  # type: ignore[attr-defined]
    ds = Dataset(labels=[LabelInfo(LOW), LabelInfo(NONE)])
    for i, t in enumerate(times):
        path = folder / f"capture-{i:02d}.jpg"
        cv2.imwrite(str(path), shelf.render(t), [cv2.IMWRITE_JPEG_QUALITY, 90])  # type: ignore[attr-defined]
        truth = shelf.ground_truth(t)  # type: ignore[attr-defined]
        boxes = [Box(LOW, *zone_box(z)) for z in zones if truth[z.id]]
        ds.samples.append(Sample(path, path.name, tags=[] if boxes else [NONE], boxes=boxes, split=None))
    return ds


def main() -> int:
    """Train and test per seed; one JSON line each and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbone", default=None, help="default: shelfwatch train's")
    parser.add_argument("--input-size", type=int, default=None)
    args = parser.parse_args()
    from edge.cameras.synthetic import SyntheticShelf
    from edge.pipeline.zone_scoring import Zone, crop_zone
    from edge.runtime.wrappers import load_model
    from trainer.pipeline import TrainSpec, run_training
    from trainer.weight_signatures import resolve_backbone

    backbone = resolve_backbone(args.backbone, "imagenet")
    shelf = SyntheticShelf(1280, 720, 4, 60.0, seed=0)
    zones = shelf.zones()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-zones-") as tmp:
        for seed in args.seeds:
            times = [seed + 4.0 * i for i in range(CAPTURES)]
            ds = captures_dataset(shelf, times, Path(tmp) / f"captures-{seed}")
            spec = TrainSpec(
                data=Path(tmp),
                fmt=None,
                task="classification",
                out=Path(tmp) / f"bundle-{seed}",
                backbone=backbone,
                weights="imagenet",
                seed=seed,
                threads=args.threads,
                input_size=args.input_size,
                zones=zones,
                alert_labels=[LOW],
            )
            load_before = round(os.getloadavg()[0], 2)
            started = time.perf_counter()
            result = run_training(spec, dataset=ds)  # type: ignore[arg-type]
            wall = time.perf_counter() - started
            model = load_model(result.bundle_dir, engine="onnxruntime", threads=args.threads)
            device_zones = [Zone(z.id, tuple((float(x), float(y)) for x, y in z.polygon), (LOW,)) for z in zones]
            right = total = 0
            crop_ms: list[float] = []
            for i in range(TEST_FRAMES):
                t = 300.0 + 1.7 * i
                frame = shelf.render(t)
                truth = shelf.ground_truth(t)
                for zone in device_zones:
                    crop = crop_zone(frame, zone)
                    began = time.perf_counter()
                    predicted = model.predict_batch([crop])[0].label
                    crop_ms.append((time.perf_counter() - began) * 1000)
                    right += int((predicted == LOW) == truth[zone.id])
                    total += 1
            run = {
                "seed": seed,
                "accuracy": round(right / total, 4),
                "zone_crops": total,
                "train_crops": CAPTURES * len(zones),
                "kfold_accuracy": round(result.metrics["accuracy"], 4),
                "input": result.report.get("base"),
                "seconds": {**result.seconds, "wall": round(wall, 2)},
                "inference_ms_per_zone_crop": round(statistics.median(crop_ms[-120:]), 2),
                "load": [load_before, round(os.getloadavg()[0], 2)],
            }
            runs.append(run)
            print(json.dumps(run), flush=True)
    summary = {
        "benchmark": "synthetic shelf, 4 zones, 15 captures -> 100 later frames",
        "backbone": backbone,
        "seeds": args.seeds,
        "median_accuracy": statistics.median(r["accuracy"] for r in runs),
        "min_accuracy": min(r["accuracy"] for r in runs),
        "median_seconds": statistics.median(r["seconds"]["wall"] for r in runs),
        "median_inference_ms_per_zone_crop": statistics.median(r["inference_ms_per_zone_crop"] for r in runs),
        "accuracy_bar_met": statistics.median(r["accuracy"] for r in runs) >= 0.98,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
