"""One domain exception per area, all rooted here so the CLI reports them cleanly and HTTP answers them alike.

Every error carries the HTTP status it is answered with (`http_status`): input errors 400, not found 404,
conflict 409, too large 413, a full disk 507, an unusable store or engine 500, an offline camera or an
unreachable service 503. `status_for` maps any exception to its status (anything that is not a ShelfwatchError
is unexpected: 500, and the caller logs the traceback) and `validation_message` is the one formatter of pydantic
errors; the device's web studio and the trainer service both answer through them.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class ShelfwatchError(Exception):
    """Base of every error the appliance reports to a user (CLI exit 1, HTTP `http_status`)."""

    http_status = 400


class ConfigError(ShelfwatchError):
    """A configuration file or value is invalid."""


class ImageError(ShelfwatchError):
    """An image could not be decoded, is too large, or is otherwise unusable."""


class ImageTooLargeError(ImageError):
    """An image is over the configured file size or pixel limit (the web answers 413)."""

    http_status = 413


class AnnotationError(ShelfwatchError):
    """Annotations, a label or a split request are invalid: bad coordinates, unknown label (the web answers 400)."""


class StoreError(ShelfwatchError):
    """The dataset store on disk cannot be used (written by a newer version, unreadable): a server fault, 500."""

    http_status = 500


class InsufficientStorageError(ShelfwatchError):
    """The disk under data_dir is full: nothing could be written (HTTP 507); reads keep working."""

    http_status = 507


class DatasetError(ShelfwatchError):
    """A dataset archive, folder or annotation file is malformed."""


class NotFoundError(ShelfwatchError):
    """A referenced object (image, label, camera, model) does not exist."""

    http_status = 404


class ConflictError(ShelfwatchError):
    """The request conflicts with the current state (label in use, duplicate name)."""

    http_status = 409


class PermissionDeniedError(ShelfwatchError):
    """The signed-in user's role does not allow this action (HTTP 403)."""

    http_status = 403


class BundleError(ShelfwatchError):
    """A model bundle is malformed, tampered with, or signed by an untrusted key."""


class CameraError(ShelfwatchError):
    """A camera source is missing, cannot be opened, or stopped delivering frames (HTTP 503)."""

    http_status = 503


class EngineError(ShelfwatchError):
    """An inference engine cannot load a model or run it: a server fault, 500."""

    http_status = 500


class TrainerError(ShelfwatchError):
    """The trainer service refused a request or failed a job (400); subclasses say when it cannot be reached (503)."""


def is_disk_full(err: BaseException) -> bool:
    """Whether `err`, or an error it was raised from, says the disk (or SQLite's file) is full."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, InsufficientStorageError):
            return True
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, sqlite3.OperationalError) and (
            getattr(current, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(current)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def status_for(err: BaseException) -> int:
    """The HTTP status an exception is answered with: its `http_status`, 507 for a full disk, else 500."""
    if is_disk_full(err):
        return 507
    if isinstance(err, ShelfwatchError):
        status = getattr(err, "http_status", 400)
        return status if isinstance(status, int) and 400 <= status <= 599 else 500
    return 500


def public_message(err: BaseException) -> str:
    """What the answer says: the error's own text for domain errors, a generic line for anything unexpected."""
    if is_disk_full(err):
        return "insufficient storage: the disk under data_dir is full; free space and try again"
    if isinstance(err, ShelfwatchError):
        return str(err)
    return f"internal error: {type(err).__name__} (logged on the server)"


def validation_message(err: ValidationError, *, limit: int = 5) -> str:
    """A one-line, human-readable summary of a pydantic error: `field.path: message; ...` (at most `limit`)."""
    errors = err.errors(include_url=False)
    parts = []
    for e in errors[:limit]:
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    if len(errors) > limit:
        parts.append(f"... and {len(errors) - limit} more")
    return "; ".join(parts)
