"""`collect`: send the frame to the studio's inbox for review (edge.skills.inbox), at most once per `seconds`.

Each collected frame is stored with its reason, camera, skill, block and the items that fired; the assisted-
labelling work reads the inbox.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item


class CollectSettings(BlockSettings):
    type: Literal["collect"] = "collect"
    seconds: float = Field(60.0, gt=0, le=86400, description="At most one frame per this many seconds.")
    reason: str = Field("collected by a skill", max_length=200, description="Why the frame is worth reviewing.")

    category: ClassVar[str] = "sink"


@block_type(CollectSettings)
class Collect(Block):
    settings: CollectSettings
    last: float | None = None  # when a frame was last collected

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        firing = [i for i in items if i.fires]
        if not firing or self.ctx.inbox is None:
            return []
        if self.last is not None and frame.now - self.last < self.settings.seconds:
            return []
        self.last = frame.now
        self.ctx.inbox.put(
            frame.image,
            camera=self.ctx.camera,
            skill=self.ctx.skill,
            block=self.id,
            reason=self.settings.reason,
            items=[i.as_dict() for i in firing],
        )
        return firing
