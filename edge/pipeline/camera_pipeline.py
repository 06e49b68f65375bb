"""One thread per camera: latest frame -> the camera's skills -> sink.

- One path: every frame goes through the skill runner (edge.skills.runner). A camera with `skills` runs them; a
  camera without runs its default skill (edge.skills.default): the model slot's model -> zone scores
  (edge.pipeline.zone_scoring) -> hysteresis with `events.on_threshold`/`off_threshold`/`min_frames` -> today's
  retained zone states and low-stock events through this pipeline's sink, byte for byte docs/MQTT.md.

- Pacing: the pipeline evaluates at the camera's `fps` (or as fast as frames come when fps is None, for the
  benchmark). It always takes the capture's latest frame and never queues; frames the capture produced in between
  are counted as skipped.
- Isolation: each camera has its own thread, so a slow or failing camera never stalls another; an exception while
  evaluating one frame is logged (rate-limited), counted, and the next frame is tried.
- Failures: an exception while handling a frame (the sink's disk is full, a zone is malformed) is reported in the
  status and counters and the loop goes on; while the sink cannot store events (`sink.problem`) the status is
  `degraded` with the reason in `last_error`, and evaluation continues.
- Supervision: the watchdog thread restarts a worker thread that died anyway, without systemd.
- Whole frame: a camera without zones is evaluated as one zone covering the frame (`WHOLE_FRAME_ZONE_ID`), with
  state, retained topic and events like any other zone, as the Zones page says.
- Live view: every evaluated frame (and every online/offline change) updates `live()`, a JSON-ready picture of what
  the model sees (zones with state and score, detections, model, evaluated fps, inference ms); `wait_live()` lets
  the studio's server-sent events follow it without polling.
- Snapshots: an event's image is annotated before it reaches the sink (the zone outline in the state's colour and
  the detection box that raised it, drawn with OpenCV on the device: zone_scoring.annotate_snapshot).
- Watchdog: a `Watchdog` thread watches every pipeline's engine call; one that runs longer than
  `watchdog_seconds` is reported (status `hung`, error log, `shelfwatch_watchdog_trips_total`) and the pipeline
  recovers: the stuck worker is abandoned (it exits if the call ever returns), the engine is recreated from the
  bundle, and a fresh worker carries on from the latest frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge.config.model import EventsConfig, ZoneConfig
from edge.events import SnapshotImage
from edge.pipeline.metrics import MetricsRegistry, RateMeter
from edge.pipeline.model_slot import ActiveModel, ModelSlot
from edge.pipeline.zone_scoring import (
    Zone,
    ZoneScore,
    annotate_snapshot,
    evaluate_frame,
    zones_with_labels,
)
from edge.pipeline.zone_state import Transition, ZoneState
from edge.skills.blocks.hysteresis import Hysteresis
from edge.skills.blocks.zone_score import ZoneScoreBlock
from edge.skills.default import default_runner
from edge.skills.runner import BlockFailed, SkillRunner

__all__ = ["annotate_snapshot", "evaluate_frame"]  # where callers have always found them

log = logging.getLogger(__name__)

STOPPED_SOURCE_POLL_SECONDS = 0.5  # how often a pipeline looks whether its stopped camera runs again
WHOLE_FRAME_ZONE_ID = "frame"
WHOLE_FRAME_ZONE = ZoneConfig(
    id=WHOLE_FRAME_ZONE_ID, name="Whole frame", polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
)


class FrameFeed(Protocol):
    """What the pipeline needs from a camera capture (edge.cameras.capture.CameraCapture).

    A source may also have a boolean `running` (the capture has one): while it is False the pipeline polls
    every STOPPED_SOURCE_POLL_SECONDS instead of calling wait_frame, which a stopped capture answers at once.
    """

    def wait_frame(self, after_seq: int, timeout: float) -> Any:
        """The latest frame newer than after_seq, waiting up to timeout; None when there is none."""
        ...


class PipelineSink(Protocol):
    """Where the pipeline's results go (edge.pipeline.reporter.Reporter publishes and records them)."""

    def camera_status(self, camera: str, online: bool) -> None:
        """The camera came online or went offline."""

    def zone_state(self, camera: str, zone: str, state: ZoneState, model: ActiveModel | None) -> None:
        """A zone's state changed (or its retained state is due for a refresh)."""

    def zone_event(
        self, camera: str, zone: str, transition: Transition, image: SnapshotImage | None, model: ActiveModel | None
    ) -> None:
        """A low-stock alert opened (phase start) or closed (phase end); `image`: its snapshot, drawn now or later
        (edge.events.Snapshot, on the event writer's thread)."""

    def frame_done(self, camera: str, frame: Any, scores: Sequence[tuple[str, ZoneScore]]) -> None:
        """Every evaluated frame (benchmark hook; the device's reporter ignores it)."""


