"""`zone_score`: today's rule for one model: a score per zone (edge.pipeline.zone_scoring has the rules).

A classifier scores each zone's crop (outside the polygon blacked out; the crops of a camera go to the model as
one batch): the highest probability among the zone's alert labels. A detector scores each zone with its best
alert-label box overlapping the zone by at least `min_overlap` (the box's share inside it), that box's bbox with
it. A zone's alert labels are its own `label` when the model has it, else the model's alert labels. The default
skill of a camera without `skills` (edge.skills.default) starts with it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.pipeline.model_slot import ActiveModel
from edge.pipeline.zone_scoring import DetectedBox, Zone, ZoneScore, evaluate_frame, zones_with_labels
from edge.skills.blocks._models import ModelBlock, ModelBlockSettings, cached
from edge.skills.registry import block_type
from edge.skills.values import Frame, Item


class ZoneScoreSettings(ModelBlockSettings):
    type: Literal["zone_score"] = "zone_score"
    project: str = Field(description="Project whose active version runs (a classifier or a detector).")


@block_type(ZoneScoreSettings)
class ZoneScoreBlock(ModelBlock):
    """Keeps what it saw last (`seen`: the model, each zone's score, the detector's boxes) for the live view."""

    settings: ZoneScoreSettings
    seen: tuple[ActiveModel, dict[str, ZoneScore], list[DetectedBox]] | None = None
    _labelled: tuple[tuple[object, ...], list[Zone]] = ((), [])

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        active = self.model()
        zones = self._zones(frame.zones, active)
        key = ("zone_score", active.version, id(active), tuple(zones))
        scores, boxes = cached(frame, key, lambda: evaluate_frame(active, frame.image, zones, self.ctx.min_overlap))
        self.seen = (active, {z.id: sc for z, sc in zip(zones, scores, strict=True)}, boxes)
        return [
            Item(zone=z.id, label=sc.label, score=sc.score, bbox=sc.bbox, value=sc.score)
            for z, sc in zip(zones, scores, strict=True)
        ]

    def _zones(self, zones: list[Zone], active: ActiveModel) -> list[Zone]:
        # Resolved only when the zones or the model change (and so warned about once, not every frame).
        key = (tuple(zones), active.version, id(active))
        if self._labelled[0] != key:
            self._labelled = (key, zones_with_labels(zones, active))
        return self._labelled[1]
