"""The trainer's errors: all ShelfwatchError subclasses so the CLI reports them as `error: ...` with exit 1 and the
service answers each with the HTTP status it carries (`edge.errors.status_for`)."""

from __future__ import annotations

from edge.errors import ShelfwatchError


class TrainingError(ShelfwatchError):
    """Training cannot run or failed: too few images, unreadable data, export past tolerance."""


class WeightsError(TrainingError):
    """Initial weights could not be found, downloaded, verified or loaded into the backbone (a server fault: 500)."""

    http_status = 500


class TrainingCancelled(ShelfwatchError):
    """A cancel request stopped training; nothing was written (a conflict with the request to train: 409)."""

    http_status = 409
