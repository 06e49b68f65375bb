"""`count`: per zone, how many upstream items (boxes) lie in it (the item's value)."""

from __future__ import annotations

from typing import Literal

from edge.pipeline.zone_scoring import Zone
from edge.skills.blocks._measure import ZoneMeasure, ZoneMeasureSettings
from edge.skills.registry import block_type
from edge.skills.values import Item


class CountSettings(ZoneMeasureSettings):
    type: Literal["count"] = "count"


@block_type(CountSettings)
class Count(ZoneMeasure):
    settings: CountSettings

    def measure(self, zone: Zone, items: list[Item]) -> float:
        return float(sum(1 for i in items if i.zone == zone.id))
