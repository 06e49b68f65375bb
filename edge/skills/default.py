"""The default skill: what a camera without `skills` runs, built from its config, byte for byte today's contract.

    - {id: score, type: zone_score, project: default}          # the default project's active model, per zone
    - {id: low, type: hysteresis, input: score, on: <events.on_threshold>, off: <events.off_threshold>,
       min_frames: <events.min_frames>}
    - {id: state, type: mqtt_state, input: low, contract: zone}   # retained <camera>/<zone>/state
    - {id: event, type: mqtt_event, input: low, event: low_stock, contract: zone}   # today's events + snapshot

It runs through the skill runner like any skill (edge.skills.runner, `strict`: a failure is the pipeline's to
report, as before), with two camera-side parts: its model is the model slot's (the default project's active
version, hot-swapped by the slot), and its `contract: zone` sinks publish through the camera pipeline's sink
(edge.pipeline.reporter.Reporter on a device: topics, payloads, events, snapshots and metrics as docs/MQTT.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.skills.config import SkillConfig
from edge.skills.context import BuildContext
from edge.skills.runner import SkillRunner

if TYPE_CHECKING:
    from edge.config.model import EventsConfig
    from edge.events import SnapshotImage
    from edge.pipeline.metrics import MetricsRegistry
    from edge.pipeline.model_slot import ActiveModel, ModelSlot
    from edge.pipeline.zone_state import Transition, ZoneState

DEFAULT_SKILL_ID = "default"
DEFAULT_PROJECT = "default"  # the default project: the model slot answers for it


def default_skill(events: EventsConfig, state_refresh_seconds: float = 60.0) -> SkillConfig:
    """The default skill of a camera with these event settings."""
    return SkillConfig.model_validate(
        {
            "id": DEFAULT_SKILL_ID,
            "blocks": [
                {"id": "score", "type": "zone_score", "project": DEFAULT_PROJECT},
                {
                    "id": "low",
                    "type": "hysteresis",
                    "input": "score",
                    "on": events.on_threshold,
                    "off": events.off_threshold,
                    "min_frames": events.min_frames,
                },
                {
                    "id": "state",
                    "type": "mqtt_state",
                    "input": "low",
                    "contract": "zone",
                    "refresh_seconds": state_refresh_seconds,
                },
                {"id": "event", "type": "mqtt_event", "input": "low", "event": "low_stock", "contract": "zone"},
            ],
        }
    )


class SlotModels:
    """The default skill's model source: the model slot's current model, pinned for the length of a frame so a
    hot swap never changes the model between a frame's scores and its state and events."""

    def __init__(self, slot: ModelSlot) -> None:
        self.slot = slot
        self.pinned: ActiveModel | None = None

    def pin(self) -> ActiveModel | None:
        """Fix the model of the frame that starts now."""
        self.pinned = self.slot.current
        return self.pinned

    def unpin(self) -> None:
        """The frame is done: states published between frames name the slot's model then."""
        self.pinned = None

    def current(self) -> ActiveModel | None:
        """The frame's model, or the slot's between frames."""
        return self.pinned if self.pinned is not None else self.slot.current

    def get(self, project: str) -> ActiveModel | None:
        """The model of the default project (the only one this source answers for)."""
        return self.current() if project == DEFAULT_PROJECT else None

    def why_idle(self, project: str) -> str:
        """No model installed yet (zones stay unknown until one is activated)."""
        return "no model is installed yet" if project == DEFAULT_PROJECT else f"project {project!r} is not the default"


@dataclass(frozen=True)
class PipelineZoneSink:
    """edge.skills.context.ZoneSink over a camera pipeline's sink (edge.pipeline.camera_pipeline.PipelineSink)."""

    camera: str
    sink: Any
    models: SlotModels

    def state(self, zone: str, state: ZoneState) -> None:
        """Today's retained zone state."""
        self.sink.zone_state(self.camera, zone, state, self.models.current())

    def event(self, zone: str, transition: Transition, image: SnapshotImage | None) -> None:
        """Today's low-stock event."""
        self.sink.zone_event(self.camera, zone, transition, image, self.models.current())


def default_runner(
    camera: str,
    slot: ModelSlot,
    events: EventsConfig,
    sink: Any,
    min_overlap: float = 0.5,
    state_refresh_seconds: float = 60.0,
    metrics: MetricsRegistry | None = None,
) -> tuple[SkillRunner, SlotModels]:
    """A camera's default skill, built (strict) and ready to run, and its model source (`metrics`: each block's
    time goes to shelfwatch_skill_block_ms{skill="default"}, as a configured skill's)."""
    models = SlotModels(slot)
    zone_sink = PipelineZoneSink(camera, sink, models)

    def make(skill: str) -> BuildContext:
        return BuildContext(camera=camera, skill=skill, models=models, min_overlap=min_overlap, zone_sink=zone_sink)

    skill = default_skill(events, state_refresh_seconds)
    return SkillRunner(camera, [skill], make, metrics=metrics, strict=True), models
