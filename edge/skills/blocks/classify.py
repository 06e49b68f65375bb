"""`classify`: a project's active classifier on the camera's zone crops, the whole frame, or upstream boxes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edge.pipeline.zone_scoring import zone_crop
from edge.skills.blocks._models import ModelBlock, ModelBlockSettings, cached
from edge.skills.geometry import crop_box
from edge.skills.registry import block_type
from edge.skills.values import WHOLE_FRAME, Frame, Item


class ClassifySettings(ModelBlockSettings):
    type: Literal["classify"] = "classify"
    project: str = Field(description="Project whose active version runs (a classification project).")
    crop: Literal["zones", "frame", "boxes"] = Field(
        "zones", description="What is classified: each zone's crop, the whole frame, or each upstream box."
    )
    labels: list[str] | None = Field(
        None, description="Report the best of these labels (e.g. the empty ones); default: the top label."
    )

    @model_validator(mode="after")
    def _boxes_need_input(self) -> ClassifySettings:
        if self.crop == "boxes" and self.input is None:
            raise ValueError("crop: boxes classifies an upstream block's boxes: give `input`")
        return self


@block_type(ClassifySettings)
class Classify(ModelBlock):
    settings: ClassifySettings
    task = "classification"

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        s = self.settings
        active = self.model()
        if s.crop == "boxes":
            sources = [i for i in items if i.bbox is not None]
            key: tuple[object, ...] = ("classify", active.version, id(active), "boxes", tuple(i.bbox for i in sources))
            crops = lambda: [crop_box(frame.image, i.bbox) for i in sources if i.bbox is not None]  # noqa: E731
            places = [(i.zone, i.bbox) for i in sources]
        elif s.crop == "frame":
            key = ("classify", active.version, id(active), "frame")
            crops = lambda: [frame.image]  # noqa: E731
            places = [(WHOLE_FRAME, (0.0, 0.0, 1.0, 1.0))]
        else:
            zones = list(frame.zones)
            key = ("classify", active.version, id(active), "zones", tuple(z.id for z in zones))
            crops = lambda: [zone_crop(frame.image, z) for z in zones]  # noqa: E731  (views where nothing is masked)
            places = [(z.id, z.bbox()) for z in zones]
        if not places:
            return []
        results = cached(frame, key, lambda: active.model.predict_batch(crops()))
        out = []
        for (zone, bbox), r in zip(places, results, strict=True):
            scores = dict(r.label_scores)
            if s.labels:
                label = max(s.labels, key=lambda name: scores.get(name, 0.0))
                score = float(scores.get(label, 0.0))
            else:
                label, score = r.label, float(r.score)
            out.append(Item(zone=zone, label=label, score=score, bbox=bbox))
        return out
