"""What an ONNX Runtime call of N rows costs, per row, in time and memory: does merging N frames pay on this CPU?

For each `--arena` size (MiB of the shared arena's kept first region, edge.runtime.engines; 0 = no arena) a fresh
process per row count opens the bundle's model.onnx as the device does (the arena primed with one row) and runs
calls of that many random rows: the first call's peak memory above the resident size before it (`VmHWM` after
resetting it through /proc/self/clear_refs; Linux), then engine ms per row (median of the calls for `--seconds`).
Without an arena the peak is about the call's activations; with one, what the call needs beyond the kept region.

    .venv/bin/python benchmarks/engine_rows.py --bundle bench-out/bundles/det15 --rows 1 2 4 --arena 96 0 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(model: Path, arena: int, rows: int, seconds: float, threads: int | None) -> dict[str, Any]:
    """In this process: the first call's peak MB above the resident size before it, then ms per row."""
    import numpy as np

    from edge.runtime.engines import OnnxRuntimeEngine

    engine = OnnxRuntimeEngine(model, threads=threads, arena_mb=arena)  # the arena primed with one row, as on a device
    name = engine.input_names[0]
    shape = engine.input_shapes[name][1:]
    x = np.random.default_rng(0).random((rows, *shape), dtype=np.float32)
    Path("/proc/self/clear_refs").write_text("5\n")  # the peak resident size starts again from now
    before = _status_kb("VmRSS")
    engine.infer({name: x})
    peak = _status_kb("VmHWM") - before
    times: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end or len(times) < 3:
        t0 = time.perf_counter()
        engine.infer({name: x})
        times.append((time.perf_counter() - t0) * 1000.0)
    return {
        "arena_mb": arena,
        "rows": rows,
        "ms_per_row": round(statistics.median(times) / rows, 2),
        "calls": len(times),
        "peak_mb_above": round(peak / 1024.0, 1),
        "rss_mb_after": round(_status_kb("VmRSS") / 1024.0, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--arena", type=int, nargs="+", default=[96, 0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--one", type=int, nargs=2, default=None, help=argparse.SUPPRESS)  # the child: arena, rows
    args = p.parse_args()
    model = Path(args.bundle) / "model.onnx"
    if args.one is not None:
        print(json.dumps(measure(model, args.one[0], args.one[1], args.seconds, args.threads)))
        return 0
    results = []
    for arena in args.arena:
        for rows in args.rows:
            cmd = [sys.executable, __file__, "--bundle", args.bundle, "--seconds", str(args.seconds)]
            cmd += ["--one", str(arena), str(rows)] + (["--threads", str(args.threads)] if args.threads else [])
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("| arena MiB | rows per call | engine ms per row | first call's peak MB above before | RSS MB after |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['arena_mb']} | {r['rows']} | {r['ms_per_row']} | {r['peak_mb_above']} | {r['rss_mb_after']} |")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
