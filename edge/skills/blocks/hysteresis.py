"""`hysteresis`: today's zone state machine on the upstream value: `low_stock` after `min_frames` values >= `on`,
`ok` after `min_frames` values <= `off`; the item carries `state`, and `phase` start/end when an alert opens or
closes (edge.pipeline.zone_state has the exact rules). A zone without an upstream item this frame counts as 0.

YAML 1.1 reads the bare keys `on:`/`off:` as true/false; the block accepts both spellings.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from edge.pipeline.zone_scoring import ZoneScore
from edge.pipeline.zone_state import ZoneState
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
    settings: HysteresisSettings

    def __init__(self, settings: Any, ctx: Any) -> None:
        super().__init__(settings, ctx)
        self.states: dict[str, ZoneState] = {}

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        s = self.settings
        best = strongest_per_zone(items)
        out = []
        for z in frame.zones:
            state = self.states.get(z.id)
            if state is None:
                state = self.states[z.id] = ZoneState(s.on, s.off, s.min_frames)
            src = best.get(z.id, Item(zone=z.id))
            t = state.update(ZoneScore(src.number, src.label, src.bbox))
            out.append(
                Item(
                    zone=z.id,
                    label=src.label,
                    score=src.score,
                    bbox=src.bbox,
                    value=src.number,
                    state=state.state,
                    phase=t.phase if t is not None else None,
                )
            )
        return out