def frame_zones(configs: Sequence[ZoneConfig]) -> list[Zone]:
    """Zone configs -> the zones the skills see; a zone's own `label` is its alert label (zones_with_labels
    settles it against the model)."""
    return [
        Zone(z.id, tuple((float(x), float(y)) for x, y in z.polygon), (z.label,) if z.label else ()) for z in configs
    ]


def zones_for_model(configs: Sequence[ZoneConfig], model: ActiveModel | None) -> list[Zone]:
    """Zone configs -> evaluation zones; a zone's own label overrides the model's alert labels when the model has it."""
    return zones_with_labels(frame_zones(configs), model)


def evaluate_zones(
    active: ActiveModel, image: np.ndarray, zones: Sequence[Zone], min_overlap: float
) -> list[ZoneScore]:
    """Run the model on one frame and score every zone (see edge.pipeline.zone_scoring for the rules)."""
    return evaluate_frame(active, image, zones, min_overlap)[0]


@dataclass
class PipelineStats:
    """Counters a pipeline keeps for /api/v1/status, MQTT stats and the benchmark."""

    evaluated: int = 0
    skipped: int = 0
    errors: int = 0
    watchdog_trips: int = 0
    restarts: int = 0
    last_inference_ms: float = 0.0
    last_error: str | None = None


