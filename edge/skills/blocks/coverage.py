"""`coverage`: per zone, the share of its area covered by upstream boxes of a label (0..1, the item's value)."""

from __future__ import annotations

from typing import Literal

from edge.pipeline.zone_scoring import Zone
from edge.skills.blocks._measure import ZoneMeasure, ZoneMeasureSettings
from edge.skills.geometry import coverage
from edge.skills.registry import block_type
from edge.skills.values import Item


class CoverageSettings(ZoneMeasureSettings):
    type: Literal["coverage"] = "coverage"


@block_type(CoverageSettings)
class Coverage(ZoneMeasure):
    settings: CoverageSettings

    def measure(self, zone: Zone, items: list[Item]) -> float:
        return coverage(zone, [i.bbox for i in items if i.bbox is not None])
