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
  decode and engine back to back; above 1.0 = overlap wins).

Decode, engine and pipeline run in interleaved slices so that a drifting machine load affects them alike.
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
from edge.processes import stop_process

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
            stop_process(proc)


class DecodeRig:
    """Decodes the source alone, one slice at a time (the source stays open between slices)."""

    def __init__(self, source: str) -> None:
        from edge.cameras.sources import open_source

        self.src = open_source(source, realtime=False)
        self.src.open()
        first = self.src.read()
        self.width, self.height = int(first.shape[1]), int(first.shape[0])
        self.frames = 0
        self.seconds = 0.0

    def run(self, seconds: float) -> None:
        """Decode for `seconds`."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            self.src.read()
            self.frames += 1
        self.seconds += time.perf_counter() - t0

    def close(self) -> None:
        """Close the source."""
        self.src.close()

    @property
    def fps(self) -> float:
        """Frames per second over every slice."""
        return self.frames / self.seconds if self.seconds else 0.0


def sample_frames(source: str, count: int) -> list[Any]:
    """The first `count` frames of the source, decoded."""
    from edge.cameras.sources import open_source

    src = open_source(source, realtime=False)
    src.open()
    try:
        return [src.read() for _ in range(count)]
    finally:
        src.close()


class EngineRig:
    """The model wrapper's predict() on decoded frames: preprocess + inference + postprocess, per call."""

    def __init__(self, bundle: Path, engine: str, threads: int | None, frames: Sequence[Any]) -> None:
        from edge.runtime.wrappers import load_model

        self.model = load_model(bundle, engine, threads)  # type: ignore[arg-type]
        self.frames = frames
        for frame in frames[:3]:  # warm-up: first calls allocate and compile
            self.model.predict(frame)
        self.calls: list[float] = []
        self.infer: list[float] = []
        self.seconds = 0.0
        self._i = 0

    def run(self, seconds: float) -> None:
        """Call predict() back to back for `seconds`."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            c0 = time.perf_counter()
            self.model.predict(self.frames[self._i % len(self.frames)])
            self.calls.append((time.perf_counter() - c0) * 1000.0)
            self.infer.append(self.model.timing.infer_ms)
            self._i += 1
        self.seconds += time.perf_counter() - t0

    def result(self) -> dict[str, Any]:
        """fps, per-call p50/p95 and pure-inference p95 over every slice."""
        return {
            "engine": self.model.engine.name,
            "precision": self.model.engine.precision,
            "fps": len(self.calls) / self.seconds if self.seconds else 0.0,
            "p50_ms": percentile(self.calls, 50),
            "p95_ms": percentile(self.calls, 95),
            "infer_p95_ms": percentile(self.infer, 95),
            "calls": len(self.calls),
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
    """The pipeline's view of a capture: taking a frame lets the capture decode the next one; can be paused."""

    def __init__(self, capture: Any, gate: threading.Semaphore, rig: PipelineRig) -> None:
        self.capture = capture
        self.gate = gate
        self.rig = rig

    def wait_frame(self, after_seq: int, timeout: float) -> Any:
        if self.rig.paused.is_set():
            time.sleep(min(timeout, 0.01))
            return None
        frame = self.capture.wait_frame(after_seq, timeout)
        if frame is not None:
            self.rig.taken()
            self.gate.release()
        return frame


class _BenchSink:
    """The device's Reporter plus one QoS 0 publish of every frame's zone scores; records frame-to-publish latency."""

    def __init__(self, reporter: Any, comms: Any, rig: PipelineRig) -> None:
        self.reporter = reporter
        self.comms = comms
        self.rig = rig

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
        self.rig.done(frame, time.monotonic())


def bench_zones(count: int = 4) -> list[Any]:
    """`count` vertical strips across the frame (a shelf seen head-on)."""
    from edge.config.model import ZoneConfig

    step = 1.0 / count
    return [
        ZoneConfig(id=f"z{i}", polygon=[(i * step, 0.0), ((i + 1) * step, 0.0), ((i + 1) * step, 1.0), (i * step, 1.0)])
        for i in range(count)
    ]


