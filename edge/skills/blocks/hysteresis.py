"""`hysteresis`: today's zone state machine on the upstream value: `low_stock` after `min_frames` values >= `on`,
`ok` after `min_frames` values <= `off`; the item carries `state`, and `phase` start/end when an alert opens or
closes (edge.pipeline.zone_state has the exact rules). A zone without an upstream item this frame counts as 0.

YAML 1.1 reads the bare keys `on:`/`off:` as true/false; the block accepts both spellings.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from edge.pipeline.zone_scoring import Zone, ZoneScore
from edge.pipeline.zone_state import Transition, ZoneState
from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item, strongest_per_zone


class HysteresisSettings(BlockSettings):
    type: Literal["hysteresis"] = "hysteresis"
    on: float = Field(description="Value at or above which a zone counts as low stock.")
    off: float = Field(description="Value at or below which a zone counts as stocked (below `on`).")
    min_frames: int = Field(3, ge=1, description="Consecutive evaluations needed to change state.")

    category: ClassVar[str] = "time"

    @model_validator(mode="before")
    @classmethod
    def _yaml_booleans(cls, data: Any) -> Any:
        if isinstance(data, dict) and (True in data or False in data):
            data = dict(data)
            if True in data:
                data["on"] = data.pop(True)
            if False in data:
                data["off"] = data.pop(False)
        return data

    @model_validator(mode="after")
    def _order(self) -> HysteresisSettings:
        if self.off >= self.on:
            raise ValueError("off must be below on (hysteresis)")
        return self


@block_type(HysteresisSettings)
class Hysteresis(Block):
    """Its zones' states (`memory`) and the transitions of the last frame (or of going offline: every zone
    `unknown`), which the `contract: zone` sinks publish as today's zone states and events."""

    settings: HysteresisSettings
    memory: dict[str, ZoneState]
    transitions: Mapping[str, Transition] = MappingProxyType({})

    def state_of(self, zone: str) -> ZoneState:
        """The zone's state machine (a new zone starts `unknown`)."""
        state = self.memory.get(zone)
        if state is None:
            s = self.settings
            state = self.memory[zone] = ZoneState(s.on, s.off, s.min_frames)
        return state

    def zones_changed(self, zones: list[Zone]) -> None:
        super().zones_changed(zones)
        for z in zones:
            self.state_of(z.id)

    def offline(self) -> None:
        changed = {zone: state.set_offline() for zone, state in self.memory.items()}
        self.transitions = {zone: t for zone, t in changed.items() if t is not None}

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        best = strongest_per_zone(items)
        out, transitions = [], {}
        for z in frame.zones:
            state = self.state_of(z.id)
            src = best.get(z.id, Item(zone=z.id))
            t = state.update(ZoneScore(src.number, src.label, src.bbox))
            if t is not None:
                transitions[z.id] = t
            phase = t.phase if t is not None else None
            out.append(src.with_(value=src.number, state=state.state, phase=phase))
        self.transitions = transitions
        return out
