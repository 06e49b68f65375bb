"""`shelfwatch bench`: decode, engine and end-to-end pipeline throughput and latency on this machine.

Measured in one run (docs/BENCHMARKS.md, runtime section):
- decode-only fps: the source decoded as fast as it goes (one stream, no inference);
- engine fps for each engine the bundle ships (onnxruntime; openvino when the IR is present): the model wrapper's
  `predict` on already decoded frames, i.e. preprocess (resize, normalise) + inference + postprocess (NMS), with
  per-call p50/p95 and the pure inference p95;
- pipeline fps: N cameras, each a real CameraCapture on the unpaced source and a real CameraPipeline (zone scoring,
  hysteresis) publishing every frame's zone scores to a real broker (QoS 0) through MqttCommunicator. Every frame is
  evaluated: the capture decodes the next frame only after the pipeline took the previous one (DecodeGate), just in
  time (its decode starts about one decode time before the evaluation is expected to end: no frame waits for a whole
  evaluation) or at the take (beside the pipeline's preprocessing): with one camera at-take when it did 5% more
  frames/s in alternating slices after the warm-up and its frames kept the latency bar there, with several
  just-in-time (`--decode-schedule auto`); no frame is skipped and none queues;
- frame-to-publish latency p50/p95: from the moment the capture had the frame to the return of the publish call;
- efficiency = pipeline_fps / (1 / (1/decode_fps + 1/engine_fps)) for the engine used (1.0 = as fast as doing
  decode and engine back to back; above 1.0 = overlap wins); with N > 1 cameras engine_fps is the fastest of one
  frame a call, N frames a call and (with lanes) one-thread calls side by side, measured alone.

Decode, engine and pipeline run in interleaved slices so that a drifting machine load affects them alike.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import socket
import statistics
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
    """The model wrapper on decoded frames: preprocess + inference + postprocess, per call, on the plain engine.

    One call is one frame's work, or `batch` frames' in one engine call (what the batching service makes of N
    cameras in step): a detector gets the frame(s); a classifier the 4 bench zones' crops of each frame, as the
    pipeline does. With `lanes` > 1, that many threads call side by side, each a one-thread engine call (the
    engine's `infer_lane`: what the batching service's lanes do with N cameras' queued requests); fps counts the
    frames of all of them.
    """

    def __init__(
        self, bundle: Path, engine: str, threads: int | None, frames: Sequence[Any], batch: int = 1, lanes: int = 1
    ) -> None:
        from edge.pipeline.zone_scoring import crop_zone
        from edge.runtime.wrappers import load_model

        self.model = load_model(bundle, engine, threads, batch_budget_ms=None)  # type: ignore[arg-type]
        self.batch = max(1, batch)
        self.lanes = max(1, lanes)
        # One wrapper per lane (each keeps its own timings), all on the one engine's one-thread session.
        self.models = [self.model] if self.lanes == 1 else [self._lane_model(bundle) for _ in range(self.lanes)]
        if self.model.task == "classification":
            zones = [_zone(z) for z in bench_zones()]
            self.inputs = [[crop_zone(f, z) for z in zones] for f in frames]
        else:
            self.inputs = [[f] for f in frames]
        for model in self.models:
            for i in range(3):  # warm-up: first calls allocate and compile
                self._call(model, i)
        self.calls: list[float] = []
        self.infer: list[float] = []
        self.seconds = 0.0
        self._i = 0

    def _lane_model(self, bundle: Path) -> Any:
        from edge.bundle import read_manifest
        from edge.runtime.wrappers import ClassificationModel, DetectionModel

        manifest = read_manifest(bundle)
        kind = ClassificationModel if manifest.task == "classification" else DetectionModel
        return kind(bundle, manifest, _LaneEngine(self.model.engine))

    def _call(self, model: Any, i: int) -> None:
        images = [im for k in range(self.batch) for im in self.inputs[(i + k) % len(self.inputs)]]
        model.predict_batch(images)

    def _loop(self, model: Any, seconds: float, start: int, calls: list[float], infer: list[float]) -> None:
        t0 = time.perf_counter()
        i = start
        while time.perf_counter() - t0 < seconds:
            c0 = time.perf_counter()
            self._call(model, i)
            calls.append((time.perf_counter() - c0) * 1000.0)
            infer.append(model.timing.infer_ms)
            i += self.batch * self.lanes

    def run(self, seconds: float) -> None:
        """Call predict_batch() back to back for `seconds` (on every lane at once)."""
        t0 = time.perf_counter()
        if self.lanes == 1:
            self._loop(self.model, seconds, self._i, self.calls, self.infer)
        else:
            threads = [
                threading.Thread(target=self._loop, args=(m, seconds, self._i + k, self.calls, self.infer))
                for k, m in enumerate(self.models)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self._i += 1
        self.seconds += time.perf_counter() - t0

    def probe_p95(self, seconds: float) -> float:
        """Per-call p95 ms of a `seconds` run that is then forgotten (result() never sees it)."""
        calls, infer, spent, i = len(self.calls), len(self.infer), self.seconds, self._i
        self.run(seconds)
        p95 = percentile(self.calls[calls:], 95)
        del self.calls[calls:], self.infer[infer:]
        self.seconds, self._i = spent, i
        return p95

    def result(self) -> dict[str, Any]:
        """Frames per second, per-call p50/p95 and pure-inference p95 over every slice."""
        return {
            "engine": self.model.engine.name,
            "precision": self.model.engine.precision,
            "batch": self.batch,
            "lanes": self.lanes,
            "fps": len(self.calls) * self.batch / self.seconds if self.seconds else 0.0,
            "p50_ms": percentile(self.calls, 50),
            "p95_ms": percentile(self.calls, 95),
            "infer_p95_ms": percentile(self.infer, 95),
            "calls": len(self.calls),
        }


class _LaneEngine:
    """An engine's one-thread lane (`infer_lane`) as a plain engine, for EngineRig's lanes."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.name = engine.name
        self.precision = engine.precision
        self.input_names = engine.input_names
        self.output_names = engine.output_names
        self.input_shapes = getattr(engine, "input_shapes", None)

    def infer(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return self._engine.infer_lane(inputs)  # type: ignore[no-any-return]


def _zone(config: Any) -> Any:
    from edge.pipeline.zone_scoring import Zone

    return Zone(config.id, tuple((float(x), float(y)) for x, y in config.polygon), ())


JUST_IN_TIME = "just-in-time"
AT_TAKE = "at-take"
DECODE_SCHEDULES = (JUST_IN_TIME, AT_TAKE)
SCHEDULE_GAIN = 0.05  # `--decode-schedule auto` keeps at-take only when its frames/s beat just-in-time's by this


class DecodeGate:
    """When an unpaced bench camera may decode its next frame: just in time for its pipeline, or at the take.

    The bench evaluates every frame, so a camera decodes a frame only once the pipeline took the previous one.
    `schedule` says when after that take:

    - "just-in-time" (the default): when the evaluation of frame n is expected to end within one decode time, at
      the take of frame n plus (evaluation - decode - `margin_s`), from moving averages of this camera's
      evaluations (take to the pipeline's next wait) and decodes. Should the pipeline come back sooner, the decode
      starts at once; a late one costs the pipeline part of a decode, never a frame older than that. The lowest
      latency, but on two cores the decode runs beside the engine's two-thread call, which it slows.
    - "at-take": at once (one frame ahead): the decode runs beside the pipeline's single-threaded preprocessing,
      when one core is otherwise idle, and the decoded frame waits for the rest of the evaluation (latency grows
      by evaluation - decode; it is counted, from the moment the frame was decoded).
    """

    def __init__(self, margin_s: float = 0.001, smoothing: float = 0.3, schedule: str = JUST_IN_TIME) -> None:
        if schedule not in DECODE_SCHEDULES:
            raise ValueError(f"decode schedule is one of {DECODE_SCHEDULES}, not {schedule!r}")
        self.margin_s = margin_s
        self.smoothing = smoothing
        self.schedule = schedule
        self.eval_s: float | None = None
        self.decode_s: float | None = None
        self._cond = threading.Condition()
        self._permit = True  # the first frame at once
        self._start_at = 0.0
        self._taken_at: float | None = None
        self._interrupted = False

    def _average(self, old: float | None, new: float) -> float:
        return new if old is None else (1.0 - self.smoothing) * old + self.smoothing * new

    def lead_s(self) -> float:
        """How long after a take the next decode starts (0 at-take, and until an evaluation and a decode were
        measured)."""
        if self.schedule == AT_TAKE or self.eval_s is None or self.decode_s is None:
            return 0.0
        return max(0.0, self.eval_s - self.decode_s - self.margin_s)

    def taken(self, now: float) -> None:
        """The pipeline took a frame at `now`: the next one may be decoded, just in time."""
        with self._cond:
            self._taken_at = now
            self._start_at = now + self.lead_s()
            self._permit = True
            self._cond.notify_all()

    def ready(self, now: float) -> None:
        """The pipeline asks for its next frame (its evaluation is over): measured, and the decode starts now."""
        with self._cond:
            if self._taken_at is not None:
                self.eval_s = self._average(self.eval_s, now - self._taken_at)
                self._taken_at = None
            self._start_at = min(self._start_at, now)
            self._cond.notify_all()

    def acquire(self, timeout: float) -> bool:
        """The capture's side, before a decode: wait (at most `timeout`) until this frame may be decoded."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._interrupted:
                now = time.monotonic()
                if self._permit and now >= self._start_at:
                    self._permit = False
                    return True
                until = min(deadline, self._start_at) if self._permit else deadline
                if now >= deadline:
                    return False
                self._cond.wait(max(until - now, 0.0) + 1e-4)
            return True

    def decoded(self, seconds: float) -> None:
        """One decode took `seconds`."""
        with self._cond:
            self.decode_s = self._average(self.decode_s, seconds)

    def interrupt(self) -> None:
        """Let a waiting capture go (the camera is stopping)."""
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()


class _GatedSource:
    """Wraps a FrameSource so that it decodes a frame only when its DecodeGate lets it (no frame skipped, none
    queued, each decoded just in time)."""

    def __init__(self, inner: Any, gate: DecodeGate) -> None:
        self.inner = inner
        self.gate = gate

    def open(self) -> None:
        self.inner.open()

    def read(self) -> Any:
        while not self.gate.acquire(timeout=0.5):
            pass
        t0 = time.perf_counter()
        image = self.inner.read()
        self.gate.decoded(time.perf_counter() - t0)
        return image

    def close(self) -> None:
        self.inner.close()

    def interrupt(self) -> None:
        self.gate.interrupt()
        with contextlib.suppress(AttributeError):
            self.inner.interrupt()


class _GatedCapture:
    """The pipeline's view of a capture: asking for a frame ends the last evaluation, taking one lets the capture
    decode the next just in time (DecodeGate); can be paused."""

    def __init__(self, capture: Any, gate: DecodeGate, rig: PipelineRig) -> None:
        self.capture = capture
        self.gate = gate
        self.rig = rig

    def wait_frame(self, after_seq: int, timeout: float) -> Any:
        self.gate.ready(time.monotonic())
        if self.rig.paused.is_set() and not self.rig.resumed.wait(min(timeout, 0.01)):
            return None  # still paused: the pipeline asks again (and so notices a stop within 10 ms)
        frame = self.capture.wait_frame(after_seq, timeout)
        if frame is not None:
            self.rig.taken()
            self.gate.taken(time.monotonic())
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


def pick_schedule(
    tried: dict[str, list[float]], at_take_p95_ms: float | None = None, latency_limit_ms: float | None = None
) -> str:
    """The decode schedule to keep from alternating slices' frames/s of each: at-take only when its median beats
    just-in-time's by SCHEDULE_GAIN (the lower latency wins a tie) and its frames' p95 latency is within the limit."""
    jit, take = tried.get(JUST_IN_TIME) or [], tried.get(AT_TAKE) or []
    if not take:
        return JUST_IN_TIME
    if latency_limit_ms is not None and at_take_p95_ms is not None and at_take_p95_ms > latency_limit_ms:
        return JUST_IN_TIME  # faster or not, its frames wait too long for the latency bar
    if not jit:
        return AT_TAKE
    return AT_TAKE if statistics.median(take) >= (1.0 + SCHEDULE_GAIN) * statistics.median(jit) else JUST_IN_TIME


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
        paced_fps: float | None = None,
        merge: str = "adaptive",
        lanes: str = "on",
    ) -> None:
        from edge.agent import AgentOptions, wire
        from edge.cameras.capture import CameraCapture, CameraHub
        from edge.cameras.sources import SourceSettings, open_source
        from edge.config.model import CameraConfig, EdgeConfig, ModelConfig, MqttConfig

        self.paused = threading.Event()
        self.resumed = threading.Event()  # the inverse of paused: a paused pipeline waits on it, so the next slice
        self.paused.set()  # starts at once (a fixed sleep lost up to 10 ms of every slice, ~0.5% of its fps)
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
            cameras=[
                CameraConfig(id=f"cam{i}", source=source, zones=bench_zones(), fps=paced_fps or 2.0)
                for i in range(cameras)
            ],
            mqtt=MqttConfig(host=host, port=port, discovery=False),
            model=ModelConfig(engine=engine, threads=threads),  # type: ignore[arg-type]
        )
        # One gate per camera: its source decodes a frame only once the pipeline took the previous one (DecodeGate).
        self.gates = gates = {cam.id: DecodeGate() for cam in config.cameras}
        self.tried_schedules: dict[str, float] | None = None  # choose_schedule's medians (None: schedule given)
        self.tried_latency_p95: dict[str, float] | None = None
        self.schedule_latency_limit: float | None = None
        hub = CameraHub([])
        for cam in config.cameras:

            def factory(src: SourceSettings, gate: DecodeGate = gates[cam.id]) -> Any:
                if paced_fps is not None:  # a camera delivering at its own rate (the clip is encoded at it)
                    return open_source(src, realtime=True)
                return _GatedSource(open_source(src, realtime=False), gate)

            hub.captures[cam.id] = CameraCapture(cam, factory)
        options = AgentOptions(
            web=False,
            unpaced=paced_fps is None,
            feed=None if paced_fps is not None else lambda capture: _GatedCapture(capture, gates[capture.id], self),
            sink=lambda reporter: _BenchSink(reporter, reporter.comms, self),
        )
        self.parts = wire(config, options, cameras=hub)
        self.active = self.parts.slot.load(bundle)
        if merge != "adaptive" and hasattr(self.active.model.engine, "set_merging"):
            self.active.model.engine.set_merging(merge)  # always: whatever queues together; off: never
        if lanes == "off" and hasattr(self.active.model.engine, "set_lanes"):
            self.active.model.engine.set_lanes(1)  # one engine call at a time, on all of its threads
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
        self.resume()
        time.sleep(seconds)
        self.pause()
        self._drain()
        self.seconds += time.perf_counter() - t0
        self._slice_started = float("inf")
        per_camera = [p.stats.evaluated - c for p, c in zip(self.pipelines, counts, strict=True)]
        self.camera_frames = [a + b for a, b in zip(self.camera_frames, per_camera, strict=True)]
        self.frames += sum(per_camera)
        self.skipped += sum(p.stats.skipped for p in self.pipelines) - skipped

    def pause(self) -> None:
        """Stop taking frames (each capture keeps its one decoded frame)."""
        self.resumed.clear()
        self.paused.set()

    def resume(self) -> None:
        """Take frames again, at once."""
        self.paused.clear()
        self.resumed.set()

    def batch_stats(self) -> dict[str, Any]:
        """The batching service's counters so far (calls, requests, recent call times)."""
        stats = getattr(self.active.model.engine, "stats", None)
        if stats is None:
            return {"calls": 0, "requests": 0, "call_ms": [], "lane_calls": 0, "policy": None}
        policy = getattr(self.active.model.engine, "policy", None)
        return {
            "calls": stats.calls,
            "requests": stats.requests,
            "call_ms": list(stats.call_ms),
            "lane_calls": getattr(stats, "lane_calls", 0),
            "policy": None if policy is None else policy.as_dict(),
        }

    def gate_info(self) -> dict[str, Any]:
        """The decode gates' schedule and estimates (ms, mean over cameras): evaluation, decode, and the lead after
        a take; `tried_fps`: what choose_schedule measured (None when the schedule was given)."""
        gates = list(self.gates.values())
        evals = [g.eval_s for g in gates if g.eval_s is not None]
        decodes = [g.decode_s for g in gates if g.decode_s is not None]
        return {
            "schedule": gates[0].schedule if gates else None,
            "tried_fps": self.tried_schedules,
            "tried_latency_p95_ms": self.tried_latency_p95,
            "latency_limit_ms": self.schedule_latency_limit,
            "eval_ms": round(1000 * sum(evals) / len(evals), 2) if evals else None,
            "decode_ms": round(1000 * sum(decodes) / len(decodes), 2) if decodes else None,
            "lead_ms": round(1000 * sum(g.lead_s() for g in gates) / len(gates), 2) if gates else None,
        }

    def set_schedule(self, schedule: str) -> None:
        """Every camera's decode schedule (DecodeGate): "just-in-time" or "at-take"."""
        if schedule not in DECODE_SCHEDULES:
            raise BenchError(f"decode schedule is one of {', '.join(DECODE_SCHEDULES)}, not {schedule!r}")
        for gate in self.gates.values():
            gate.schedule = schedule

    def choose_schedule(self, slice_s: float, latency_limit_ms: float | None = None, rounds: int = 3) -> str:
        """Run both decode schedules in alternating slices and keep at-take only when its median frames/s beat
        just-in-time's by SCHEDULE_GAIN and its frames' p95 latency stays within `latency_limit_ms` (else
        just-in-time: the lower latency); at-take's p95 is counted as at least just-in-time's plus the wait it adds
        (evaluation - decode). Call before reset(): these slices count for nothing else."""
        tried: dict[str, list[float]] = {name: [] for name in DECODE_SCHEDULES}
        latencies: dict[str, list[float]] = {name: [] for name in DECODE_SCHEDULES}
        for _ in range(rounds):
            for name in DECODE_SCHEDULES:
                self.set_schedule(name)
                frames, seconds, seen = self.frames, self.seconds, len(self.latencies_ms)
                self.run(slice_s)
                spent = self.seconds - seconds
                tried[name].append((self.frames - frames) / spent if spent > 0 else 0.0)
                latencies[name].extend(self.latencies_ms[seen:])
        p95 = {name: percentile(values, 95) for name, values in latencies.items()}
        # At-take adds about (evaluation - decode) of waiting to every frame, by construction; a few short slices
        # can miss what that does to the tail, so its latency is taken as at least just-in-time's plus that wait.
        info = self.gate_info()
        wait_ms = max(0.0, (info["eval_ms"] or 0.0) - (info["decode_ms"] or 0.0))
        p95[AT_TAKE] = max(p95[AT_TAKE], p95[JUST_IN_TIME] + wait_ms)
        chosen = pick_schedule(tried, p95[AT_TAKE], latency_limit_ms)
        self.set_schedule(chosen)
        self.tried_schedules = {name: round(statistics.median(fps), 2) for name, fps in tried.items()}
        self.tried_latency_p95 = {name: round(value, 2) for name, value in p95.items()}
        self.schedule_latency_limit = None if latency_limit_ms is None else round(latency_limit_ms, 2)
        return chosen

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
        self.resume()  # let pipelines leave their wait loop promptly
        for p in self.pipelines:
            p.stop()
        writer = self.parts.reporter.writer  # the events the pipelines queued, before the work dir goes
        writer.flush(timeout=2)
        writer.stop()
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


RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
CLIP_SECONDS = 20.0


def ffmpeg_binary() -> str:
    """The ffmpeg command (Debian's `ffmpeg` package; `make system-deps` installs it)."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise BenchError("ffmpeg is not installed (apt-get install ffmpeg): it makes the H.264 camera clips")
    return binary


def h264_clip(
    source: Path, size: tuple[int, int] | None, fps: float | None, dest_dir: Path, seconds: float = CLIP_SECONDS
) -> Path:
    """An H.264 clip of `source` as an IP camera sends it: scaled to `size`, at `fps` (default: the source's),
    yuv420p, main profile, no B-frames, a key frame every 2 s; `seconds` long (the bench loops a file; the RTSP
    server plays it once, so --rtsp asks for one longer than the run)."""
    width, height = size or (0, 0)
    name = f"{source.stem}-{width or 'native'}x{height or ''}-{fps or 'native'}fps-{seconds:g}s.mp4"
    out = dest_dir / name
    filters = []
    if size is not None:
        filters.append(f"scale={width}:{height}:flags=bicubic,setsar=1")
    if fps is not None:
        filters.append(f"fps={fps}")
    gop = max(1, round(2 * (fps or 30)))
    cmd = [ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(source)]
    cmd += ["-t", str(seconds), "-an"]
    if filters:
        cmd += ["-vf", ",".join(filters)]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-bf", "0", "-g", str(gop)]
    cmd += ["-pix_fmt", "yuv420p", "-threads", "2", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not out.is_file():
        raise BenchError(f"ffmpeg could not make the clip {name}: {done.stderr.strip()[-400:]}")
    return out


def bench_source(
    args: argparse.Namespace, workdir: Path, fps: float | None = None, seconds: float = CLIP_SECONDS
) -> Path:
    """The video the cameras read: --source itself, or the H.264 clip made from it (--resolution, paced fps)."""
    source = Path(args.source)
    if not source.exists():
        raise BenchError(f"{args.source}: no such video file")
    size = RESOLUTIONS.get(args.resolution)
    if size is None and fps is None and not args.h264:
        return source
    log.info("bench: encoding an H.264 clip of %s (%s, %s fps)", source.name, args.resolution, fps or "native")
    return h264_clip(source, size, fps, workdir, seconds)


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    """Resident memory of this process now (VmRSS), in MB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _allocator() -> dict[str, Any]:
    """How malloc was set up (edge.cameras.memory; the environment's MALLOC_* variables win)."""
    from edge.cameras.memory import tune_allocator

    env = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    return {"set": tune_allocator(), "environment": env}


def _engine_memory(engine: Any) -> dict[str, Any]:
    """The pipeline engine's memory settings (edge.runtime.engines): ONNX Runtime's kept arena, OpenVINO's rows per
    request, the batching service's rows per call."""
    inner = getattr(engine, "inner", engine)
    return {
        "arena_mb": getattr(inner, "arena_mb", None),
        "max_rows": getattr(inner, "max_rows", None),
        "batch_max_rows": getattr(engine, "max_rows", None),
    }


def _bundle_info(bundle: Path) -> dict[str, Any]:
    from edge.bundle import read_manifest

    if not (bundle / "manifest.json").is_file():
        raise BenchError(f"{bundle} is not a bundle directory (no manifest.json)")
    manifest = read_manifest(bundle)
    return {
        "name": manifest.name,
        "version": manifest.version,
        "task": manifest.task,
        "input": [manifest.input.width, manifest.input.height],
    }


def _source_info(path: Path, requested: str) -> dict[str, Any]:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
        codec = "".join(chr((fourcc >> 8 * i) & 0xFF) for i in range(4)).strip("\x00 ")
        return {
            "path": str(path),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fps": round(float(cap.get(cv2.CAP_PROP_FPS) or 0.0), 2),
            "codec": codec,
            "resolution": requested,
        }
    finally:
        cap.release()


# GStreamer's RTSP server (Debian gir1.2-gst-rtsp-server-1.0 + gstreamer1.0-plugins-good), run by the system
# python3 that has python3-gi: one session per camera, each playing the H.264 clip in real time.
_RTSP_SERVER = """
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(sys.argv[1])
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch("( filesrc location=%s ! qtdemux ! rtph264pay name=pay0 pt=96 config-interval=1 )" % sys.argv[2])
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""


@contextlib.contextmanager
def rtsp_server(clip: Path) -> Iterator[str]:
    """A local RTSP server streaming `clip` at rtsp://127.0.0.1:PORT/cam for the benchmark's duration."""
    python = "/usr/bin/python3"
    probe = [python, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"]
    if not Path(python).exists() or subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        raise BenchError("--rtsp needs GStreamer's RTSP server: apt-get install gir1.2-gst-rtsp-server-1.0 "
                         "gstreamer1.0-plugins-good python3-gi")  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [python, "-c", _RTSP_SERVER, str(port), str(clip)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != b"ready":
            raise BenchError("the benchmark's RTSP server did not start")
        yield f"rtsp://127.0.0.1:{port}/cam"
    finally:
        stop_process(proc)


def run_paced(args: argparse.Namespace) -> dict[str, Any]:
    """N cameras at their configured fps (the clip is encoded at that rate, as a camera set to it sends), 4 zones
    each, for `--seconds` after a warm-up: what the device process costs (CPU cores, RSS) and whether it keeps up."""
    from edge.cameras.sources import CAPTURE_OPTIONS_ENV, RTSP_CAPTURE_OPTIONS

    bundle = Path(args.bundle)
    info = _bundle_info(bundle)
    engine = (args.engine or [None])[0] or args.pipeline_engine or "auto"
    rss_start = _rss_mb()
    with tempfile.TemporaryDirectory(prefix="shelfwatch-bench-") as tmp:
        # over RTSP the server plays the clip once: longer than the warm-up (at most 60 s) and the run
        clip_seconds = args.seconds + 90.0 if args.rtsp else CLIP_SECONDS
        clip = bench_source(args, Path(tmp), fps=args.fps, seconds=clip_seconds)
        with (
            mosquitto(args.mqtt_host, args.mqtt_port) as (host, port),
            rtsp_server(clip) if args.rtsp else contextlib.nullcontext(str(clip)) as camera_source,
        ):
            pipe = PipelineRig(
                bundle,
                camera_source,
                args.cameras,
                engine,
                args.threads,
                host,
                port,
                Path(tmp),
                paced_fps=args.fps,
                merge=args.merge,
                lanes=args.lanes,
            )
            rss_rig = _rss_mb()  # the model loaded, cameras and pipelines started (the first frames in flight)
            try:
                pipe.resume()
                deadline = time.monotonic() + 60
                while any(p.stats.evaluated < 2 for p in pipe.pipelines) and time.monotonic() < deadline:
                    time.sleep(0.05)
                evaluated0 = sum(p.stats.evaluated for p in pipe.pipelines)
                skipped0 = sum(p.stats.skipped for p in pipe.pipelines)
                errors0 = sum(p.stats.errors for p in pipe.pipelines)
                batch0 = pipe.batch_stats()
                pipe.latencies_ms.clear()
                pipe._slice_started = time.monotonic()
                cpu0, t0 = _cpu_seconds(), time.monotonic()
                time.sleep(args.seconds)
                cpu1, t1 = _cpu_seconds(), time.monotonic()
                rss = _rss_mb()
                threads = len(list(Path("/proc/self/task").iterdir()))
                evaluated = sum(p.stats.evaluated for p in pipe.pipelines) - evaluated0
                skipped = sum(p.stats.skipped for p in pipe.pipelines) - skipped0
                errors = sum(p.stats.errors for p in pipe.pipelines) - errors0
                batch1 = pipe.batch_stats()
                source = _source_info(clip, args.resolution) | {
                    "rtsp": camera_source if args.rtsp else None,
                    # what the cameras opened RTSP with: the product's options unless the environment set its own
                    "capture_options": (os.environ.get(CAPTURE_OPTIONS_ENV) or RTSP_CAPTURE_OPTIONS)
                    if args.rtsp
                    else None,
                }
                used = pipe.active.engine
                precision = str(getattr(pipe.active.model.engine, "precision", "?"))
                memory = _engine_memory(pipe.active.model.engine)
                latencies = list(pipe.latencies_ms)
            finally:
                pipe.close()
    wall = t1 - t0
    calls = batch1["calls"] - batch0["calls"]
    requests = batch1["requests"] - batch0["requests"]
    expected = args.cameras * args.fps
    return {
        "mode": "paced",
        "bundle": info,
        "source": source,
        "cameras": args.cameras,
        "zones_per_camera": len(bench_zones()),
        "fps": args.fps,
        "seconds": round(wall, 2),
        "threads": args.threads,
        "engine": used,
        "precision": precision,
        "engine_memory": memory,
        "cpu_cores": round((cpu1 - cpu0) / wall, 3) if wall else 0.0,
        "rss_mb": round(rss, 1),
        # where it went: before the rig (imports), once the model loaded and the cameras started, at the end
        "rss_mb_stages": {"imports": round(rss_start, 1), "rig": round(rss_rig, 1), "end": round(rss, 1)},
        "os_threads": threads,
        "allocator": _allocator(),
        "evaluated_fps": round(evaluated / wall, 2) if wall else 0.0,
        "expected_fps": round(expected, 2),
        "frames_evaluated": evaluated,
        "frames_skipped": skipped,
        "errors": errors,
        "engine_calls": calls,
        "requests_per_call": round(requests / calls, 2) if calls else 0.0,
        "merge": args.merge,
        "merge_policy": batch1.get("policy"),
        "latency_p50_ms": round(percentile(latencies, 50), 2),
        "latency_p95_ms": round(percentile(latencies, 95), 2),
        "meets": {
            "cpu_cores": (cpu1 - cpu0) / wall <= 1.0 if wall else False,
            "rss_mb": rss <= 400.0,
            "nothing_skipped": skipped == 0,
        },
    }


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of one unpaced `shelfwatch bench` run, as one JSON-ready dict.

    Decode, engine and pipeline are measured in interleaved one-second slices (decode, engine, pipeline, decode,
    ...), so a machine whose load drifts (a shared host, thermal throttling) affects all three alike and the
    efficiency compares like with like. Engines other than the pipeline's are measured once, after.

    With N > 1 cameras the engine is also measured on N frames per call (the batched call the batching service
    makes of N cameras in step), and, when the pipeline's engine has lanes (`--lanes on`, ONNX Runtime or OpenVINO
    with 2+ threads), on that many one-thread calls side by side (what the lanes do with N cameras' queued
    requests); the efficiency then compares with the fastest of the three engine rates (frames/s,
    `reference_fps`), and the latency bar is 2 x the batched call's p95 (1 camera: engine p95 + 10 ms).
    """
    if getattr(args, "arena_mb", None) is not None:
        from edge.runtime import engines

        engines.ORT_ARENA_MB = args.arena_mb  # every ONNX Runtime engine of this run shares an arena of this size
    if args.paced:
        return run_paced(args)
    bundle = Path(args.bundle)
    info = _bundle_info(bundle)
    with tempfile.TemporaryDirectory(prefix="shelfwatch-bench-") as tmp:
        clip = bench_source(args, Path(tmp))
        result = _run_unpaced(args, bundle, info, clip, Path(tmp))
    return result


def _bundle_engines(bundle: Path) -> list[str]:
    """Every registered engine whose model file the bundle ships (ONNX Runtime first)."""
    from edge.runtime.engines import ENGINE_KINDS

    return [name for name, info in ENGINE_KINDS.items() if (bundle / info.model_file).is_file()]


def _run_unpaced(
    args: argparse.Namespace, bundle: Path, info: dict[str, Any], clip: Path, workdir: Path
) -> dict[str, Any]:
    source = str(clip)
    engines = args.engine or _bundle_engines(bundle)
    used = args.pipeline_engine or engines[0]
    frames = sample_frames(source, 16)
    rounds = max(1, round(args.seconds))
    slice_s = args.seconds / rounds
    decode = DecodeRig(source)
    engine = EngineRig(bundle, used, args.threads, frames)
    batched = EngineRig(bundle, used, args.threads, frames, batch=args.cameras) if args.cameras > 1 else None
    with mosquitto(args.mqtt_host, args.mqtt_port) as (host, port):
        pipe = PipelineRig(
            bundle, source, args.cameras, used, args.threads, host, port, workdir, merge=args.merge, lanes=args.lanes
        )
        lanes = getattr(pipe.active.model.engine, "lanes", 1)
        laned = EngineRig(bundle, used, args.threads, frames, lanes=lanes) if args.cameras > 1 and lanes > 1 else None
        try:
            pipe.run(min(2.0, max(0.5, args.seconds / 5)))  # warm-up: first engine calls, capture start
            # auto with several cameras keeps the gates' default, just-in-time: the others' calls keep the engine
            # busy while one decodes, so at-take gained nothing in any four-camera A/B (docs/BENCHMARKS.md, session 12)
            schedule = getattr(args, "decode_schedule", "auto")
            if schedule == "auto" and args.cameras == 1:  # both in alternating slices; the faster kept (DecodeGate)
                trial = min(0.3, max(0.1, args.seconds / 10))
                # the latency bar at-take must keep, from a probe of the engine that the results never see
                pipe.choose_schedule(trial, latency_limit_ms=engine.probe_p95(trial) + 10.0)
            elif schedule != "auto":
                pipe.set_schedule(schedule)
            pipe.reset()
            batch0 = pipe.batch_stats()
            log.info("bench: %d round(s) of decode, %s and pipeline (%d camera(s)), %.1f s each", rounds, used,
                     args.cameras, slice_s)  # fmt: skip
            for _ in range(rounds):
                decode.run(slice_s)
                engine.run(slice_s)
                if batched is not None:
                    batched.run(slice_s)
                if laned is not None:
                    laned.run(slice_s)
                pipe.run(slice_s)
            batch1 = pipe.batch_stats()
            memory = _engine_memory(pipe.active.model.engine)
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
    bat = batched.result() if batched is not None else eng
    lan = laned.result() if laned is not None else None
    engine_fps = max(eng["fps"], bat["fps"], lan["fps"] if lan else 0.0)
    serial_fps = 1.0 / (1.0 / decode.fps + 1.0 / engine_fps)
    latency_bar = eng["p95_ms"] + 10.0 if args.cameras == 1 else 2.0 * bat["p95_ms"]
    p50, p95 = percentile(pipe.latencies_ms, 50), percentile(pipe.latencies_ms, 95)
    calls = batch1["calls"] - batch0["calls"]
    requests = batch1["requests"] - batch0["requests"]
    return {
        "mode": "unpaced",
        "bundle": info,
        "source": _source_info(clip, args.resolution),
        "cameras": args.cameras,
        "seconds": args.seconds,
        "threads": args.threads,
        "decode_fps": round(decode.fps, 2),
        "engines": {
            k: {m: round(v, 2) if isinstance(v, float) else v for m, v in r.items()} for k, r in engine_results.items()
        },
        "engine": used,
        "engine_memory": memory,
        "engine_fps": round(eng["fps"], 2),
        "engine_p95_ms": round(eng["p95_ms"], 2),
        "batched_engine": _rounded(bat),
        "lanes": args.lanes,
        "lanes_engine": None if lan is None else _rounded(lan),
        "reference_fps": round(engine_fps, 2),
        "serial_fps": round(serial_fps, 2),
        "pipeline_fps": round(pipe.fps, 2),
        "pipeline_fps_per_camera": pipe.per_camera_fps(),
        "pipeline_frames": pipe.frames,
        "frames_skipped": pipe.skipped,
        "published": pipe.published,
        "engine_calls": calls,
        "requests_per_call": round(requests / calls, 2) if calls else 0.0,
        "lane_calls": batch1["lane_calls"] - batch0["lane_calls"],
        "pipeline_call_p95_ms": round(percentile(batch1["call_ms"], 95), 2),
        "merge": args.merge,
        "merge_policy": batch1.get("policy"),
        "decode_gate": pipe.gate_info(),
        "latency_p50_ms": round(p50, 2),
        "latency_p95_ms": round(p95, 2),
        "latency_bar_ms": round(latency_bar, 2),
        "efficiency": round(pipe.fps / serial_fps, 3),
        "meets": {"efficiency": pipe.fps / serial_fps >= 0.95, "latency": p95 <= latency_bar},
    }


def _rounded(result: dict[str, Any]) -> dict[str, Any]:
    return {m: round(v, 2) if isinstance(v, float) else v for m, v in result.items()}


def cmd_bench(args: argparse.Namespace) -> int:
    from edge.cli import print_json

    if args.skill is not None:  # a camera's skills against their models alone (edge.skills.bench)
        from edge.skills.bench import print_skill_bench, run_skill_bench

        cost = run_skill_bench(Path(args.skill), args.camera, Path(args.source) if args.source else None, args.frames)
        print_json(cost) if args.json else print_skill_bench(cost)
        return 0
    if not args.bundle or not args.source:
        raise SystemExit("shelfwatch bench: --bundle and --source are required (or --skill edge.yaml)")
    result = run_bench(args)
    used = result["engine"]
    if args.json:
        print_json(result)
    elif result["mode"] == "paced":
        src = result["source"]
        cams = f"{result['cameras']} camera(s) x {result['zones_per_camera']} zones at {result['fps']} fps"
        print(f"paced           {cams} ({src['width']}x{src['height']} {src['codec']}, {result['engine']})")
        print(f"cpu             {result['cpu_cores']:.3f} cores  rss {result['rss_mb']:.0f} MB")
        kept = f"{result['evaluated_fps']:.2f} fps of {result['expected_fps']:.2f}, {result['frames_skipped']} skipped"
        print(f"evaluated       {kept}, {result['requests_per_call']:.2f} requests per engine call")
    else:
        src = result["source"]
        print(f"decode          {result['decode_fps']:8.1f} fps  ({src['width']}x{src['height']} {src['codec']})")
        for name, r in result["engines"].items():
            print(
                f"engine {name:<9}{r['fps']:8.1f} fps  p95 {r['p95_ms']:.1f} ms (infer p95 {r['infer_p95_ms']:.1f} ms)"
            )
        if result["cameras"] > 1:
            b = result["batched_engine"]
            print(f"engine x{b['batch']:<8}{b['fps']:8.1f} fps  p95 {b['p95_ms']:.1f} ms per call")
        per_call = f"{result['requests_per_call']:.2f} requests per engine call"
        print(f"pipeline        {result['pipeline_fps']:8.1f} fps  ({result['cameras']} camera(s), {used}, {per_call})")
        print(
            f"latency         p50 {result['latency_p50_ms']:.1f} ms  p95 {result['latency_p95_ms']:.1f} ms "
            f"(bar {result['latency_bar_ms']:.1f} ms)"
        )
        print(f"efficiency      {result['efficiency']:.3f}")
    return 0


def register(sub: Any) -> None:
    from edge.runtime.engines import ENGINE_KINDS  # onnxruntime/openvino themselves load only when an engine opens

    engine_names = list(ENGINE_KINDS)
    p = sub.add_parser("bench", help="measure decode, engine and end-to-end pipeline throughput and latency")
    p.add_argument("--bundle", help="bundle directory")
    p.add_argument("--source", help="video file (decoded unpaced, looped); with --skill a folder of images too")
    p.add_argument("--skill", metavar="EDGE_YAML", help="measure a camera's skills against their models alone")
    p.add_argument("--camera", help="with --skill: the camera (default: the first with skills)")
    p.add_argument("--frames", type=int, default=40, help="with --skill: frames measured (after 3 warm-up)")
    p.add_argument("--cameras", type=int, default=1, help="pipelines running at once on the same source")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each measurement")
    p.add_argument(
        "--resolution",
        choices=["native", *RESOLUTIONS],
        default="native",
        help="re-encode the source with ffmpeg as an H.264 camera clip of this size (default: the file as it is)",
    )
    p.add_argument("--h264", action="store_true", help="re-encode as an H.264 camera clip even at native size")
    p.add_argument(
        "--paced",
        action="store_true",
        help="run the cameras at --fps (the clip encoded at that rate) and report cpu_cores, rss_mb, evaluated_fps",
    )
    p.add_argument("--fps", type=float, default=2.0, help="camera fps of --paced (default 2)")
    p.add_argument(
        "--rtsp", action="store_true", help="--paced: the cameras read the clip from a local RTSP server (GStreamer)"
    )
    p.add_argument(
        "--engine",
        action="append",
        choices=engine_names,
        help="engine(s) to measure (repeatable; default: every engine the bundle ships)",
    )
    p.add_argument("--pipeline-engine", choices=engine_names, help="engine of the pipeline run")
    p.add_argument(
        "--merge",
        choices=["adaptive", "always", "off"],
        default="adaptive",
        help="batching across cameras: merge only while measured cheaper per row (the device's default), always, "
        "or off (every request its own engine call, in arrival order)",
    )
    p.add_argument(
        "--lanes",
        choices=["on", "off"],
        default="on",
        help="concurrent one-thread engine calls when several cameras' requests queue (the device's default: on, "
        "ONNX Runtime or OpenVINO with 2+ threads), or off (one call at a time on all threads)",
    )
    p.add_argument(
        "--decode-schedule",
        choices=["auto", *DECODE_SCHEDULES],
        default="auto",
        help="unpaced: when a camera decodes its next frame: just-in-time (to be ready when the evaluation ends), "
        "at-take (as soon as the pipeline took the last one, beside its preprocessing), or auto (one camera: both "
        "tried after the warm-up, at-take when 5%% faster and its p95 latency within the latency bar; else and with "
        "several cameras just-in-time)",
    )
    p.add_argument("--threads", type=int, help="inference threads (default: all cores)")
    p.add_argument(
        "--arena-mb",
        type=int,
        help="MiB of ONNX Runtime's shared arena for every engine of the run (the device's onnxruntime arena_mb; "
        "default 96; 0 = none)",
    )
    p.add_argument("--mqtt-host", help="use this broker instead of starting a private mosquitto")
    p.add_argument("--mqtt-port", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_bench)
