"""A skill's configuration (`cameras[].skills[]` in edge.yaml) and the checks of its graph.

Errors name the skill and the block; they carry `ctx["at"]` (the position of the block's field inside the
skill) so edge.config.loader points at the block's own YAML line. Checked: unknown block type (with the known
ones), a duplicate block id, an unknown `input`, a block that needs an input without one (sinks, transforms), a
cycle. An unknown project is not an error here (it may be created later): `project_warnings` lists them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field, TypeAdapter, field_validator, model_validator
from pydantic_core import PydanticCustomError

import edge.skills.blocks  # noqa: F401 - registers every block type
from edge.skills.registry import BLOCK_TYPES, BlockSettings
from edge.strict import StrictModel

MAX_BLOCKS = 32
MAX_SKILLS_PER_CAMERA = 16
_SKILL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

if TYPE_CHECKING:
    BlockConfig = BlockSettings
else:
    # Every registered block type's settings, told apart by `type`.
    BlockConfig = Annotated[Union[tuple(t.settings for t in BLOCK_TYPES.values())], Field(discriminator="type")]  # noqa: UP007


class SkillConfig(StrictModel):
    id: str = Field(description="Skill id, unique within its camera (a slug used in topics).")
    enabled: bool = Field(True, description="Run this skill.")
    blocks: list[BlockConfig] = Field(
        min_length=1, max_length=MAX_BLOCKS, description="The blocks, each reading its `input` block's output."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _SKILL_ID.match(v):
            raise ValueError(f"skill id {v!r} must be 1-63 lower-case letters, digits, '-' or '_'")
        return v

    @model_validator(mode="before")
    @classmethod
    def _known_types(cls, data: Any) -> Any:
        """An unknown block type is named with the skill, the block and the known types."""
        if not isinstance(data, dict) or not isinstance(data.get("blocks"), list):
            return data
        skill = str(data.get("id", "?"))
        for n, raw in enumerate(data["blocks"]):
            if isinstance(raw, dict) and "type" in raw and raw["type"] not in BLOCK_TYPES:
                raise PydanticCustomError(
                    "skill_graph",
                    "{message}",
                    {
                        "message": f"skill {skill!r}, block {raw.get('id', n)!r}: unknown block type "
                        f"{raw['type']!r}; known: {', '.join(sorted(BLOCK_TYPES))}",
                        "at": ("blocks", n, "type"),
                    },
                )
        return data

    @model_validator(mode="after")
    def _graph(self) -> SkillConfig:
        ids: dict[str, int] = {}
        for n, b in enumerate(self.blocks):
            if b.id in ids:
                raise _at(self.id, n, "id", f"block {b.id!r}: the id is used twice")
            ids[b.id] = n
        for n, b in enumerate(self.blocks):
            if b.input is not None and b.input not in ids:
                known = ", ".join(ids)
                raise _at(self.id, n, "input", f"block {b.id!r}: unknown input {b.input!r} (blocks: {known})")
            if b.input == b.id:
                raise _at(self.id, n, "input", f"block {b.id!r}: reads its own output (a cycle)")
            if b.input is None and type(b).needs_input:
                raise _at(self.id, n, "id", f"block {b.id!r}: a {b.type} block needs an `input`")
            if getattr(b, "contract", "skill") == "zone" and self.blocks[ids[str(b.input)]].type != "hysteresis":
                raise _at(self.id, n, "contract", f"block {b.id!r}: `contract: zone` reads a hysteresis block")
        for n, b in enumerate(self.blocks):
            path = [b.id]
            cur = b
            while cur.input is not None:
                nxt = self.blocks[ids[cur.input]]
                if nxt.id in path:
                    chain = " <- ".join([*path, nxt.id])
                    raise _at(self.id, n, "input", f"block {b.id!r}: its inputs form a cycle ({chain})")
                path.append(nxt.id)
                cur = nxt
        return self

    def order(self) -> list[BlockSettings]:
        """The blocks in an order where every block comes after its input."""
        by_id = {b.id: b for b in self.blocks}
        done: list[BlockSettings] = []
        placed: set[str] = set()

        def place(b: BlockSettings) -> None:
            if b.id in placed:
                return
            if b.input is not None:
                place(by_id[b.input])
            placed.add(b.id)
            done.append(b)

        for b in self.blocks:
            place(b)
        return done

    def projects(self) -> list[tuple[int, str]]:
        """(block index, project name) of every model block."""
        out = []
        for n, b in enumerate(self.blocks):
            name = type(b).project_field
            if name is not None:
                out.append((n, str(getattr(b, name))))
        return out


def _at(skill: str, index: int, field: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(
        "skill_graph", "{message}", {"message": f"skill {skill!r}, {message}", "at": ("blocks", index, field)}
    )


SKILLS_ADAPTER: TypeAdapter[list[SkillConfig]] = TypeAdapter(list[SkillConfig])


def normalise_raw(raw: Any) -> Any:
    """Skills as written, with YAML 1.1's boolean keys (`on:`/`off:` read as true/false) spelt `on`/`off`, so they
    survive a JSON round trip."""
    if isinstance(raw, list):
        return [normalise_raw(v) for v in raw]
    if isinstance(raw, dict):
        out = {}
        for k, v in raw.items():
            key = "on" if k is True else "off" if k is False else k
            out[key] = normalise_raw(v)
        return out
    return raw


def check_unique_skills(skills: Iterable[SkillConfig]) -> None:
    """Two skills of one camera may not share an id (raises ValueError)."""
    seen: set[str] = set()
    for s in skills:
        if s.id in seen:
            raise ValueError(f"skill id {s.id!r} is used twice")
        seen.add(s.id)
