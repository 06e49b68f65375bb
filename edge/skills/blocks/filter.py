"""`filter`: keep the upstream items of some labels, a minimum score, a box area range, inside some zones."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from edge.skills.geometry import box_area
from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item


class FilterSettings(BlockSettings):
    type: Literal["filter"] = "filter"
    labels: list[str] | None = Field(None, description="Keep only these labels.")
    min_score: float = Field(0.0, ge=0, le=1, description="Keep items scoring at least this.")
    min_area: float = Field(0.0, ge=0, le=1, description="Smallest box area kept, as a share of the frame.")
    max_area: float = Field(1.0, gt=0, le=1, description="Largest box area kept, as a share of the frame.")
    zones: list[str] | None = Field(None, description="Keep only items inside these zones (ids).")

    category: ClassVar[str] = "transform"


@block_type(FilterSettings)
class Filter(Block):
    settings: FilterSettings

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        s = self.settings
        out = []
        for i in items:
            if s.labels is not None and i.label not in s.labels:
                continue
            if i.score < s.min_score:
                continue
            if i.bbox is not None and not (s.min_area <= box_area(i.bbox) <= s.max_area):
                continue
            if s.zones is not None and i.zone not in s.zones:
                continue
            out.append(i)
        return out
