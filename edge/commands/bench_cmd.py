"""`shelfwatch bench`: decode, engine and end-to-end pipeline throughput and latency on this machine.

Measured in one run (docs/BENCHMARKS.md, runtime section):
- decode-only fps: the source decoded as fast as it goes (one stream, no inference);
- engine fps for each engine the bundle ships (onnxruntime; openvino when the IR is present): the model wrapper's
  `predict` on already decoded frames, i.e. preprocess (resize, normalise) + inference + postprocess (NMS), with
  per-call p50/p95 and the pure inference p95;
- pipeline fps: N cameras, each a real CameraCapture on the unpaced source and a real CameraPipeline (zone scoring,
  hysteresis) publishing every frame's zone scores to a real broker (QoS 0) through MqttCommunicator. Every frame is
  evaluated: the capture decodes exactly one frame ahead (decode of frame n+1 overlaps inference of frame n), so no
  frame is skipped and none queues;
- frame-to-publish latency p50/p95: from the moment the capture had the frame to the return of the publish call;
- efficiency = pipeline_fps / (1 / (1/decode_fps + 1/engine_fps)) for the engine used (1.0 = as fast as doing
  decode and engine back to back; above 1.0 = overlap wins). engine_fps and engine_p95_ms there are the mean of a
  run before and a run after the pipeline (the load of a shared machine drifts).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from edge.errors import ShelfwatchError

log = logging.getLogger(__name__)


class BenchError(ShelfwatchError):
    """The benchmark cannot run (missing broker binary, unreadable source, bad bundle)."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@contextlib.contextmanager
def mosquitto(host: str | None, port: int | None) -> Iterator[tuple[str, int]]:
    """The given broker, or a private mosquitto on a free loopback port for the benchmark's duration."""
    if host and port:
        yield host, port
        return
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if binary is None:
        raise BenchError("mosquitto is not installed: install it or pass --mqtt-host/--mqtt-port")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="shelfwatch-bench-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {free} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", free), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise BenchError("the benchmark's mosquitto did not start") from None
                    time.sleep(0.05)
            yield "127.0.0.1", free
        finally:
            proc.terminate()
            proc.wait(timeout=5)


def measure_decode(source: str, seconds: float) -> dict[str, Any]:
    """Frames per second of decoding the source alone."""
    from edge.cameras.sources import open_source

    src = open_source(source, realtime=False)
    src.open()
    try:
        first = src.read()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            src.read()
            n += 1
        elapsed = time.perf_counter() - t0
    finally:
        src.close()
    return {"fps": n / elapsed, "frames": n, "width": int(first.shape[1]), "height": int(first.shape[0])}


def sample_frames(source: str, count: int) -> list[Any]:
    """The first `count` frames of the source, decoded."""
    from edge.cameras.sources import open_source

    src = open_source(source, realtime=False)
    src.open()
    try:
        return [src.read() for _ in range(count)]
    finally:
        src.close()


def measure_engine(
    bundle: Path, engine: str, threads: int | None, frames: Sequence[Any], seconds: float
) -> dict[str, Any]:
    """The model wrapper's predict() rate on decoded frames, with per-call and pure-inference percentiles."""
    from edge.runtime.models import load_model

    model = load_model(bundle, engine, threads)  # type: ignore[arg-type]
    for frame in frames[:3]:  # warm-up: first calls allocate and compile
        model.predict(frame)
    calls: list[float] = []
    infer: list[float] = []
    t0 = time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < seconds:
        c0 = time.perf_counter()
        model.predict(frames[i % len(frames)])
        calls.append((time.perf_counter() - c0) * 1000.0)
        infer.append(model.timing.infer_ms)
        i += 1
    elapsed = time.perf_counter() - t0
    return {
        "engine": model.engine.name,
        "precision": model.engine.precision,
        "fps": len(calls) / elapsed,
        "p50_ms": percentile(calls, 50),
        "p95_ms": percentile(calls, 95),
        "infer_p95_ms": percentile(infer, 95),
        "calls": len(calls),
    }


