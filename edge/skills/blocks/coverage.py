"""`coverage`: per zone, the share of its area covered by upstream boxes of a label (0..1, the item's value)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from edge.skills.geometry import coverage
from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item, zone_value


class CoverageSettings(BlockSettings):
    type: Literal["coverage"] = "coverage"
    label: str | None = Field(None, description="Label of the boxes that count (e.g. empty_shelf); default: all.")

    category: ClassVar[str] = "transform"


@block_type(CoverageSettings)
class Coverage(Block):
    settings: CoverageSettings

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        label = self.settings.label
        boxes = [i for i in items if i.bbox is not None and (label is None or i.label == label)]
        out = []
        for z in frame.zones:
            share = coverage(z, [b.bbox for b in boxes if b.bbox is not None])
            inside = [b for b in boxes if b.zone == z.id]
            out.append(zone_value(z.id, share, inside, label))
        return out