class CameraPipeline:
    """Evaluates one camera's zones on its own thread (see the module docstring)."""

    def __init__(
        self,
        camera_id: str,
        source: FrameFeed,
        slot: ModelSlot,
        zones: Callable[[], Sequence[ZoneConfig]],
        events: EventsConfig,
        sink: PipelineSink,
        metrics: MetricsRegistry | None = None,
        fps: float | None = 2.0,
        min_overlap: float = 0.5,
        zones_refresh_seconds: float = 5.0,
        state_refresh_seconds: float = 60.0,
        skills: SkillRunner | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.skills = skills
        self.metrics = metrics or MetricsRegistry()
        # A camera without skills runs its default skill (edge.skills.default): today's rule, today's contract.
        self.default, self._models = default_runner(
            camera_id, slot, events, sink, min_overlap, state_refresh_seconds, self.metrics
        )
        self.source = source
        self.slot = slot
        self.zones_provider = zones
        self.events = events
        self.sink = sink
        self.fps = fps
        self.min_overlap = min_overlap
        self.zones_refresh_seconds = zones_refresh_seconds
        self.state_refresh_seconds = state_refresh_seconds
        self.stats = PipelineStats()
        self.capture_rate = RateMeter()
        self.eval_rate = RateMeter()
        self.skip_rate = RateMeter()
        self.online: bool | None = None  # unknown until the capture reports or a frame arrives
        self.status = "starting"
        self._zone_configs: list[ZoneConfig] = []
        self._zones: list[Zone] = []
        self._zones_loaded_at = -1e9
        self._lock = threading.RLock()  # the live view and online state: the worker and status callbacks share them
        self._stop = threading.Event()
        self._generation = 0
        self._busy_since: float | None = None
        self._busy_generation = -1
        self._last_seq = -1
        self._live_cond = threading.Condition()
        self._live_seq = 0
        self._live_frame_seq = -1
        self._live_seen: tuple[ActiveModel, dict[str, ZoneScore], list[Any]] | None = None
        self._thread: threading.Thread | None = None
        self._labels = {"camera": camera_id}
        # Counters exist from the start (at 0) so dashboards and rate() see every camera before anything happens.
        for name, help_text in (
            ("shelfwatch_frames_evaluated_total", "Frames evaluated by the model."),
            ("shelfwatch_frames_skipped_total", "Captured frames not evaluated."),
            ("shelfwatch_pipeline_errors_total", "Frames whose evaluation failed."),
            ("shelfwatch_watchdog_trips_total", "Engine calls that exceeded watchdog_seconds."),
            ("shelfwatch_pipeline_restarts_total", "Pipeline threads restarted after dying."),
        ):
            self.metrics.inc(name, help_text, self._labels, 0)
        self._last_error_log = 0.0

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> CameraPipeline:
        """Start the worker thread."""
        self._refresh_zones(force=True)
        self._generation += 1
        self._spawn()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker (waits up to timeout; an abandoned hung call is left to die with the process)."""
        self._stop.set()
        t = self._thread
        if t is not None and t.is_alive():
            t.join(timeout)

    def _spawn(self) -> None:
        gen = self._generation
        self._thread = threading.Thread(
            target=self._run, args=(gen,), name=f"pipeline-{self.camera_id}-{gen}", daemon=True
        )
        self._thread.start()

    def worker_died(self) -> bool:
        """The worker thread ended although nobody stopped it (an exception escaped its loop)."""
        t = self._thread
        return t is not None and not t.is_alive() and not self._stop.is_set() and self.status != "hung"

    def restart_worker(self) -> None:
        """Start a fresh worker after one died (the supervisor calls this)."""
        if not self.worker_died():
            return
        self.stats.restarts += 1
        self.metrics.inc("shelfwatch_pipeline_restarts_total", "Pipeline threads restarted after dying.", self._labels)
        log.error("camera %s: the pipeline thread died; restarting it", self.camera_id)
        self._generation += 1
        self._spawn()

    @property
    def healthy(self) -> bool:
        """Running and not stuck in an engine call (feeds the systemd watchdog)."""
        t = self._thread
        return t is not None and t.is_alive() and self.status not in ("hung", "stopped")

    # -- camera status ---------------------------------------------------------------------------------------

    def set_online(self, online: bool) -> None:
        """The capture says the camera is (not) delivering frames: zones go unknown at once when it is not."""
        with self._lock:
            if online == self.online:
                return
            self.online = online
            self.sink.camera_status(self.camera_id, online)
            if not online:
                self.runner.offline()  # today's zones go `unknown` at once and are published so
                self._live_seen = None
        self._live_changed()

    @property
    def runner(self) -> SkillRunner:
        """What evaluates this camera's frames: its skills, else its default skill."""
        return self.skills if self.skills is not None and self.skills.active else self.default

    def _default_blocks(self) -> tuple[ZoneScoreBlock, Hysteresis]:
        blocks = self.default.skills[0].blocks
        return blocks["score"], blocks["low"]  # type: ignore[return-value]

    # -- zones -----------------------------------------------------------------------------------------------

    def _refresh_zones(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._zones_loaded_at < self.zones_refresh_seconds:
            return
        self._zones_loaded_at = now
        try:
            configs = list(self.zones_provider())
        except Exception as err:
            log.warning("camera %s: could not read zones, keeping the previous ones: %s", self.camera_id, err)
            return
        if not configs:
            configs = [WHOLE_FRAME_ZONE]  # no zones drawn: the whole frame is one zone
        if configs == self._zone_configs:
            return
        with self._lock:
            self._zone_configs = configs
            self._zones = frame_zones(configs)
            # The default skill publishes a new zone's state (`unknown`) at once; a skill camera's sinks its own.
            self.runner.zones_changed(self._zones)
        self._live_changed()
        ids = ", ".join(sorted(z.id for z in configs))
        log.info("camera %s: evaluating %d zone(s): %s", self.camera_id, len(configs), ids)

    def zone_states(self) -> dict[str, ZoneState]:
        """A copy of the current zone states (for status pages; a skill camera's today-zones stay `unknown`)."""
        if self.runner is self.default:
            states = dict(self._default_blocks()[1].memory)
            return {z.id: states[z.id] for z in self._zone_configs if z.id in states}
        e = self.events
        return {z.id: ZoneState(e.on_threshold, e.off_threshold, e.min_frames) for z in self._zone_configs}

    def zone_configs(self) -> list[ZoneConfig]:
        """The zones evaluated now (the whole-frame zone when the camera has none)."""
        return list(self._zone_configs)

    # -- live view -------------------------------------------------------------------------------------------

    def _live_changed(self) -> None:
        with self._live_cond:
            self._live_seq += 1
            self._live_cond.notify_all()

    def live_seq(self) -> int:
        """A counter that grows with every change live() would show."""
        return self._live_seq

    def wait_live(self, after_seq: int, timeout: float) -> int | None:
        """Wait until live() changed past after_seq; its new seq, or None on timeout."""
        with self._live_cond:
            if self._live_seq <= after_seq:
                self._live_cond.wait(timeout)
            return self._live_seq if self._live_seq > after_seq else None

    def live(self) -> dict[str, Any]:
        """What the model sees now, JSON-ready: model, fps, inference ms, zones with state and score, detections."""
        states = self.zone_states()
        with self._lock:
            seen = self._live_seen
            model = seen[0] if seen is not None else self.slot.current
            scores, boxes = (seen[1], seen[2]) if seen is not None else ({}, [])
            zones = []
            for z in self._zone_configs:
                state = states.get(z.id)
                score = scores.get(z.id)
                zones.append(
                    {
                        "id": z.id,
                        "name": z.name or z.id,
                        "polygon": [[float(x), float(y)] for x, y in z.polygon],
                        "state": state.state if state else "unknown",
                        "score": None if state is None or state.score is None else round(float(state.score), 4),
                        "since": state.since if state else None,
                        "label": score.label if score else None,
                        "bbox": list(score.bbox) if score and score.bbox else None,
                        "whole_frame": z.id == WHOLE_FRAME_ZONE_ID and z is WHOLE_FRAME_ZONE,
                    }
                )
            detections = [
                {"label": b.label, "score": round(float(b.score), 4), "bbox": [round(float(v), 4) for v in b.bbox]}
                for b in boxes
            ]
        return {
            "seq": self._live_seq,
            "camera": self.camera_id,
            "status": self.status if self.online is not False else "offline",
            "online": bool(self.online),
            "frame_seq": self._live_frame_seq,
            "model": None if model is None else {"name": model.name, "version": model.version, "task": model.task},
            "fps": round(self.eval_rate.rate(), 2),
            "configured_fps": self.fps,
            "inference_ms": round(self.stats.last_inference_ms, 1),
            "zones": zones,
            "detections": detections,
        }

    # -- the worker ------------------------------------------------------------------------------------------

    def _run(self, generation: int) -> None:
        interval = 1.0 / self.fps if self.fps else 0.0
        next_due = time.monotonic()
        self.status = "running"
        while not self._stop.is_set() and generation == self._generation:
            if interval:
                delay = next_due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                # Never burst to catch up after a stall: the next evaluation is one interval from now at the latest.
                next_due = max(next_due + interval, time.monotonic())
            try:
                frame = self.source.wait_frame(self._last_seq, timeout=1.0)
            except Exception as err:
                self._report_error(f"reading a frame failed: {err}")
                self._stop.wait(0.5)
                continue
            if frame is None and not getattr(self.source, "running", True):
                # A stopped capture answers wait_frame at once: poll for its restart instead of spinning a CPU.
                self._stop.wait(STOPPED_SOURCE_POLL_SECONDS)
                continue
            if frame is None or generation != self._generation:
                continue
            try:
                self._take(frame, generation)
            except Exception as err:  # a sink or zone failure (a full disk): report it, keep evaluating
                self._busy_since = None
                self._report_error(f"handling frame {getattr(frame, 'seq', '?')} failed: {err}")
            self._check_sink()
        if generation == self._generation:
            self.status = "stopped"

    def _check_sink(self) -> None:
        """Show the sink's trouble (events that cannot be stored) in this pipeline's status while it lasts."""
        problem = getattr(self.sink, "problem", None)
        if problem is not None and not isinstance(problem, str):
            problem = None
        if problem is not None:
            if self.status != "degraded" or self.stats.last_error != problem:
                self.status = "degraded"
                self._report_error(problem)
        elif self.status == "degraded":
            self.status = "running"
            log.info("camera %s: the sink recovered", self.camera_id)

    def _take(self, frame: Any, generation: int) -> None:
        seq = int(frame.seq)
        if self._last_seq >= 0 and seq > self._last_seq + 1:
            missed = seq - self._last_seq - 1
            self.stats.skipped += missed
            self.skip_rate.add(missed)
            self.metrics.inc("shelfwatch_frames_skipped_total", "Captured frames not evaluated.", self._labels, missed)
        self.capture_rate.add(max(1, seq - self._last_seq) if self._last_seq >= 0 else 1)
        self._last_seq = seq
        if self.online is None:
            # Sources without status reports (the benchmark's) are online once they deliver; a capture's own
            # online/offline reports win, since a frame taken just before the camera failed may land after it.
            self.set_online(True)
        self._refresh_zones()
        runner = self.runner
        default = runner is self.default
        active = self._models.pin() if default else None
        if default and active is None:
            self._models.unpin()
            return  # no model installed yet: zones stay unknown
        self._busy_generation = generation
        self._busy_since = time.monotonic()
        try:
            result = runner.run(frame.image, self._zones, seq, keep_going=lambda: generation == self._generation)
        except BlockFailed as err:
            if generation != self._generation:
                return
            self._busy_since = None
            if type(err.settings).category == "model":
                version = active.version if active is not None else "?"
                self._report_error(f"model {version} failed on frame {seq}: {err.error}")
                return
            self._evaluated(err.frame.model_ms)
            raise err.error from err  # a sink failed (a full disk): reported as today, evaluation goes on
        except Exception as err:
            if generation == self._generation:
                self._busy_since = None
                self._report_error(f"skills failed on frame {seq}: {err}")
            return
        finally:
            self._models.unpin()
        if generation != self._generation:
            return  # the watchdog gave up on this worker while it was stuck; a fresh one carries on
        self._busy_since = None
        if default and self.default.skills[0].status == "idle":
            return
        self._evaluated(result.model_ms)
        scored: list[tuple[str, ZoneScore]] = []
        with self._lock:
            self._live_frame_seq = seq
            self._live_seen = self._default_blocks()[0].seen if default else None
            if self._live_seen is not None:
                scored = [(z.id, self._live_seen[1][z.id]) for z in self._zones if z.id in self._live_seen[1]]
        self._live_changed()
        self.sink.frame_done(self.camera_id, frame, scored)

    def _evaluated(self, model_ms: float) -> None:
        """Count one evaluated frame and its model time."""
        if self.status not in ("running", "degraded"):
            self.status = "running"
        self.stats.evaluated += 1
        self.stats.last_inference_ms = model_ms
        self.eval_rate.add()
        self.metrics.inc("shelfwatch_frames_evaluated_total", "Frames evaluated by the model.", self._labels)
        self.metrics.observe("shelfwatch_inference_ms", "Model time per evaluated frame (ms).", model_ms, self._labels)

    def _report_error(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message
        self.metrics.inc("shelfwatch_pipeline_errors_total", "Frames whose evaluation failed.", self._labels)
        now = time.monotonic()
        if now - self._last_error_log > 10.0:  # a broken model fails every frame: log once per 10 s, count all
            self._last_error_log = now
            log.error("camera %s: %s", self.camera_id, message)

    # -- watchdog hooks --------------------------------------------------------------------------------------

    def busy_for(self) -> float:
        """Seconds the current engine call has been running (0 when idle)."""
        since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    def mark_hang_reported(self) -> None:
        """The watchdog has seen the current call: report it once, not on every check."""
        self._busy_since = None

    def recover_from_hang(self, seconds: float) -> None:
        """Abandon the stuck worker, recreate the engine, start a fresh worker."""
        if self._busy_generation != self._generation:
            return
        self.status = "hung"
        self.stats.watchdog_trips += 1
        self.metrics.inc(
            "shelfwatch_watchdog_trips_total", "Engine calls that exceeded watchdog_seconds.", self._labels
        )
        active = self.slot.current
        log.error(
            "camera %s: engine call hung for %.1f s (model %s); recreating the engine",
            self.camera_id,
            seconds,
            active.version if active else "none",
        )
        self._busy_since = None
        self._generation += 1  # the stuck worker sees this when (if) its call returns and exits
        try:
            self.slot.reload()
        except Exception as err:
            log.error("camera %s: recreating the engine failed: %s", self.camera_id, err)
        if not self._stop.is_set():
            self._spawn()


class Watchdog:
    """The pipelines' supervisor: a call longer than `limit_seconds` is reported and recovered, and a worker thread
    that died is restarted (counted in `shelfwatch_pipeline_restarts_total`)."""

    def __init__(self, pipelines: Sequence[CameraPipeline], limit_seconds: float, interval: float = 0.25) -> None:
        self.pipelines = list(pipelines)
        self.limit_seconds = limit_seconds
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pipeline-watchdog", daemon=True)

    def start(self) -> Watchdog:
        """Start watching."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for p in self.pipelines:
                if p.worker_died():  # the supervisor's half: no systemd needed to bring a dead thread back
                    p.restart_worker()
                    continue
                busy = p.busy_for()
                if busy > self.limit_seconds:
                    # Recovery loads a model: do it off the watchdog thread so other pipelines stay watched.
                    p.mark_hang_reported()
                    threading.Thread(target=p.recover_from_hang, args=(busy,), daemon=True).start()
