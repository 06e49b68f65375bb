"""The trainer's errors: all ShelfwatchError subclasses so the CLI reports them as `error: ...` with exit 1."""

from __future__ import annotations

from edge.errors import ShelfwatchError


class TrainingError(ShelfwatchError):
    """Training cannot run or failed: too few images, unreadable data, export past tolerance."""


class WeightsError(TrainingError):
    """Initial weights could not be found, downloaded, verified or loaded into the backbone."""


class TrainingCancelled(ShelfwatchError):
    """A cancel request stopped training; nothing was written."""
