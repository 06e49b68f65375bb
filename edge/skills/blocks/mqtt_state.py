"""`mqtt_state`: the upstream state of every zone as a retained MQTT message, on change and every minute.

Topic (device-relative): `<camera>/<skill>/<zone>/state`, payload like today's zone state plus `skill` and
`block`: `{"state", "score", "value", "since", "skill", "block"}`. Items without a `state` (a coverage, a
count) publish `state: null` with their value.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from edge.comms.base import to_json
from edge.skills.blocks._zone import Contract, contract_field, zone_parts
from edge.skills.context import ZoneSink
from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item

if TYPE_CHECKING:
    from edge.pipeline.zone_scoring import Zone
    from edge.pipeline.zone_state import ZoneState


class MqttStateSettings(BlockSettings):
    type: Literal["mqtt_state"] = "mqtt_state"
    refresh_seconds: float = Field(60.0, gt=0, description="Re-publish an unchanged state this often.")
    contract: Contract = contract_field()

    category: ClassVar[str] = "sink"


@block_type(MqttStateSettings)
class MqttState(Block):
    settings: MqttStateSettings
    # zone -> (what was published, when, since); `contract: zone`: zone -> when its state was last published
    memory: dict[str, Any]

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        if self.settings.contract == "zone":
            return self._zone_states(items, frame.now)
        out = []
        for i in items:
            key = i.state if i.state is not None else round(i.number, 3)
            prev = self.memory.get(i.zone)
            if prev is not None and prev[0] == key and frame.now - prev[1] < self.settings.refresh_seconds:
                continue
            since = frame.ts if prev is None or prev[0] != key else prev[2]
            payload = {
                "state": i.state,
                "score": round(float(i.score), 4),
                "value": None if i.value is None else round(float(i.value), 4),
                "since": since,
                "skill": self.ctx.skill,
                "block": self.id,
            }
            self.ctx.comms.publish(f"{self.ctx.camera}/{self.ctx.skill}/{i.zone}/state", to_json(payload), retain=True)
            self.memory[i.zone] = (key, frame.now, since)
            out.append(i)
        return out

    def _zone_states(self, items: list[Item], now: float) -> list[Item]:
        """Today's rule: a zone's state on every change, and every `refresh_seconds` while unchanged."""
        parts = zone_parts(self)
        if parts is None:
            return []
        states, sink = parts
        out = []
        for i in items:
            state = states.memory.get(i.zone)
            last = self.memory.get(i.zone, -1e18)
            if state is not None and (i.zone in states.transitions or now - last >= self.settings.refresh_seconds):
                self._publish(sink, i.zone, state)
                out.append(i)
        return out

    def _publish(self, sink: ZoneSink, zone: str, state: ZoneState) -> None:
        self.memory[zone] = time.monotonic()
        sink.state(zone, state)

    def zones_changed(self, zones: list[Zone]) -> None:
        """`contract: zone`: a new zone's state is published at once (`unknown` until decided), as today."""
        super().zones_changed(zones)
        parts = zone_parts(self) if self.settings.contract == "zone" else None
        if parts is not None:
            for z in zones:
                if z.id not in self.memory and z.id in parts[0].memory:
                    self._publish(parts[1], z.id, parts[0].memory[z.id])

    def offline(self) -> None:
        """`contract: zone`: every zone that went `unknown` is published."""
        parts = zone_parts(self) if self.settings.contract == "zone" else None
        if parts is not None:
            for zone in parts[0].transitions:
                self._publish(parts[1], zone, parts[0].memory[zone])
