"""`mqtt_event`: an event on `<prefix>/<device>/events` for every firing upstream item (docs/MQTT.md's contract,
`type` set by the block, plus `skill` and `trace`); durable like today's events (event log + outbox, QoS 1).

The runner builds the event (one per decision, shared with a webhook on the same input, same `id`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from edge.pipeline.zone_scoring import frame_snapshot
from edge.skills.blocks._zone import Contract, contract_field, zone_parts
from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item


def check_event_type(v: str | None) -> str | None:
    """Event types are short words: letters, digits, '_' and '-'."""
    if v is not None and not (0 < len(v) <= 63 and all(c.isalnum() or c in "_-" for c in v)):
        raise ValueError(f"event type {v!r} must be 1-63 letters, digits, '_' or '-'")
    return v


class EventSinkSettings(BlockSettings):
    """An event sink's settings (mqtt_event, webhook): it acts on every firing item; its `event` type is a word."""

    category: ClassVar[str] = "sink"
    event_sink: ClassVar[bool] = True

    @field_validator("event", check_fields=False)
    @classmethod
    def _event(cls, v: str | None) -> str | None:
        return check_event_type(v)


class EventSink(Block):
    """An event sink passes on its firing input items: the runner builds and sends their events."""

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        return [i for i in items if i.fires]


class MqttEventSettings(EventSinkSettings):
    type: Literal["mqtt_event"] = "mqtt_event"
    event: str = Field("low_stock", description="The event's `type` (low_stock, product_gap, ...).")
    contract: Contract = contract_field()


@block_type(MqttEventSettings)
class MqttEvent(EventSink):
    """`contract: zone` sends today's events itself (the runner routes only the skill contract's)."""

    settings: MqttEventSettings

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        firing = super().run(items, frame)
        parts = zone_parts(self) if self.settings.contract == "zone" else None
        if parts is None:
            return firing
        states, sink = parts
        for i in firing:
            t = states.transitions.get(i.zone)
            if t is None or t.phase is None:
                continue
            # Drawn and encoded on the event writer's thread (edge.events.EventWriter), not this pipeline's.
            sink.event(i.zone, t, frame_snapshot(frame.image, frame.polygon(i.zone), t.new, t.bbox))
        return firing
