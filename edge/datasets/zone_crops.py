"""How zones turn one tagged image into several labelled crops. The device's readiness verdict and the trainer's
classification samples both use this, so "ready" means what the trainer will actually get.

A zone's crop is labelled by the box label covering the largest share of the zone, when that share is at least
ZONE_BOX_COVERAGE (a box drawn around an empty shelf part makes the zone over it "low stock"); otherwise, when the
image has boxes, by the NONE/other class (the image was annotated and nothing is wrong in this zone); otherwise by
the image's single tag (a whole photo tagged "none" makes every zone "none"). An image with neither gives nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from edge.config.model import ZoneConfig
from edge.datasets.model import Box
from edge.vocabulary import NONE_LABEL, none_label

ZONE_BOX_COVERAGE = 0.10

BBox = tuple[float, float, float, float]


def zone_box(zone: ZoneConfig) -> BBox:
    """Normalised bounding box x1, y1, x2, y2 of a zone's polygon."""
    return zone.bbox()


def zone_crop_label(tags: Sequence[str], boxes: Sequence[Box], box: BBox, none: str = NONE_LABEL) -> str | None:
    """The label of one zone's crop of an image with these tags and boxes, or None when it has none."""
    zx1, zy1, zx2, zy2 = box
    zone_area = max(1e-12, (zx2 - zx1) * (zy2 - zy1))
    if boxes:
        cover: dict[str, float] = defaultdict(float)
        for b in boxes:
            iw = max(0.0, min(zx2, b.x2) - max(zx1, b.x1))
            ih = max(0.0, min(zy2, b.y2) - max(zy1, b.y1))
            cover[b.label] += iw * ih / zone_area
        best = max(cover.items(), key=lambda kv: kv[1]) if cover else None
        if best and best[1] >= ZONE_BOX_COVERAGE:
            return best[0]
        return none
    unique = sorted(set(tags))
    return unique[0] if len(unique) == 1 else None


def zone_crop_counts(
    annotations: Iterable[tuple[Sequence[str], Sequence[Box]]], zones: Sequence[ZoneConfig], label_names: Sequence[str]
) -> dict[str, int]:
    """Labelled zone crops per label over (tags, boxes) of every image."""
    none = none_label(label_names)
    boxes = [zone_box(z) for z in zones]
    counts: dict[str, int] = defaultdict(int)
    for tags, image_boxes in annotations:
        for box in boxes:
            label = zone_crop_label(tags, image_boxes, box, none)
            if label is not None:
                counts[label] += 1
    return dict(counts)
