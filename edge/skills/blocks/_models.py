"""Helpers of the model blocks: their settings base, the project's active model (or idle), and per-frame caching of
model calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from edge.pipeline.model_slot import ActiveModel
from edge.skills.context import BuildContext, SkillIdle
from edge.skills.registry import Block, BlockSettings
from edge.skills.values import Frame


class ModelBlockSettings(BlockSettings):
    """A model block's settings: it runs the active version of the project its `project` field names, on the
    frame (no input needed)."""

    category: ClassVar[str] = "model"
    needs_input: ClassVar[bool] = False
    project_field: ClassVar[str | None] = "project"


class ModelBlock(Block):
    """A model block: `model()` is its project's active model for this frame (of its `task`; None: either)."""

    task: ClassVar[str | None] = None

    def model(self) -> ActiveModel:
        """The project's active model; SkillIdle when there is none (or it does another task)."""
        return require_model(self.ctx, str(self.settings.project), self.task)


def require_model(ctx: BuildContext, project: str, task: str | None) -> ActiveModel:
    """The project's active model for this frame; SkillIdle when there is none or it does another task (None:
    either task)."""
    model = ctx.models.get(project)
    if model is None:
        raise SkillIdle(ctx.models.why_idle(project))
    if task is not None and model.task != task:
        raise SkillIdle(f"project {project!r} runs a {model.task} model, this block needs {task}")
    return model


def cached(frame: Frame, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """One model call per frame and key, whichever skill asks first; its time counts once in frame.model_ms."""
    if key in frame.cache:
        return frame.cache[key]
    t0 = time.perf_counter()
    value = compute()
    frame.model_ms += (time.perf_counter() - t0) * 1000.0
    frame.cache[key] = value
    return value
