"""Device inference cost of the classifier per image or zone crop, per backbone and input size (ONNX Runtime).

Exports the classifier exactly as a run does (trainer.classify.Classifier: embedder + a 5-way linear head; the head
costs nothing) and times single-image calls through ONNX Runtime with 2 intra-op threads: the median wall time
and the median process CPU time per call over `--runs` calls. On a machine shared with other work the wall time
swings with the load (printed); the CPU time says what one call costs the device's cores.

    .venv/bin/python benchmarks/classifier_inference.py [--sizes 224 320 384] [--runs 50]
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


def main() -> int:
    """Print one JSON line per (backbone, size)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 320, 384])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import onnxruntime as ort
    from torch import nn

    from trainer.backbones import build_backbone
    from trainer.classify import Classifier, Embedder
    from trainer.export import export_onnx

    for name in args.backbones:
        embedder = Embedder(build_backbone(name, None)).eval()
        model = Classifier(embedder, nn.Linear(embedder.dim, 5)).eval()
        for size in args.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                path = export_onnx(model, Path(tmp) / "m.onnx", (size, size), ["logits"])
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
                session.run(None, {"input": x})
                wall, cpu = [], []
                load = os.getloadavg()[0]
                for _ in range(args.runs):
                    w0, c0 = time.perf_counter(), time.process_time()
                    session.run(None, {"input": x})
                    wall.append((time.perf_counter() - w0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)
            row = {
                "backbone": name,
                "input": size,
                "threads": args.threads,
                "median_wall_ms": round(statistics.median(wall), 2),
                "min_wall_ms": round(min(wall), 2),
                "median_cpu_ms": round(statistics.median(cpu), 2),
                "load": round(load, 2),
            }
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
