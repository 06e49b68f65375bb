"""The strict pydantic base of every configuration tree (device and trainer): unknown keys are errors; and the
check its validators share, that ids in a list are unique."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict


def first_repeat(ids: Iterable[str]) -> str | None:
    """The first id that occurs a second time, or None when every id is unique."""
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            return item
        seen.add(item)
    return None


class StrictModel(BaseModel):
    """A model that refuses unknown fields and re-validates on assignment (a typo in YAML is an error, not ignored)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
