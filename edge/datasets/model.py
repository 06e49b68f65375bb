"""The in-memory dataset every reader produces and every writer consumes.

Coordinates are normalised to the image (0..1, origin top-left, x1 < x2, y1 < y2). Readers resolve every image
to an absolute path inside the dataset root; writers copy those files. The dataset store converts to and from
this model, and the trainer reads it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Split = Literal["train", "val", "test", "auto"]
SPLITS: tuple[str, ...] = ("train", "val", "test", "auto")


@dataclass(frozen=True)
class Box:
    """A labelled box in normalised x1, y1, x2, y2."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass
class LabelInfo:
    """A label: its name (unique), a description that guides people, and a display colour."""

    name: str
    description: str = ""
    color: str | None = None


@dataclass
class Sample:
    """One image with its image-level tags and boxes."""

    path: Path
    name: str
    tags: list[str] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    split: str = "auto"
    width: int | None = None
    height: int | None = None
    # Marked "nothing to box" (the Tag page's N): a photo checked and found without anything to box, so a detector
    # learns from it as a negative; never set together with boxes.
    nothing_to_box: bool = False

    @property
    def labels(self) -> set[str]:
        """Every label this image carries, as a tag or on a box."""
        return set(self.tags) | {b.label for b in self.boxes}


@dataclass
class Dataset:
    """Labels (ordered: a label's index is its numeric id) and samples."""

    labels: list[LabelInfo] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    @property
    def label_names(self) -> list[str]:
        return [lab.name for lab in self.labels]

    def ensure_label(self, name: str) -> None:
        """Add a label by name if it is not there yet."""
        if name not in self.label_names:
            self.labels.append(LabelInfo(name))

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label: images tagged with it and boxes of it."""
        out = {n: {"images": 0, "boxes": 0} for n in self.label_names}
        for s in self.samples:
            for t in set(s.tags):
                out.setdefault(t, {"images": 0, "boxes": 0})["images"] += 1
            for b in s.boxes:
                out.setdefault(b.label, {"images": 0, "boxes": 0})["boxes"] += 1
        return out
