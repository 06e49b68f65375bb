"""Checks on what enters the store: label names, colours, boxes, splits, capture times and export file names."""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path

from edge import timestamps
from edge.datasets.model import SPLITS, Box
from edge.errors import AnnotationError

MAX_LABEL_NAME = 64
# Imported coordinates this far outside 0..1 are rounding noise from other tools and are clamped; further is an error.
IMPORT_CLAMP_TOLERANCE = 0.01
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def iso_utc(value: datetime | None) -> str | None:
    """A capture time as stored: UTC, milliseconds, `Z`; naive datetimes (cameras, clients) are taken as UTC."""
    return None if value is None else timestamps.iso_utc(value, "milliseconds")


def check_split(split: str) -> str:
    """`split` when it is one of SPLITS; AnnotationError otherwise."""
    if split not in SPLITS:
        raise AnnotationError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    return split


def check_name(name: object, what: str, max_length: int) -> str:
    """`name` stripped, when it is text of 1..max_length characters; AnnotationError saying `what` it is otherwise."""
    if not isinstance(name, str):
        raise AnnotationError(f"{what} must be text, not {type(name).__name__}")
    clean = name.strip()
    if not clean:
        raise AnnotationError(f"{what} must not be empty")
    if len(clean) > max_length:
        raise AnnotationError(f"{what} {clean[:20]!r}... is longer than {max_length} characters")
    return clean


def check_label_name(name: str) -> str:
    """The label name stripped, when it can be a folder and a YOLO name; AnnotationError otherwise."""
    clean = check_name(name, "label name", MAX_LABEL_NAME)
    # Label names become folder names (folder-per-class export) and YOLO names: no separators or control chars.
    if any(c in clean for c in "/\\") or clean in (".", "..") or not clean.isprintable():
        raise AnnotationError(f"label name {clean!r} must not contain '/', '\\' or control characters")
    return clean


def check_color(color: str) -> str:
    """The colour lower-cased when it is #rrggbb; AnnotationError otherwise."""
    if not isinstance(color, str) or not COLOR.match(color):
        raise AnnotationError(f"colour {color!r} must be #rrggbb")
    return color.lower()


def check_box(box: Box, where: str, *, clamp: float = 0.0) -> Box:
    """The box with float coordinates inside 0..1 (within `clamp` of the range: clamped); AnnotationError otherwise."""
    coords = []
    for axis in ("x1", "y1", "x2", "y2"):
        value = getattr(box, axis)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise AnnotationError(f"{where}: {axis} must be a finite number, not {value!r}")
        value = float(value)
        if -clamp <= value < 0.0:
            value = 0.0
        elif 1.0 < value <= 1.0 + clamp:
            value = 1.0
        if not 0.0 <= value <= 1.0:
            raise AnnotationError(f"{where}: {axis}={value:g} is outside the normalised range 0..1")
        coords.append(value)
    x1, y1, x2, y2 = coords
    if not x1 < x2:
        raise AnnotationError(f"{where}: x1={x1:g} must be less than x2={x2:g}")
    if not y1 < y2:
        raise AnnotationError(f"{where}: y1={y1:g} must be less than y2={y2:g}")
    return Box(box.label, x1, y1, x2, y2)


def safe_file_name(name: str | None, fallback: str, ext: str) -> str:
    """A file name of letters, digits, `.`, `_` and `-` only, from `name`'s stem (else `fallback`), with `ext`."""
    stem = Path(name).stem if name else ""
    stem = _UNSAFE_NAME_CHARS.sub("_", stem).strip("._")[:100]
    return f"{stem or fallback}.{ext}"
