"""`mqtt_state`: the upstream state of every zone as a retained MQTT message, on change and every minute.

Topic (device-relative): `<camera>/<skill>/<zone>/state`, payload like today's zone state plus `skill` and
`block`: `{"state", "score", "value", "since", "skill", "block"}`. Items without a `state` (a coverage, a
count) publish `state: null` with their value.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from edge.comms.base import to_json
from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item


class MqttStateSettings(BlockSettings):
    type: Literal["mqtt_state"] = "mqtt_state"
    refresh_seconds: float = Field(60.0, gt=0, description="Re-publish an unchanged state this often.")

    category: ClassVar[str] = "sink"


@block_type(MqttStateSettings)
class MqttState(Block):
    settings: MqttStateSettings

    def __init__(self, settings: Any, ctx: Any) -> None:
        super().__init__(settings, ctx)
        self.published: dict[str, tuple[Any, float, str]] = {}

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        out = []
        for i in items:
            key = i.state if i.state is not None else round(i.number, 3)
            prev = self.published.get(i.zone)
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
            self.published[i.zone] = (key, frame.now, since)
            out.append(i)
        return out
