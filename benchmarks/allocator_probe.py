"""What the device's allocator tuning and the engines' memory settings cost: the numbers behind docs/BENCHMARKS.md
(issue 15, "the tuned allocator costs ONNX Runtime ~1.7x per call", "bounded engine memory"). Timing: run under
/work/coord/quiet.

    # the model wrapper on one 720p frame's 4 zone crops (a detector: the frame), untuned then tuned allocator
    .venv/bin/python benchmarks/allocator_probe.py engine --bundle B --clip CLIP.mp4 [--seconds 4]
    # ONNX Runtime under the tuned allocator: no arena / a per-session arena (keeps its peak) / the engine's shared
    # arena of --arena-mb (shrunk after each call); RSS after 60 calls of 1-32 rows, then ms per row at --batch
    .venv/bin/python benchmarks/allocator_probe.py arena --bundle B --batch 4 [--arena-mb 128]
    # OpenVINO the same: the engine's max_rows slices (--max-rows 8 16 32)
    .venv/bin/python benchmarks/allocator_probe.py openvino --bundle B --batch 4 --max-rows 8 32
    # `shelfwatch bench ...` with other engine defaults (edge.runtime.engines.ORT_ARENA_MB / OV_MAX_ROWS)
    .venv/bin/python benchmarks/allocator_probe.py bench-with --ort-arena-mb 0 -- bench --bundle B --paced ...

Every setting runs in a fresh process (mallopt and ONNX Runtime's shared arena cannot be undone), so the script
calls itself.
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


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


def _row_mix(call: Any, step: int, most: int) -> None:
    """60 calls of step..most rows (seeded), then one of `most`: what merged batches of several cameras do."""
    import numpy as np

    rng = np.random.default_rng(0)
    for rows in [int(step * rng.integers(1, most // step + 1)) for _ in range(60)] + [most]:
        call(rows)


def memory_once(what: str, bundle: str, setting: int, batch: int, seconds: float) -> None:
    """One engine setting in this process: RSS after the row mix, then engine ms per row at `batch` and 4x it."""
    import numpy as np

    from edge.cameras.memory import tune_allocator

    tune_allocator()
    from edge.runtime.engines import OnnxRuntimeEngine, OpenVinoEngine

    before = _rss_mb()
    engine: Any
    if what == "onnxruntime-kept":  # the per-session arena ONNX Runtime has by default: keeps its peak
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(Path(bundle) / "model.onnx"), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
        label = "onnxruntime, per-session arena"

        def run(x: Any) -> None:
            session.run(None, {name: x})
    else:
        if what == "onnxruntime":
            engine = OnnxRuntimeEngine(Path(bundle) / "model.onnx", arena_mb=setting)
            label = f"onnxruntime, arena_mb {setting}"
        else:
            engine = OpenVinoEngine(Path(bundle) / "openvino/model.xml", max_rows=setting)
            label = f"openvino, max_rows {setting}"
        name = engine.input_names[0]
        shape = [d or 1 for d in engine.input_shapes[name]]

        def run(x: Any) -> None:
            engine.infer({name: x})

    loaded = _rss_mb()
    size = shape[2]
    step = 4 if size <= 256 else 1  # zone classifiers: 4 crops a camera; a detector: a frame a camera

    def call(rows: int) -> None:
        run(np.random.default_rng(rows).random([rows, *shape[1:]], dtype=np.float32))

    _row_mix(call, step, 32 if step == 4 else 8)
    after = _rss_mb()
    per_row = []
    for rows in (batch, 4 * batch):
        times = _timed(lambda rows=rows: call(rows), seconds)
        per_row.append(f"{rows} rows {statistics.median(times) / rows:.2f}")
    print(f"{label}: RSS {before:.0f} MB before, {loaded:.0f} loaded, {after:.0f} after the row mix; "
          f"ms per row: {', '.join(per_row)}")  # fmt: skip


def memory(what: str, bundle: str, settings: list[int], batch: int, seconds: float) -> None:
    """Each setting in a fresh process, the list twice (alternating)."""
    for setting in settings + settings:
        cmd = [sys.executable, __file__, "once", what, "--bundle", bundle, "--setting", str(setting)]
        subprocess.run([*cmd, "--batch", str(batch), "--seconds", str(seconds)], check=True)


def bench_with(argv: list[str], arena_mb: int | None, max_rows: int | None) -> int:
    from edge.runtime import engines

    if arena_mb is not None:
        engines.ORT_ARENA_MB = arena_mb
    if max_rows is not None:
        engines.OV_MAX_ROWS = max_rows
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
    for name, setting in (("arena", "--arena-mb"), ("openvino", "--max-rows")):
        a = sub.add_parser(name)
        a.add_argument("--bundle", required=True)
        a.add_argument("--batch", type=int, default=4)
        a.add_argument("--seconds", type=float, default=3.0)
        a.add_argument(setting, dest="settings", type=int, nargs="+", default=[128] if name == "arena" else [8, 32])
        a.add_argument("--kept", action="store_true", help="arena: also ONNX Runtime's per-session arena")
    o = sub.add_parser("once")
    o.add_argument("what_once", choices=["onnxruntime", "onnxruntime-kept", "openvino"])
    o.add_argument("--bundle", required=True)
    o.add_argument("--setting", type=int, default=0)
    o.add_argument("--batch", type=int, default=4)
    o.add_argument("--seconds", type=float, default=3.0)
    b = sub.add_parser("bench-with")
    b.add_argument("--ort-arena-mb", type=int)
    b.add_argument("--ov-max-rows", type=int)
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
    if args.what == "once":
        memory_once(args.what_once, args.bundle, args.setting, args.batch, args.seconds)
        return 0
    if args.what == "arena":
        settings = [0, *args.settings]
        if args.kept:
            memory("onnxruntime-kept", args.bundle, [0], args.batch, args.seconds)
        memory("onnxruntime", args.bundle, settings, args.batch, args.seconds)
        return 0
    if args.what == "openvino":
        memory("openvino", args.bundle, args.settings, args.batch, args.seconds)
        return 0
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return bench_with(rest, args.ort_arena_mb, args.ov_max_rows)


if __name__ == "__main__":
    sys.exit(main())
