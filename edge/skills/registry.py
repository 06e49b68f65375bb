"""The one registry of block types: each type pairs a config model (`type: Literal[...]`) with its implementation.

A block type lives in one file under edge/skills/blocks/: a `BlockSettings` subclass with a unique `type` literal
and its checked fields, and a `Block` subclass decorated with `@block_type(TheSettings)`. BLOCK_TYPES then feeds
both validation (`BlockConfig`, a discriminated union over every registered settings model) and construction
(`build_block`). Class attributes of the settings say how the graph treats the block: `category` (model,
transform, time, logic, sink), `needs_input` (a sink or transform without `input` is refused), `event_sink`
(mqtt_event and webhook share one event per decision, built by the runner).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import Field, field_validator

from edge.strict import StrictModel

if TYPE_CHECKING:
    from edge.pipeline.zone_scoring import Zone
    from edge.skills.context import BuildContext
    from edge.skills.values import Frame, Item

_BLOCK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


class BlockSettings(StrictModel):
    """Fields every block has: its id (unique in its skill) and the block whose output it reads."""

    type: str
    id: str = Field(description="Block id, unique within its skill.")
    input: str | None = Field(None, description="The id of the block whose output this block reads.")

    category: ClassVar[str] = "transform"
    needs_input: ClassVar[bool] = True
    event_sink: ClassVar[bool] = False
    project_field: ClassVar[str | None] = None  # the field naming a project (model blocks)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _BLOCK_ID.match(v):
            raise ValueError(f"block id {v!r} must be 1-63 letters, digits, '-' or '_'")
        return v


class Block:
    """A block's implementation: built once per skill from its settings, then `run` once per frame.

    `memory` is what a block keeps across frames, per zone id (a hysteresis' states, a cooldown's last times); a
    block keeping something else declares it as a class attribute default. `zones_changed` and `offline` tell
    every block of a skill, in graph order, that the camera's zones changed or that it went offline.
    """

    def __init__(self, settings: Any, ctx: BuildContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.memory: dict[str, Any] = {}

    @property
    def id(self) -> str:
        """The block's id."""
        return str(self.settings.id)

    def run(self, items: list[Item], frame: Frame) -> list[Item]:
        """This frame's output from the input block's output (empty for a block without input)."""
        raise NotImplementedError

    def zones_changed(self, zones: list[Zone]) -> None:
        """The camera's zones are now `zones` (per-zone memory of a zone that is gone is forgotten)."""
        ids = {z.id for z in zones}
        for gone in set(self.memory) - ids:
            del self.memory[gone]

    def offline(self) -> None:
        """The camera stopped delivering frames."""

    def close(self) -> None:
        """Release what the block holds (threads, files); the skill is being replaced or the agent stops."""


@dataclass(frozen=True)
class BlockType:
    """A registered block type: its settings model and its implementation."""

    settings: type[BlockSettings]
    implementation: type[Block]


BLOCK_TYPES: dict[str, BlockType] = {}

S = TypeVar("S", bound=BlockSettings)
B = TypeVar("B", bound=Block)


def block_type(settings: type[S]) -> Callable[[type[B]], type[B]]:
    """Register a block implementation for the settings model whose `type` literal names it."""
    name = settings.model_fields["type"].default
    if not isinstance(name, str) or name in BLOCK_TYPES:
        raise ValueError(f"block type {name!r} needs a unique `type` literal with that default")

    def register(impl: type[B]) -> type[B]:
        BLOCK_TYPES[name] = BlockType(settings, impl)
        return impl

    return register


def build_block(settings: BlockSettings, ctx: BuildContext) -> Block:
    """The implementation of one block's settings."""
    return BLOCK_TYPES[settings.type].implementation(settings, ctx)
