"""Box and zone geometry shared by the blocks (normalised coordinates, origin top-left)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.pipeline.zone_scoring import BBox, Zone, box_overlap
from edge.skills.values import WHOLE_FRAME

GRID = 64  # coverage is measured on a GRID x GRID raster of the zone's bounding box


def zone_of(bbox: BBox, zones: Sequence[Zone], min_overlap: float) -> str:
    """The zone holding the largest share of the box (at least min_overlap), else WHOLE_FRAME."""
    best, best_share = WHOLE_FRAME, 0.0
    for z in zones:
        share = box_overlap(bbox, z.bbox(), z.polygon)
        if share >= min_overlap and share > best_share:
            best, best_share = z.id, share
    if best == WHOLE_FRAME and len(zones) == 1 and zones[0].id == WHOLE_FRAME:
        return WHOLE_FRAME
    return best


def coverage(zone: Zone, boxes: Sequence[BBox]) -> float:
    """Share of the zone's area covered by the union of the boxes (0..1)."""
    zx1, zy1, zx2, zy2 = zone.bbox()
    w, h = max(zx2 - zx1, 1e-9), max(zy2 - zy1, 1e-9)
    mask = np.zeros((GRID, GRID), dtype=np.uint8)
    pts = np.array([[(x - zx1) / w * GRID, (y - zy1) / h * GRID] for x, y in zone.polygon])
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    area = int(mask.sum())
    if area == 0 or not boxes:
        return 0.0
    covered = np.zeros_like(mask)
    for x1, y1, x2, y2 in boxes:
        c1 = int(np.clip(np.floor((x1 - zx1) / w * GRID), 0, GRID))
        r1 = int(np.clip(np.floor((y1 - zy1) / h * GRID), 0, GRID))
        c2 = int(np.clip(np.ceil((x2 - zx1) / w * GRID), 0, GRID))
        r2 = int(np.clip(np.ceil((y2 - zy1) / h * GRID), 0, GRID))
        if c2 > c1 and r2 > r1:
            covered[r1:r2, c1:c2] = 1
    return float((covered & mask).sum()) / area


def crop_box(image: np.ndarray, bbox: BBox) -> np.ndarray:
    """The pixels of a normalised box (at least one pixel each way)."""
    h, w = image.shape[:2]
    x1 = min(max(int(np.floor(bbox[0] * w)), 0), w - 1)
    y1 = min(max(int(np.floor(bbox[1] * h)), 0), h - 1)
    x2 = max(min(int(np.ceil(bbox[2] * w)), w), x1 + 1)
    y2 = max(min(int(np.ceil(bbox[3] * h)), h), y1 + 1)
    return image[y1:y2, x1:x2]


def box_area(bbox: BBox) -> float:
    """Normalised area of a box (share of the frame)."""
    return max(bbox[2] - bbox[0], 0.0) * max(bbox[3] - bbox[1], 0.0)
