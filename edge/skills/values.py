"""What flows between blocks: a list of `Item`s per frame, and the frame context every block sees."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edge.pipeline.zone_scoring import BBox, Zone

WHOLE_FRAME = "frame"


@dataclass(frozen=True)
class Item:
    """One value a block outputs: a box (detect, filter, classify on boxes) or a zone's value (coverage, count...).

    `zone` is the zone it belongs to (a box: the zone holding most of it; WHOLE_FRAME outside every zone),
    `value` the block's number (coverage share, count, window aggregate; None for a plain box), `state` and
    `phase` are set by hysteresis (phase on the frame an alert opens or closes).
    """

    zone: str
    label: str | None = None
    score: float = 0.0
    bbox: BBox | None = None
    value: float | None = None
    state: str | None = None
    phase: str | None = None

    @property
    def number(self) -> float:
        """The value a time or threshold block works on: `value` when set, else `score`."""
        return float(self.value) if self.value is not None else float(self.score)

    @property
    def fires(self) -> bool:
        """Whether an event sink acts on it: a state item only on the frame its alert opens or closes."""
        return self.phase is not None if self.state is not None else True

    def with_(self, **changes: Any) -> Item:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, without empty fields (traces and the debug view)."""
        out: dict[str, Any] = {"zone": self.zone}
        if self.label is not None:
            out["label"] = self.label
        out["score"] = round(float(self.score), 4)
        if self.bbox is not None:
            out["bbox"] = [round(float(v), 4) for v in self.bbox]
        if self.value is not None:
            out["value"] = round(float(self.value), 4)
        if self.state is not None:
            out["state"] = self.state
        if self.phase is not None:
            out["phase"] = self.phase
        return out


def strongest_per_zone(items: list[Item]) -> dict[str, Item]:
    """Per zone id, its item with the highest `number` (the first of equals): what a time block follows."""
    best: dict[str, Item] = {}
    for i in items:
        if i.zone not in best or i.number > best[i.zone].number:
            best[i.zone] = i
    return best


def zone_value(zone: str, value: float, inside: list[Item], label: str | None) -> Item:
    """Zone `zone`'s item holding `value` and the best-scoring of the boxes `inside` it: that box's score and
    bbox, and its label unless `label` names the one counted (score 0 and no bbox when there is none)."""
    best = max(inside, key=lambda b: b.score, default=None)
    return Item(
        zone=zone,
        label=label if label is not None else (best.label if best else None),
        score=best.score if best else 0.0,
        bbox=best.bbox if best else None,
        value=value,
    )


@dataclass
class Frame:
    """One frame as the skills see it: the image, the camera's zones, the clock, a cache shared by the skills."""

    image: np.ndarray
    zones: list[Zone]
    now: float  # monotonic seconds
    ts: str  # UTC ISO time of the evaluation
    seq: int = -1
    cache: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # model outputs of this frame
    model_ms: float = 0.0  # time spent in models (cached calls count once)
    keep_going: Callable[[], bool] = field(default=lambda: True)  # False: the frame was abandoned (a hung model)

    def polygon(self, zone: str) -> tuple[tuple[float, float], ...]:
        """The polygon of a zone of this frame (the whole frame for an item outside every zone)."""
        found = next((z for z in self.zones if z.id == zone), None)
        return found.polygon if found is not None else ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