class _GatedSource:
    """Wraps a FrameSource so it decodes at most one frame ahead of the pipeline (no frame skipped, none queued)."""

    def __init__(self, inner: Any, gate: threading.Semaphore) -> None:
        self.inner = inner
        self.gate = gate

    def open(self) -> None:
        self.inner.open()

    def read(self) -> Any:
        while not self.gate.acquire(timeout=0.5):
            pass
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()

    def interrupt(self) -> None:
        self.gate.release()
        with contextlib.suppress(AttributeError):
            self.inner.interrupt()


class _GatedCapture:
    """The pipeline's view of a capture: taking a frame lets the capture decode the next one."""

    def __init__(self, capture: Any, gate: threading.Semaphore) -> None:
        self.capture = capture
        self.gate = gate

    def wait_frame(self, after_seq: int, timeout: float) -> Any:
        frame = self.capture.wait_frame(after_seq, timeout)
        if frame is not None:
            self.gate.release()
        return frame


class _BenchSink:
    """The device's Reporter plus one QoS 0 publish of every frame's zone scores; records frame-to-publish latency."""

    def __init__(self, reporter: Any, comms: Any) -> None:
        self.reporter = reporter
        self.comms = comms
        self.latencies_ms: list[float] = []
        self.recording = False
        self.published = 0
        self._lock = threading.Lock()

    def camera_status(self, camera: str, online: bool) -> None:
        self.reporter.camera_status(camera, online)

    def zone_state(self, camera: str, zone: str, state: Any, model: Any) -> None:
        self.reporter.zone_state(camera, zone, state, model)

    def zone_event(self, camera: str, zone: str, transition: Any, image: Any, model: Any) -> None:
        self.reporter.zone_event(camera, zone, transition, image, model)

    def frame_done(self, camera: str, frame: Any, scores: Sequence[tuple[str, Any]]) -> None:
        from edge.comms.base import to_json

        payload = to_json({"seq": frame.seq, "zones": {z: round(s.score, 4) for z, s in scores}})
        self.comms.publish(f"{camera}/bench", payload, retain=False, qos=0)
        latency = (time.monotonic() - frame.mono) * 1000.0
        with self._lock:
            self.published += 1
            if self.recording:
                self.latencies_ms.append(latency)


def bench_zones(count: int = 4) -> list[Any]:
    """`count` vertical strips across the frame (a shelf seen head-on)."""
    from edge.config.model import ZoneConfig

    step = 1.0 / count
    return [
        ZoneConfig(id=f"z{i}", polygon=[(i * step, 0.0), ((i + 1) * step, 0.0), ((i + 1) * step, 1.0), (i * step, 1.0)])
        for i in range(count)
    ]


