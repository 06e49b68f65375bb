"""Device inference cost of the classifier per image or zone crop, per backbone and input size (ONNX Runtime).

Exports the classifier exactly as a run does (trainer.classify.ClassifierWithEmbedding: embedder + a 5-way linear
head, outputs logits and embedding; the head costs nothing) and times single-image calls with 2 intra-op threads,
two ways: a plain ONNX Runtime session (ONNX Runtime's defaults) and the device's own engine
(`edge.runtime.engines.open_engine("onnxruntime")`, the session options the device runs with). Per way: the median
and fastest wall time and the median process CPU time per call over `--runs` calls. On a machine shared with other
work the wall time swings with the load (printed): time it under /work/coord/quiet.

    .venv/bin/python benchmarks/classifier_inference.py [--sizes 224 320 384 768x128] [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np


def main() -> int:
    """Print one JSON line per (backbone, size)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--sizes", nargs="+", default=["224", "320", "384", "768x128"], help="N (square) or WxH")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import onnxruntime as ort
    from torch import nn

    from edge.runtime.engines import open_engine
    from trainer.backbones import build_backbone
    from trainer.classify import ClassifierWithEmbedding, Embedder
    from trainer.export import export_onnx

    def timed(call: Callable[[], object]) -> dict[str, float]:
        call()  # warm-up
        wall, cpu = [], []
        for _ in range(args.runs):
            w0, c0 = time.perf_counter(), time.process_time()
            call()
            wall.append((time.perf_counter() - w0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        return {
            "median_wall_ms": round(statistics.median(wall), 2),
            "min_wall_ms": round(min(wall), 2),
            "median_cpu_ms": round(statistics.median(cpu), 2),
        }

    for name in args.backbones:
        embedder = Embedder(build_backbone(name, None)).eval()
        model = ClassifierWithEmbedding(embedder, nn.Linear(embedder.dim, 5)).eval()
        for size in args.sizes:
            width, _, height = size.partition("x")
            w, h = int(width), int(height or width)
            load = os.getloadavg()[0]
            x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
            with tempfile.TemporaryDirectory() as tmp:
                path = export_onnx(model, Path(tmp) / "m.onnx", (h, w), ["logits", "embedding"])
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                plain = timed(partial(session.run, None, {"input": x}))
                engine = open_engine("onnxruntime", path, args.threads)
                device = timed(partial(engine.infer, {"input": x}))
            row = {"backbone": name, "input": size, "threads": args.threads, "load": round(load, 2)}
            row |= {f"ort_{k}": v for k, v in plain.items()} | {f"device_{k}": v for k, v in device.items()}
            row["load_after"] = round(os.getloadavg()[0], 2)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
