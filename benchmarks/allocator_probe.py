"""What the device's allocator tuning and ONNX Runtime's arena cost: the numbers behind docs/BENCHMARKS.md
(issue 15, "the tuned allocator costs ONNX Runtime ~1.7x per call"). Timing: run under /work/coord/quiet.

    # the model wrapper on one 720p frame's 4 zone crops (a detector: the frame), untuned then tuned allocator
    .venv/bin/python benchmarks/allocator_probe.py engine --bundle B --clip CLIP.mp4 [--seconds 4]
    # the bare ONNX Runtime session, batch N, tuned allocator, CPU arena off / on, alternating
    .venv/bin/python benchmarks/allocator_probe.py arena --bundle B --batch 4
    # `shelfwatch bench ...` with ONNX Runtime's CPU arena forced on (an experiment: engines.py turns it off)
    .venv/bin/python benchmarks/allocator_probe.py bench-arena -- bench --bundle B --source V --paced ...

`engine` runs each allocator setting in a fresh process (mallopt cannot be undone), so it calls itself.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _timed(call: Any, seconds: float) -> list[float]:
    for _ in range(5):  # warm-up
        call()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def engine_once(bundle: str, clip: str, tune: bool, seconds: float) -> None:
    import cv2

    if tune:
        from edge.cameras.memory import tune_allocator

        tune_allocator()
    from edge.runtime.wrappers import load_model

    cap = cv2.VideoCapture(clip, cv2.CAP_FFMPEG)
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"{clip}: no frame")
    model = load_model(bundle, "onnxruntime", None, batch_budget_ms=None)
    w = frame.shape[1] // 4
    images = [frame[:, i * w : (i + 1) * w] for i in range(4)] if model.task == "classification" else [frame]
    infer: list[float] = []

    def call() -> None:
        model.predict_batch(images)
        infer.append(model.timing.infer_ms)

    calls = _timed(call, seconds)
    p95 = sorted(calls)[int(0.95 * (len(calls) - 1))]
    name = "tuned" if tune else "untuned"
    print(f"{name} allocator: call p50 {statistics.median(calls):.1f} ms, p95 {p95:.1f} ms, "
          f"infer p50 {statistics.median(infer):.1f} ms")  # fmt: skip


def arena(bundle: str, batch: int, seconds: float) -> None:
    import numpy as np
    import onnxruntime as ort

    from edge.cameras.memory import tune_allocator

    tune_allocator()
    for on in (False, True, False, True):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 0
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_cpu_mem_arena = on
        session = ort.InferenceSession(str(Path(bundle) / "model.onnx"), options, providers=["CPUExecutionProvider"])
        spec = session.get_inputs()[0]
        shape = [batch] + [d if isinstance(d, int) else 224 for d in spec.shape[1:]]
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        times = _timed(lambda s=session, n=spec.name, x=x: s.run(None, {n: x}), seconds)
        print(f"arena {'on ' if on else 'off'} batch {batch}: p50 {statistics.median(times):.1f} ms")


def bench_arena(argv: list[str]) -> int:
    import onnxruntime as ort

    base = ort.SessionOptions

    class ArenaOn(base):  # type: ignore[misc, valid-type]
        def __setattr__(self, name: str, value: Any) -> None:
            super().__setattr__(name, True if name == "enable_cpu_mem_arena" else value)

    ort.SessionOptions = ArenaOn  # type: ignore[misc]
    from edge.cli import main

    return main(argv)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("engine")
    e.add_argument("--bundle", required=True)
    e.add_argument("--clip", required=True)
    e.add_argument("--seconds", type=float, default=4.0)
    e.add_argument("--only", choices=["tuned", "untuned"])
    a = sub.add_parser("arena")
    a.add_argument("--bundle", required=True)
    a.add_argument("--batch", type=int, default=4)
    a.add_argument("--seconds", type=float, default=3.0)
    b = sub.add_parser("bench-arena")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    args = p.parse_args()
    if args.what == "engine":
        if args.only:
            engine_once(args.bundle, args.clip, args.only == "tuned", args.seconds)
            return 0
        for only in ("untuned", "tuned", "untuned", "tuned"):
            cmd = [sys.executable, __file__, "engine", "--bundle", args.bundle, "--clip", args.clip]
            subprocess.run([*cmd, "--seconds", str(args.seconds), "--only", only], check=True)
        return 0
    if args.what == "arena":
        arena(args.bundle, args.batch, args.seconds)
        return 0
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return bench_arena(rest)


if __name__ == "__main__":
    sys.exit(main())
