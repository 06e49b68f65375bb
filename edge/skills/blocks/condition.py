"""`condition`: keep the upstream items for which a small safe expression holds (edge.skills.expression)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from edge.skills.expression import NAMES, compile_expression
from edge.skills.registry import Block, BlockSettings, block_type
from edge.skills.values import Frame, Item


class ConditionSettings(BlockSettings):
    type: Literal["condition"] = "condition"
    when: str = Field(
        description=f"Expression over the item's {', '.join(NAMES)}, e.g. \"score >= 0.5 and label != 'ok'\"."
    )

    category: ClassVar[str] = "logic"

    @field_validator("when")
    @classmethod
    def _parses(cls, v: str) -> str:
        compile_expression(v)  # raises ExpressionError (a ValueError) naming what is not allowed
        return v


@block_type(ConditionSettings)
class Condition(Block):
    settings: ConditionSettings

    @cached_property
    def test(self) -> Callable[[Mapping[str, Any]], bool]:
        """The compiled `when` (compiled once, at the first frame: validation already parsed it)."""
        return compile_expression(self.settings.when)

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        per_zone: dict[str, int] = {}
        for i in items:
            per_zone[i.zone] = per_zone.get(i.zone, 0) + 1
        out = []
        for i in items:
            names = {
                "score": i.score,
                "value": i.number,
                "label": i.label,
                "zone": i.zone,
                "state": i.state,
                "phase": i.phase,
                "count": per_zone[i.zone],
            }
            if self.test(names):
                out.append(i)
        return out
