"""Today's zone contract for sinks (`contract: zone` of mqtt_state and mqtt_event): what a camera without skills
publishes (docs/MQTT.md), so its built-in default skill (edge.skills.default) keeps every topic and payload.

Such a sink reads a `hysteresis` block and hands that block's zone states and transitions to the camera's zone
sink (edge.skills.context.ZoneSink): retained `<camera>/<zone>/state` `{"state", "score", "since", "model"}` and
`low_stock` events without `skill` or `trace`, with the annotated snapshot as today.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from edge.skills.context import ZoneSink

if TYPE_CHECKING:
    from edge.skills.blocks.hysteresis import Hysteresis
    from edge.skills.registry import Block

Contract = Literal["skill", "zone"]


def contract_field() -> Contract:
    """The `contract` field of a sink that can speak today's zone contract."""
    return Field(  # type: ignore[no-any-return]
        "skill",
        description="skill: the skill's topics and payloads; zone: today's states and events (after a hysteresis).",
    )


def zone_parts(block: Block) -> tuple[Hysteresis, ZoneSink] | None:
    """The hysteresis a `contract: zone` sink reads and the camera's zone sink (None without one: a bench run)."""
    sink = block.ctx.zone_sink
    if sink is None:
        return None
    return block.ctx.blocks[str(block.settings.input)], sink  # type: ignore[return-value]
