"""`window`: per zone, the mean / max / min / count of the upstream value over the last `seconds`."""

from __future__ import annotations

from collections import deque
from typing import ClassVar, Literal

from pydantic import Field

from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item, strongest_per_zone


class WindowSettings(BlockSettings):
    type: Literal["window"] = "window"
    seconds: float = Field(gt=0, le=86400, description="Length of the sliding window.")
    agg: Literal["mean", "max", "min", "count"] = Field(
        "mean", description="mean/max/min of the values, or count: in how many evaluations the zone had an item."
    )

    category: ClassVar[str] = "time"


@block_type(WindowSettings)
class Window(Block):
    settings: WindowSettings
    memory: dict[str, deque[tuple[float, float | None]]]  # zone -> (when, value) of the evaluations in the window

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        s = self.settings
        best = strongest_per_zone(items)
        out = []
        for z in frame.zones:
            h = self.memory.setdefault(z.id, deque())
            src = best.get(z.id)
            h.append((frame.now, src.number if src is not None else None))
            while h and h[0][0] < frame.now - s.seconds:
                h.popleft()
            values = [v for _, v in h if v is not None]
            if s.agg == "count":
                agg = float(len(values))
            elif not values:
                agg = 0.0
            elif s.agg == "max":
                agg = max(values)
            elif s.agg == "min":
                agg = min(values)
            else:
                agg = sum(values) / len(values)
            out.append(
                Item(
                    zone=z.id,
                    label=src.label if src else None,
                    score=src.score if src else 0.0,
                    bbox=src.bbox if src else None,
                    value=agg,
                )
            )
        return out
