"""The strict pydantic base of every configuration tree (device and trainer): unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A model that refuses unknown fields and re-validates on assignment (a typo in YAML is an error, not ignored)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