class PipelineRig:
    """N real captures + pipelines on one model, publishing every frame to the broker; run in slices.

    Between slices the pipelines are paused (they stop taking frames; each capture waits with one decoded frame).
    A slice ends when the frames taken before the pause are done, and only frames decoded after the slice started
    count for latency, so pauses never inflate a number.
    """

    def __init__(
        self,
        bundle: Path,
        source: str,
        cameras: int,
        engine: str,
        threads: int | None,
        host: str,
        port: int,
        workdir: Path,
    ) -> None:
        from edge.agent import AgentOptions, wire
        from edge.cameras.capture import CameraCapture, CameraHub
        from edge.cameras.sources import SourceSettings, open_source
        from edge.config.model import CameraConfig, EdgeConfig, ModelConfig, MqttConfig

        self.paused = threading.Event()
        self.paused.set()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.frames = 0
        self.skipped = 0
        self.published = 0
        self.seconds = 0.0
        self.latencies_ms: list[float] = []
        self._slice_started = float("inf")
        config = EdgeConfig(
            device_id="bench",
            data_dir=workdir,
            cameras=[CameraConfig(id=f"cam{i}", source=source, zones=bench_zones()) for i in range(cameras)],
            mqtt=MqttConfig(host=host, port=port, discovery=False),
            model=ModelConfig(engine=engine, threads=threads),  # type: ignore[arg-type]
        )
        # One gate per camera: its source decodes a frame only once the pipeline took the previous one.
        gates = {cam.id: threading.Semaphore(1) for cam in config.cameras}
        hub = CameraHub([])
        for cam in config.cameras:

            def factory(src: SourceSettings, gate: threading.Semaphore = gates[cam.id]) -> Any:
                return _GatedSource(open_source(src, realtime=False), gate)

            hub.captures[cam.id] = CameraCapture(cam, factory)
        options = AgentOptions(
            web=False,
            unpaced=True,
            feed=lambda capture: _GatedCapture(capture, gates[capture.id], self),
            sink=lambda reporter: _BenchSink(reporter, reporter.comms, self),
        )
        self.parts = wire(config, options, cameras=hub)
        self.active = self.parts.slot.load(bundle)
        self.comms = self.parts.comms
        self.comms.start()
        deadline = time.monotonic() + 10
        while not self.comms.connected:
            if time.monotonic() > deadline:
                self.comms.stop(flush_timeout=0)
                raise BenchError(f"cannot connect to the MQTT broker at {host}:{port}")
            time.sleep(0.05)
        self.captures = list(hub)
        self.pipelines = list(self.parts.pipelines.values())
        self.camera_frames = [0] * cameras
        for c in self.captures:
            c.start()
        for p in self.pipelines:
            p.start()

    def taken(self) -> None:
        """A pipeline took a frame."""
        with self._lock:
            self._in_flight += 1

    def done(self, frame: Any, now: float) -> None:
        """A pipeline published a frame's result."""
        with self._lock:
            self._in_flight -= 1
            self.published += 1
            if frame.mono >= self._slice_started:
                self.latencies_ms.append((now - frame.mono) * 1000.0)

    def _drain(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self._lock:
                if self._in_flight <= 0:
                    return
            time.sleep(0.001)

    def run(self, seconds: float) -> None:
        """Evaluate every frame for about `seconds`, then pause."""
        counts = [p.stats.evaluated for p in self.pipelines]
        skipped = sum(p.stats.skipped for p in self.pipelines)
        t0 = time.perf_counter()
        self._slice_started = time.monotonic()
        self.paused.clear()
        time.sleep(seconds)
        self.paused.set()
        self._drain()
        self.seconds += time.perf_counter() - t0
        self._slice_started = float("inf")
        per_camera = [p.stats.evaluated - c for p, c in zip(self.pipelines, counts, strict=True)]
        self.camera_frames = [a + b for a, b in zip(self.camera_frames, per_camera, strict=True)]
        self.frames += sum(per_camera)
        self.skipped += sum(p.stats.skipped for p in self.pipelines) - skipped

    def per_camera_fps(self) -> list[float]:
        """Evaluated frames per second of each camera over every slice."""
        return [round(n / self.seconds, 2) if self.seconds else 0.0 for n in self.camera_frames]

    def reset(self) -> None:
        """Forget what was measured so far (after the warm-up)."""
        self.frames = self.skipped = 0
        self.seconds = 0.0
        self.latencies_ms.clear()
        self.camera_frames = [0] * len(self.pipelines)

    def close(self) -> None:
        """Stop pipelines, captures and the MQTT client."""
        self.paused.clear()  # let pipelines leave their wait loop promptly
        for p in self.pipelines:
            p.stop()
        for c in self.captures:
            c.stop()
        self.comms.stop(flush_timeout=1)
        if self.parts.outbox is not None:
            self.parts.outbox.close()
        self.parts.events.close()
        self.parts.store.close()

    @property
    def fps(self) -> float:
        """Evaluated frames per second (all cameras) over every slice."""
        return self.frames / self.seconds if self.seconds else 0.0


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of one `shelfwatch bench` run, as one JSON-ready dict.

    Decode, engine and pipeline are measured in interleaved one-second slices (decode, engine, pipeline, decode,
    ...), so a machine whose load drifts (a shared host, thermal throttling) affects all three alike and the
    efficiency compares like with like. Engines other than the pipeline's are measured once, after.
    """
    from edge.bundle import read_manifest

    bundle = Path(args.bundle)
    if not (bundle / "manifest.json").is_file():
        raise BenchError(f"{bundle} is not a bundle directory (no manifest.json)")
    manifest = read_manifest(bundle)
    if not Path(args.source).exists():
        raise BenchError(f"{args.source}: no such video file")
    engines = args.engine or ["onnxruntime"] + (["openvino"] if (bundle / "openvino" / "model.xml").is_file() else [])
    used = args.pipeline_engine or engines[0]
    frames = sample_frames(args.source, 16)
    rounds = max(1, round(args.seconds))
    slice_s = args.seconds / rounds
    decode = DecodeRig(args.source)
    engine = EngineRig(bundle, used, args.threads, frames)
    with mosquitto(args.mqtt_host, args.mqtt_port) as (host, port), tempfile.TemporaryDirectory() as tmp:
        pipe = PipelineRig(bundle, args.source, args.cameras, used, args.threads, host, port, Path(tmp))
        try:
            pipe.run(min(2.0, max(0.5, args.seconds / 5)))  # warm-up: first engine calls, capture start
            pipe.reset()
            log.info("bench: %d round(s) of decode, %s and pipeline (%d camera(s)), %.1f s each", rounds, used,
                     args.cameras, slice_s)  # fmt: skip
            for _ in range(rounds):
                decode.run(slice_s)
                engine.run(slice_s)
                pipe.run(slice_s)
        finally:
            pipe.close()
            decode.close()
    engine_results = {used: engine.result()}
    for name in engines:
        if name not in engine_results:
            other = EngineRig(bundle, name, args.threads, frames)
            other.run(args.seconds)
            engine_results[name] = other.result()
    eng = engine_results[used]
    serial_fps = 1.0 / (1.0 / decode.fps + 1.0 / eng["fps"])
    latency_bar = 2.0 * eng["p95_ms"] + 10.0
    p50, p95 = percentile(pipe.latencies_ms, 50), percentile(pipe.latencies_ms, 95)
    return {
        "bundle": {
            "name": manifest.name,
            "version": manifest.version,
            "task": manifest.task,
            "input": [manifest.input.width, manifest.input.height],
        },
        "source": {"path": str(args.source), "width": decode.width, "height": decode.height},
        "cameras": args.cameras,
        "seconds": args.seconds,
        "threads": args.threads,
        "decode_fps": round(decode.fps, 2),
        "engines": {
            k: {m: round(v, 2) if isinstance(v, float) else v for m, v in r.items()} for k, r in engine_results.items()
        },
        "engine": used,
        "engine_fps": round(eng["fps"], 2),
        "engine_p95_ms": round(eng["p95_ms"], 2),
        "serial_fps": round(serial_fps, 2),
        "pipeline_fps": round(pipe.fps, 2),
        "pipeline_fps_per_camera": pipe.per_camera_fps(),
        "pipeline_frames": pipe.frames,
        "frames_skipped": pipe.skipped,
        "published": pipe.published,
        "latency_p50_ms": round(p50, 2),
        "latency_p95_ms": round(p95, 2),
        "latency_bar_ms": round(latency_bar, 2),
        "efficiency": round(pipe.fps / serial_fps, 3),
        "meets": {"efficiency": pipe.fps / serial_fps >= 0.9, "latency": p95 < latency_bar},
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
