"""The pipelines' sink on the device: turns zone states and alerts into messages, event log rows and snapshots.

Knows the device-relative topics (`<camera>/status`, `<camera>/<zone>/state`, `events`) and payload shapes of
docs/MQTT.md, but not MQTT: it talks to a `Communicator`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from edge.comms.base import Communicator, to_json
from edge.events import Event, EventDraft, EventLog, EventWriter, SnapshotImage, SnapshotStore
from edge.pipeline.metrics import MetricsRegistry
from edge.pipeline.model_slot import ActiveModel
from edge.pipeline.zone_scoring import ZoneScore
from edge.pipeline.zone_state import Transition, ZoneState
from edge.timestamps import utc_now_iso

log = logging.getLogger(__name__)


def model_ref(model: ActiveModel | None) -> dict[str, str | None]:
    """`{"name", "version"}` of the model, or nulls before any model is installed."""
    return {"name": model.name if model else None, "version": model.version if model else None}


def state_payload(state: ZoneState, model: ActiveModel | None) -> dict[str, Any]:
    """The retained `<camera>/<zone>/state` JSON: state, score, since, model."""
    return {
        "state": state.state,
        "score": None if state.score is None else round(float(state.score), 4),
        "since": state.since,
        "model": model_ref(model),
    }


class Reporter:
    """PipelineSink for the device: publish states, record and queue events, keep snapshots, count."""

    def __init__(
        self,
        comms: Communicator,
        event_log: EventLog,
        snapshots: SnapshotStore,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.comms = comms
        self.event_log = event_log
        self.snapshots = snapshots
        self.metrics = metrics or MetricsRegistry()
        # Skill events go to their own sinks (edge.skills.runner.SkillsHub.route); True: delivered there.
        self.route: Callable[[Event], bool] | None = None
        # A full disk must not lose events nor stop the pipeline: the writer keeps what the disk refuses, in order.
        self.writer = EventWriter(event_log, self._publish_event, snapshots, on_problem=self._storage_problem)
        self.metrics.set("shelfwatch_events_unwritten", "Events waiting in memory for the disk.", 0)
        self.metrics.inc("shelfwatch_event_write_errors_total", "Event writes the disk refused.", None, 0)

    @property
    def problem(self) -> str | None:
        """What keeps events from being stored, while it lasts (pipelines report it in their status)."""
        return self.writer.problem

    def _storage_problem(self, problem: str | None, waiting: int) -> None:
        self.metrics.set("shelfwatch_events_unwritten", "Events waiting in memory for the disk.", waiting)
        if problem is not None:
            self.metrics.inc("shelfwatch_event_write_errors_total", "Event writes the disk refused.")

    def camera_status(self, camera: str, online: bool) -> None:
        """Retained `online`/`offline` on `<camera>/status`."""
        log.info("camera %s is %s", camera, "online" if online else "offline")
        self.metrics.set(
            "shelfwatch_camera_online", "1 while the camera delivers frames.", int(online), {"camera": camera}
        )
        self.comms.publish(f"{camera}/status", "online" if online else "offline", retain=True)

    def zone_state(self, camera: str, zone: str, state: ZoneState, model: ActiveModel | None) -> None:
        """Retained zone state JSON."""
        self.comms.publish(f"{camera}/{zone}/state", to_json(state_payload(state, model)), retain=True)

    def zone_event(
        self, camera: str, zone: str, transition: Transition, image: SnapshotImage | None, model: ActiveModel | None
    ) -> None:
        """Queue the event for the writer thread, which records it (log, snapshot), then hands it to the durable
        outbox (edge.events.EventWriter); returns without waiting for either."""
        assert transition.phase is not None
        draft = EventDraft(
            phase=transition.phase,
            camera=camera,
            zone=zone,
            label=transition.label,
            score=transition.score,
            bbox=transition.bbox,
            ts=utc_now_iso("milliseconds"),
            model_name=model.name if model else None,
            model_version=model.version if model else None,
        )
        self.writer.submit(draft, image)
        self.metrics.inc(
            "shelfwatch_events_total", "Low-stock events raised.", {"camera": camera, "phase": transition.phase}
        )
        log.info("event %s %s/%s score %.2f", transition.phase, camera, zone, draft.score)

    def _publish_event(self, event: Event) -> None:
        if self.route is not None and self.route(event):
            return
        self.comms.publish_durable("events", event.to_json(), key=event.id)

    def requeue_unqueued(self) -> int:
        """After a crash: queue events the log has but the outbox never got; returns how many."""
        pending = self.event_log.unqueued()
        self.writer.requeue(pending)
        if pending:
            log.warning("re-queued %d event(s) that a previous run recorded but had not queued", len(pending))
        return len(pending)

    def frame_done(self, camera: str, frame: Any, scores: Sequence[tuple[str, ZoneScore]]) -> None:
        """Nothing to do per frame on the device (the benchmark's reporter publishes here)."""
