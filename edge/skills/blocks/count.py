"""`count`: per zone, how many upstream items (boxes) lie in it (the item's value)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item, zone_value


class CountSettings(BlockSettings):
    type: Literal["count"] = "count"
    label: str | None = Field(None, description="Count only items of this label; default: all.")

    category: ClassVar[str] = "transform"


@block_type(CountSettings)
class Count(Block):
    settings: CountSettings

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        label = self.settings.label
        out = []
        for z in frame.zones:
            inside = [i for i in items if i.zone == z.id and (label is None or i.label == label)]
            out.append(zone_value(z.id, float(len(inside)), inside, label))
        return out
