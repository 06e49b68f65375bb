"""What the store hands out: plain dataclasses with a JSON-friendly `as_dict()` (the web API returns these)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edge.attributes import attributes
from edge.datasets.model import Box


def box_dict(box: Box) -> dict[str, Any]:
    """A box as the API shows it: {"label", "x1", "y1", "x2", "y2"}."""
    return {"label": box.label, "x1": box.x1, "y1": box.y1, "x2": box.x2, "y2": box.y2}


@dataclass
class Annotations:
    """An image's whole-image tags and its boxes (normalised coordinates)."""

    tags: list[str] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    nothing_to_box: bool = False  # marked "nothing to box": tagged, a detector's negative photo

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "tags": list(self.tags),
            "boxes": [box_dict(b) for b in self.boxes],
            "nothing_to_box": self.nothing_to_box,
        }


@dataclass
class ImageRecord:
    """One stored image. `duplicate_of`: the identical image (on add) or the closest near-duplicate, else None."""

    id: int
    sha256: str
    filename: str | None
    camera: str | None
    captured_at: str | None
    created: str
    width: int
    height: int
    split: str
    phash: str
    tags: list[str] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    duplicate_of: int | None = None
    size: int = 0
    ext: str = "jpg"
    nothing_to_box: bool = False

    @property
    def tagged(self) -> bool:
        """Whether the image carries any tag or box, or is marked "nothing to box"."""
        return bool(self.tags or self.boxes or self.nothing_to_box)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        head = attributes(
            self, "id", "sha256", "filename", "camera", "captured_at", "created", "width", "height", "size", "split",
            "phash",
        )  # fmt: skip
        annotations = {"tags": list(self.tags), "boxes": [box_dict(b) for b in self.boxes]}
        return head | annotations | attributes(self, "tagged", "nothing_to_box", "duplicate_of")


@dataclass
class LabelRecord:
    """A label with its use counts: images tagged with it and boxes drawn with it."""

    id: int
    name: str
    description: str
    color: str
    images: int = 0
    boxes: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)
