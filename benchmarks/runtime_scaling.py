"""Runtime scaling table: `shelfwatch bench` unpaced and paced for several camera counts, engines and precisions.

Each cell is the median of `--runs` short runs (default 3); the 1-minute load average is read before each run and
reported beside the numbers (the development machine is shared). Unpaced runs share one H.264 clip of
`--resolution`, encoded once at the start (the bench would encode it per run); paced runs encode it at `--fps`.
Prints one Markdown table per mode and, with --json, every run. The numbers in docs/BENCHMARKS.md ("Scaling")
came from this script.

    .venv/bin/python benchmarks/runtime_scaling.py --bundle B --source ../shared/datasets/videos/bottle-detection.mp4 \
        --cameras 1 2 4 8 16 --engines onnxruntime openvino openvino_int8 --resolution 720p --seconds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from edge.commands.bench_cmd import RESOLUTIONS, h264_clip

SHELFWATCH = str(Path(sys.executable).with_name("shelfwatch"))


def bench(args: argparse.Namespace, mode: str, cameras: int, engine: str) -> dict[str, Any]:
    # Unpaced runs read the clip encoded once at the start; paced ones encode it at --fps themselves.
    source, resolution = (args.clip, "native") if mode == "unpaced" and args.clip else (args.source, args.resolution)
    cmd = [SHELFWATCH, "bench", "--bundle", args.bundle, "--source", source, "--cameras", str(cameras)]
    cmd += ["--seconds", str(args.seconds), "--resolution", resolution, "--merge", args.merge, "--json"]
    cmd += ["--lanes", args.lanes]
    if args.arena_mb is not None:
        cmd += ["--arena-mb", str(args.arena_mb)]
    if mode == "paced":
        cmd += ["--paced", "--fps", str(args.fps), "--pipeline-engine", engine]
    else:
        cmd += ["--engine", engine, "--pipeline-engine", engine, "--decode-schedule", args.decode_schedule]
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:], "load": load}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = round(load, 1)
    return result


def median(runs: list[dict[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in runs if key in r]
    return round(statistics.median(values), 3) if values else float("nan")


def spread(runs: list[dict[str, Any]], key: str) -> str:
    """The median and, with several runs, every run's value: `0.97 (0.96 0.97 0.99)`."""
    values = [float(r[key]) for r in runs if key in r]
    if len(values) < 2:
        return str(median(runs, key))
    return f"{median(runs, key)} ({' '.join(f'{v:g}' for v in values)})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--engines", nargs="+", default=["onnxruntime"])
    p.add_argument("--modes", nargs="+", default=["unpaced", "paced"], choices=["unpaced", "paced"])
    p.add_argument("--resolution", default="720p")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--merge", choices=["adaptive", "always", "off"], default="adaptive", help="the bench's --merge")
    p.add_argument("--arena-mb", type=int, default=None, help="the bench's --arena-mb")
    p.add_argument("--lanes", choices=["on", "off"], default="on", help="the bench's --lanes")
    p.add_argument("--decode-schedule", choices=["auto", "just-in-time", "at-take"], default="auto", help="the bench's")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    every: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="runtime-scaling-") as tmp:
        args.clip = None
        if "unpaced" in args.modes and args.resolution in RESOLUTIONS:
            # the H.264 camera clip the bench would make per run, made once (bench reads it at native size)
            args.clip = str(h264_clip(Path(args.source), RESOLUTIONS[args.resolution], None, Path(tmp)))
        table(args, every)
    if args.json:
        print(json.dumps(every))
    return 0


def table(args: argparse.Namespace, every: list[dict[str, Any]]) -> None:
    """Run every cell and print the Markdown tables as they fill."""
    for mode in args.modes:
        if mode == "unpaced":
            print(
                "| cameras | engine | pipeline fps | efficiency | latency p95 ms | bar ms | engine p95 ms "
                "| batched call p95 ms | reference fps (one call / N a call / lanes) | requests/call | decode "
                "schedules | load |"
            )
            print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        else:
            print("| cameras | engine | cpu_cores | rss_mb | evaluated fps | skipped | requests/call | load |")
            print("|---|---|---|---|---|---|---|---|")
        for engine in args.engines:
            for cameras in args.cameras:
                runs = [bench(args, mode, cameras, engine) for _ in range(args.runs)]
                every.extend({"mode": mode, "engine": engine, "cameras": cameras} | r for r in runs)
                ok = [r for r in runs if "error" not in r]
                loads = "-".join(f"{r['load']:.1f}" for r in runs)
                if not ok:
                    print(f"| {cameras} | {engine} | error: {runs[0]['error'][:80]} | | | | | {loads} |")
                elif mode == "unpaced":
                    for r in ok:
                        r["batched_p95_ms"] = r["batched_engine"]["p95_ms"]
                        r["batched_fps"] = r["batched_engine"]["fps"]
                        r["lanes_fps"] = (r.get("lanes_engine") or {}).get("fps", float("nan"))
                    refs = " / ".join(str(median(ok, k)) for k in ("engine_fps", "batched_fps", "lanes_fps"))
                    schedules = " ".join(str(r["decode_gate"].get("schedule")) for r in ok)
                    print(
                        f"| {cameras} | {engine} | {median(ok, 'pipeline_fps')} | {spread(ok, 'efficiency')} | "
                        f"{spread(ok, 'latency_p95_ms')} | {median(ok, 'latency_bar_ms')} | "
                        f"{median(ok, 'engine_p95_ms')} | {median(ok, 'batched_p95_ms')} | {refs} | "
                        f"{median(ok, 'requests_per_call')} | {schedules} | {loads} |"
                    )
                else:
                    print(
                        f"| {cameras} | {engine} | {spread(ok, 'cpu_cores')} | {spread(ok, 'rss_mb')} | "
                        f"{median(ok, 'evaluated_fps')} | {spread(ok, 'frames_skipped')} | "
                        f"{median(ok, 'requests_per_call')} | {loads} |"
                    )
                sys.stdout.flush()
        print()


if __name__ == "__main__":
    sys.exit(main())