def measure_pipeline(
    bundle: Path,
    source: str,
    cameras: int,
    seconds: float,
    engine: str,
    threads: int | None,
    host: str,
    port: int,
    workdir: Path,
) -> dict[str, Any]:
    """N real captures + pipelines on one model, publishing every frame to the broker; fps and latency."""
    from edge.cameras.capture import CameraCapture
    from edge.cameras.sources import open_source
    from edge.comms.mqtt import MqttCommunicator
    from edge.comms.outbox import Outbox
    from edge.config.model import CameraConfig, EventsConfig, MqttConfig
    from edge.events import EventLog, SnapshotStore
    from edge.pipeline.camera_pipeline import CameraPipeline
    from edge.pipeline.metrics import MetricsRegistry
    from edge.pipeline.model_slot import ModelSlot
    from edge.pipeline.reporter import Reporter
    from edge.runtime.models import load_model

    slot = ModelSlot(lambda p: load_model(p, engine, threads))  # type: ignore[arg-type]
    active = slot.load(bundle)
    metrics = MetricsRegistry()
    comms = MqttCommunicator(MqttConfig(host=host, port=port, discovery=False), "bench", Outbox(workdir / "outbox.db"))
    comms.start()
    deadline = time.monotonic() + 10
    while not comms.connected:
        if time.monotonic() > deadline:
            comms.stop(flush_timeout=0)
            raise BenchError(f"cannot connect to the MQTT broker at {host}:{port}")
        time.sleep(0.05)
    reporter = Reporter(comms, EventLog(workdir / "events.db", "bench"), SnapshotStore(workdir / "snaps", 10), metrics)
    sink = _BenchSink(reporter, comms)
    zones = bench_zones()
    captures, pipelines = [], []
    for i in range(cameras):
        gate = threading.Semaphore(1)
        cfg = CameraConfig(id=f"cam{i}", source=source)

        def factory(src: str | int, gate: threading.Semaphore = gate) -> Any:
            return _GatedSource(open_source(src, realtime=False), gate)

        capture = CameraCapture(cfg, factory)
        pipeline = CameraPipeline(
            cfg.id, _GatedCapture(capture, gate), slot, lambda: zones, EventsConfig(), sink, metrics, fps=None
        )
        captures.append(capture)
        pipelines.append(pipeline)
    for c in captures:
        c.start()
    for p in pipelines:
        p.start()
    try:
        time.sleep(min(2.0, max(0.5, seconds / 5)))  # warm-up: engine first calls, capture start
        start_counts = [p.stats.evaluated for p in pipelines]
        start_skipped = sum(p.stats.skipped for p in pipelines)
        sink.recording = True
        t0 = time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - t0
        sink.recording = False
        counts = [p.stats.evaluated - s for p, s in zip(pipelines, start_counts, strict=True)]
        skipped = sum(p.stats.skipped for p in pipelines) - start_skipped
    finally:
        for p in pipelines:
            p.stop()
        for c in captures:
            c.stop()
        comms.stop(flush_timeout=1)
        reporter.event_log.close()
    return {
        "engine": active.engine,
        "fps": sum(counts) / elapsed,
        "fps_per_camera": [round(c / elapsed, 2) for c in counts],
        "frames": sum(counts),
        "skipped": skipped,
        "latency_p50_ms": percentile(sink.latencies_ms, 50),
        "latency_p95_ms": percentile(sink.latencies_ms, 95),
        "published": sink.published,
    }


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of one `shelfwatch bench` run, as one JSON-ready dict."""
    from edge.bundle import read_manifest

    bundle = Path(args.bundle)
    if not (bundle / "manifest.json").is_file():
        raise BenchError(f"{bundle} is not a bundle directory (no manifest.json)")
    manifest = read_manifest(bundle)
    if not Path(args.source).exists():
        raise BenchError(f"{args.source}: no such video file")
    log.info("bench: decoding %s for %.0f s", args.source, args.seconds)
    decode = measure_decode(args.source, args.seconds)
    frames = sample_frames(args.source, 16)
    engines = args.engine or ["onnxruntime"] + (["openvino"] if (bundle / "openvino" / "model.xml").is_file() else [])
    engine_results: dict[str, Any] = {}
    for name in engines:
        log.info("bench: engine %s for %.0f s", name, args.seconds)
        engine_results[name] = measure_engine(bundle, name, args.threads, frames, args.seconds)
    used = args.pipeline_engine or engines[0]
    with mosquitto(args.mqtt_host, args.mqtt_port) as (host, port), tempfile.TemporaryDirectory() as tmp:
        log.info(
            "bench: pipeline with %d camera(s) on %s for %.0f s (broker %s:%s)",
            args.cameras,
            used,
            args.seconds,
            host,
            port,
        )
        pipe = measure_pipeline(
            bundle, args.source, args.cameras, args.seconds, used, args.threads, host, port, Path(tmp)
        )
    # The machine's load drifts (other processes, thermal): measure the engine again after the pipeline and use the
    # mean of both runs, so the efficiency compares like with like.
    after = measure_engine(bundle, used, args.threads, frames, args.seconds)
    before = engine_results.get(used, after)
    eng = {
        "fps": (before["fps"] + after["fps"]) / 2,
        "p95_ms": (before["p95_ms"] + after["p95_ms"]) / 2,
        "runs": [round(before["fps"], 2), round(after["fps"], 2)],
    }
    serial_fps = 1.0 / (1.0 / decode["fps"] + 1.0 / eng["fps"])
    latency_bar = 2.0 * eng["p95_ms"] + 10.0
    return {
        "bundle": {
            "name": manifest.name,
            "version": manifest.version,
            "task": manifest.task,
            "input": [manifest.input.width, manifest.input.height],
        },
        "source": {"path": str(args.source), "width": decode["width"], "height": decode["height"]},
        "cameras": args.cameras,
        "seconds": args.seconds,
        "threads": args.threads,
        "decode_fps": round(decode["fps"], 2),
        "engines": {
            k: {m: round(v, 2) if isinstance(v, float) else v for m, v in r.items()} for k, r in engine_results.items()
        },
        "engine": used,
        "engine_fps": round(eng["fps"], 2),
        "engine_p95_ms": round(eng["p95_ms"], 2),
        "engine_fps_runs": eng["runs"],
        "serial_fps": round(serial_fps, 2),
        "pipeline_fps": round(pipe["fps"], 2),
        "pipeline_fps_per_camera": pipe["fps_per_camera"],
        "pipeline_frames": pipe["frames"],
        "frames_skipped": pipe["skipped"],
        "published": pipe["published"],
        "latency_p50_ms": round(pipe["latency_p50_ms"], 2),
        "latency_p95_ms": round(pipe["latency_p95_ms"], 2),
        "latency_bar_ms": round(latency_bar, 2),
        "efficiency": round(pipe["fps"] / serial_fps, 3),
        "meets": {"efficiency": pipe["fps"] / serial_fps >= 0.9, "latency": pipe["latency_p95_ms"] < latency_bar},
    }


def cmd_bench(args: argparse.Namespace) -> int:
    from edge.cli import print_json

    result = run_bench(args)
    if args.json:
        print_json(result)
    else:
        size = f"{result['source']['width']}x{result['source']['height']}"
        print(f"decode          {result['decode_fps']:8.1f} fps  ({size})")
        for name, r in result["engines"].items():
            print(
                f"engine {name:<9}{r['fps']:8.1f} fps  p95 {r['p95_ms']:.1f} ms (infer p95 {r['infer_p95_ms']:.1f} ms)"
            )
        print(f"pipeline        {result['pipeline_fps']:8.1f} fps  ({result['cameras']} camera(s), {result['engine']})")
        print(
            f"latency         p50 {result['latency_p50_ms']:.1f} ms  p95 {result['latency_p95_ms']:.1f} ms "
            f"(bar {result['latency_bar_ms']:.1f} ms)"
        )
        print(f"efficiency      {result['efficiency']:.3f}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure decode, engine and end-to-end pipeline throughput and latency")
    p.add_argument("--bundle", required=True, help="bundle directory")
    p.add_argument("--source", required=True, help="video file (decoded unpaced, looped)")
    p.add_argument("--cameras", type=int, default=1, help="pipelines running at once on the same source")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each measurement")
    p.add_argument(
        "--engine",
        action="append",
        choices=["onnxruntime", "openvino"],
        help="engine(s) to measure (repeatable; default: every engine the bundle ships)",
    )
    p.add_argument("--pipeline-engine", choices=["onnxruntime", "openvino"], help="engine of the pipeline run")
    p.add_argument("--threads", type=int, help="inference threads (default: all cores)")
    p.add_argument("--mqtt-host", help="use this broker instead of starting a private mosquitto")
    p.add_argument("--mqtt-port", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_bench)
