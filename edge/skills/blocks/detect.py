"""`detect`: a project's active detector on the whole frame -> boxes (each assigned to the zone holding it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.skills.blocks._models import ModelBlock, ModelBlockSettings, cached
from edge.skills.geometry import zone_of
from edge.skills.registry import block_type
from edge.skills.values import Frame, Item

# Shared calls decode at this floor so skills with different min_score reuse one inference per frame.
SHARED_SCORE_FLOOR = 0.05


class DetectSettings(ModelBlockSettings):
    type: Literal["detect"] = "detect"
    project: str = Field(description="Project whose active version runs (a detection project).")
    min_score: float | None = Field(None, ge=0, le=1, description="Lowest box score kept; default: the model's.")
    labels: list[str] | None = Field(None, description="Keep only boxes of these labels; default: all.")


@block_type(DetectSettings)
class Detect(ModelBlock):
    settings: DetectSettings
    task = "detection"

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        active = self.model()
        s, model = self.settings, active.model
        floor = SHARED_SCORE_FLOOR
        detections = cached(
            frame, ("detect", active.version, id(active)), lambda: model.predict(frame.image, score_threshold=floor)
        )
        threshold = s.min_score if s.min_score is not None else float(model.manifest.thresholds.score)
        out = []
        for d in detections:
            if float(d.score) < threshold or (s.labels is not None and d.label not in s.labels):
                continue
            bbox = tuple(float(v) for v in d.bbox)
            zone = zone_of(bbox, frame.zones, self.ctx.min_overlap)  # type: ignore[arg-type]
            out.append(Item(zone=zone, label=d.label, score=float(d.score), bbox=bbox))  # type: ignore[arg-type]
        return out
