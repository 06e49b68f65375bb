"""ONNX Runtime vs OpenVINO (and its INT8 IR when the bundle has one) on one real bundle: what `model.engine: auto`
should prefer (docs/BUNDLE.md) and the INT8 speed-up (docs/BENCHMARKS.md, issue 15).

    .venv/bin/python benchmarks/engine_choice.py --bundle DIR --images DIR [--threads N] [--repeats 5]

Per engine, interleaved: `repeats` rounds of 3 warm-up calls, 30 single-image `predict` calls and 10 batches of 4;
prints the median of the per-round medians of the engine's own time (`model.timing.infer_ms`) as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import cv2
import numpy as np

from edge.runtime.engines import OPENVINO_INT8_XML
from edge.runtime.wrappers import load_model

ENGINES: tuple[str, ...] = ("onnxruntime", "openvino")


def read_images(folder: Path, limit: int = 8) -> list[np.ndarray]:
    """Up to `limit` JPEG/PNG images found under folder."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [img for img in (cv2.imread(str(p)) for p in paths[:limit]) if img is not None]
    if not images:
        raise SystemExit(f"no images under {folder}")
    return images


def main() -> None:
    """Measure both engines and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    images = read_images(args.images)
    engines = [*ENGINES, *(["openvino_int8"] if (args.bundle / OPENVINO_INT8_XML).is_file() else [])]
    models = {engine: load_model(args.bundle, engine, args.threads) for engine in engines}
    single: dict[str, list[float]] = {engine: [] for engine in engines}
    batch: dict[str, list[float]] = {engine: [] for engine in engines}
    for _ in range(args.repeats):
        for engine, model in models.items():
            for _ in range(3):
                model.predict(images[0])
            times = []
            for i in range(30):
                model.predict(images[i % len(images)])
                times.append(model.timing.infer_ms)
            single[engine].append(statistics.median(times))
            times = []
            for _ in range(10):
                model.predict_batch(images[:4])
                times.append(model.timing.infer_ms)
            batch[engine].append(statistics.median(times))
    result = {
        engine: {
            "precision": models[engine].describe().get("precision"),
            "single_ms": round(statistics.median(single[engine]), 2),
            "batch4_ms": round(statistics.median(batch[engine]), 2),
            "single_ms_per_round": [round(x, 2) for x in single[engine]],
        }
        for engine in engines
    }
    faster = min(engines, key=lambda e: statistics.median(single[e]))
    out: dict[str, object] = {"bundle": str(args.bundle), "threads": args.threads, "faster": faster, "engines": result}
    if "openvino_int8" in result:  # engine time of FP32 / INT8: single images and batches of 4
        kinds = (("single", single), ("batch4", batch))
        ms = {e: {k: statistics.median(times[e]) for k, times in kinds} for e in engines}
        out["int8_speedup"] = {
            f"vs_{e}": {k: round(ms[e][k] / ms["openvino_int8"][k], 2) for k in ("single", "batch4")} for e in ENGINES
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
