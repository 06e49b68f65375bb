"""`cooldown`: at most one firing item per zone every `seconds` (a rate limiter before a sink)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item


class CooldownSettings(BlockSettings):
    type: Literal["cooldown"] = "cooldown"
    seconds: float = Field(gt=0, le=86400, description="Quiet time per zone after an item passed.")

    category: ClassVar[str] = "time"


@block_type(CooldownSettings)
class Cooldown(Block):
    settings: CooldownSettings
    memory: dict[str, float]  # zone -> when an item last passed

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        out = []
        for i in items:
            if not i.fires:
                continue
            last = self.memory.get(i.zone)
            if last is not None and frame.now - last < self.settings.seconds:
                continue
            self.memory[i.zone] = frame.now
            out.append(i)
        return out
