"""Where an unpaced camera pipeline's time goes, per evaluated frame: the numbers behind docs/BENCHMARKS.md
(issue 15, "Session 6"). Runs `shelfwatch bench`'s pipeline rig (real captures of the 720p H.264 clip, gated
decode, the default skill, the device's reporter, a private mosquitto, the bench's per-frame publish) and wraps
the parts of a frame's evaluation in timers:

    .venv/bin/python benchmarks/pipeline_profile.py --bundle bench-out/bundles/zones224 \
        --source ../shared/datasets/videos/bottle-detection.mp4 --resolution 720p --cameras 1 --seconds 8 [--py-spy]

Each part is reported as wall ms per evaluated frame and the pipeline thread's CPU ms per frame
(`time.thread_time`, so a loaded machine inflates wall times but much less the CPU ones). Parts nest: `take` is
the whole evaluation (CameraPipeline._take), `skills` the skill runner inside it, the blocks inside that, and the
model call (`zone_score`) holds crops, preprocessing, the engine request and postprocessing. `engine_infer` is the
engine call itself, on the batching service's thread. `--py-spy` also samples the process with py-spy (when
installed) and prints the functions where the pipeline and capture threads spend their samples.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

_wall: defaultdict[str, float] = defaultdict(float)
_cpu: defaultdict[str, float] = defaultdict(float)
_calls: Counter[str] = Counter()
_lock = threading.Lock()
_enabled = threading.Event()


def _wrap(owner: Any, attr: str, part: str) -> None:
    """Replace owner.attr by a timed version that adds its wall and thread CPU time to `part`."""
    original = getattr(owner, attr)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if not _enabled.is_set():
            return original(*args, **kwargs)
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            w, c = time.perf_counter() - w0, time.thread_time() - c0
            with _lock:
                _wall[part] += w
                _cpu[part] += c
                _calls[part] += 1

    setattr(owner, attr, timed)


def instrument() -> None:
    """Wrap the parts of an evaluation (module docstring)."""
    from edge import events
    from edge.commands import bench_cmd
    from edge.pipeline import camera_pipeline, reporter, zone_scoring
    from edge.runtime import batching, engines, wrappers
    from edge.skills import runner
    from edge.skills.blocks import hysteresis, mqtt_event, mqtt_state, zone_score

    _wrap(camera_pipeline.CameraPipeline, "_take", "take")
    _wrap(camera_pipeline.CameraPipeline, "_evaluated", "take/counters")
    _wrap(camera_pipeline.CameraPipeline, "_live_changed", "take/live_changed")
    _wrap(runner.SkillRunner, "run", "take/skills")
    _wrap(zone_score.ZoneScoreBlock, "run", "take/skills/zone_score")
    _wrap(hysteresis.Hysteresis, "run", "take/skills/hysteresis")
    _wrap(mqtt_state.MqttState, "run", "take/skills/mqtt_state")
    _wrap(mqtt_event.MqttEvent, "run", "take/skills/mqtt_event")
    _wrap(reporter.Reporter, "zone_state", "take/skills/mqtt_state/publish")
    for name in ("annotate_snapshot", "event_snapshot"):  # drawn there before session 8, queued to draw since
        if hasattr(mqtt_event, name):
            _wrap(mqtt_event, name, "take/skills/mqtt_event/annotate")
    _wrap(reporter.Reporter, "zone_event", "take/skills/mqtt_event/write_event")  # since session 8: the queueing
    _wrap(events.EventWriter, "_write_all", "event_writer(writer thread)")
    for name in ("crop_zone", "zone_crop"):  # before and since session 6
        if hasattr(zone_scoring, name):
            _wrap(zone_scoring, name, "take/skills/zone_score/crops")
    _wrap(zone_scoring, "score_detections", "take/skills/zone_score/score_boxes")
    _wrap(zone_scoring, "score_classification", "take/skills/zone_score/score_zones")
    _wrap(wrappers, "preprocess", "take/skills/zone_score/preprocess")
    _wrap(batching.BatchingEngine, "infer", "take/skills/zone_score/engine_request")
    _wrap(wrappers.ClassificationModel, "probabilities", "take/skills/zone_score/postprocess")
    _wrap(wrappers, "decode_detections", "take/skills/zone_score/postprocess")
    _wrap(bench_cmd._BenchSink, "frame_done", "take/frame_done(bench publish)")
    _wrap(bench_cmd._GatedCapture, "wait_frame", "wait_frame")
    _wrap(bench_cmd._GatedSource, "read", "capture/read(gate+decode)")
    _wrap(bench_cmd.DecodeGate, "acquire", "capture/read(gate+decode)/gate_wait")
    _wrap(engines.OnnxRuntimeEngine, "infer", "engine_infer(engine call)")
    _wrap(engines.OnnxRuntimeEngine, "infer_lane", "engine_infer_lane(one-thread call)")
    _wrap(engines.OpenVinoEngine, "infer", "engine_infer(engine call)")


@contextlib.contextmanager
def py_spy(seconds: float, out: Path) -> Iterator[Path | None]:
    """py-spy sampling this process for `seconds` into `out` (collapsed stacks), if py-spy is installed."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(binary).exists():
        print("py-spy is not installed: no sampling", file=sys.stderr)
        yield None
        return
    cmd = [binary, "record", "--pid", str(os.getpid()), "--duration", str(int(seconds)), "--rate", "250"]
    cmd += ["--threads", "--format", "raw", "--output", str(out), "--nonblocking"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield out
    finally:
        _, err = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            print(f"py-spy failed: {err.strip()[-400:]}", file=sys.stderr)


def summarise_py_spy(path: Path, top: int = 25) -> dict[str, Any]:
    """Per thread kind (pipeline, capture, batching), the functions holding the most samples (inclusive)."""
    per_thread: defaultdict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        thread = frames[0]
        kind = next((k for k in ("pipeline", "camera", "batching") if k in thread), "other")
        n = int(count)
        totals[kind] += n
        seen: set[str] = set()
        for f in frames[1:]:
            name = f.split(" (")[0] + " " + f.split("/")[-1].split(":")[0].rstrip(")") if " (" in f else f
            if name not in seen:
                seen.add(name)
                per_thread[kind][name] += n
    return {
        kind: {"samples": totals[kind], "top": [(n, c) for n, c in per_thread[kind].most_common(top)]}
        for kind in per_thread
    }


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of every thread of this process, by kind: the Python thread's name up to its
    first dash (`camera-cam1` -> `camera`, `batching-onnxruntime-2` -> `batching`), `native` for threads Python
    did not start (ONNX Runtime's and FFmpeg's pools), and `process` for the whole process (exited threads
    included)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: defaultdict[str, float] = defaultdict(float)
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        name = names.get(int(tid))
        kind = "native" if name is None else name.split("-")[0].split(" ")[0]
        out[kind] += seconds
    t = os.times()
    out["process"] = t.user + t.system
    return dict(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--resolution", default="720p")
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--py-spy", action="store_true", help="also sample with py-spy (collapsed stacks)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from edge.commands.bench_cmd import RESOLUTIONS, PipelineRig, h264_clip, mosquitto

    instrument()
    with tempfile.TemporaryDirectory(prefix="shelfwatch-profile-") as tmp:
        clip = h264_clip(Path(args.source), RESOLUTIONS.get(args.resolution), None, Path(tmp))
        with mosquitto(None, None) as (host, port):
            rig = PipelineRig(Path(args.bundle), str(clip), args.cameras, args.engine, None, host, port, Path(tmp))
            try:
                rig.run(2.0)  # warm-up
                rig.reset()
                _enabled.set()
                spy = py_spy(args.seconds, Path(tmp) / "spy.txt") if args.py_spy else contextlib.nullcontext(None)
                cpu0 = thread_cpu()
                with spy as spy_out:
                    rig.run(args.seconds)
                cpu1 = thread_cpu()
                _enabled.clear()
                gates = rig.gate_info()
                policy = rig.batch_stats().get("policy")
            finally:
                rig.close()
            sampled = summarise_py_spy(spy_out) if spy_out is not None and spy_out.exists() else None
    frames = max(1, rig.frames)
    parts = {
        part: {
            "wall_ms": round(1000.0 * _wall[part] / frames, 3),
            "cpu_ms": round(1000.0 * _cpu[part] / frames, 3),
            "calls_per_frame": round(_calls[part] / frames, 2),
        }
        for part in sorted(_wall)
    }
    threads_cpu = {k: round(1000.0 * (cpu1[k] - cpu0.get(k, 0.0)) / frames, 2) for k in sorted(cpu1)}
    result: dict[str, Any] = {
        "bundle": args.bundle,
        "cameras": args.cameras,
        "frames": rig.frames,
        "pipeline_fps": round(rig.fps, 2),
        "latency_p95_ms": round(sorted(rig.latencies_ms)[int(0.95 * (len(rig.latencies_ms) - 1))], 2)
        if rig.latencies_ms
        else None,
        "decode_gate": gates,
        "merge_policy": policy,
        "load": os.getloadavg(),
        "per_frame": parts,
        "threads_cpu_ms_per_frame": threads_cpu,
    }
    if sampled is not None:
        result["py_spy"] = sampled
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.bundle}: {rig.frames} frames, {rig.fps:.1f} fps, decode gate {gates}, load {os.getloadavg()}")
        print(f"{'part':<55} {'wall ms':>8} {'cpu ms':>8} {'calls':>6}")
        for part, v in parts.items():
            print(f"{part:<55} {v['wall_ms']:8.3f} {v['cpu_ms']:8.3f} {v['calls_per_frame']:6.2f}")
        print("CPU ms per frame by thread kind:", ", ".join(f"{k} {v}" for k, v in threads_cpu.items()))
        if sampled is not None:
            for kind, info in sampled.items():
                print(f"\npy-spy, {kind} threads ({info['samples']} samples):")
                for name, count in info["top"]:
                    print(f"  {100.0 * count / max(1, info['samples']):5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
