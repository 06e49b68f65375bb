"""Per-box similarity for detection: what a box's pixels look like, compared with the boxes people labelled.

The fallback for detection bundles that export no feature map (manifest `outputs.feature_map`; newer bundles do,
and then a box's vector comes from the model, edge.assist.suggest.box_features). Such a bundle exports boxes and
scores, no embedding (classification bundles export theirs: the image's
similarity comes from the model, edge.assist.suggest). A box's descriptor here is its appearance in the photo, not
the model's features: the crop's colour (a hue x saturation histogram weighted by brightness, 32 bins) and its
layout (the grey crop at 4 x 4, brightness-normalised, 16 values), 48 numbers scaled to unit length, so a dot
product is the cosine. It costs a crop and a resize per box (no model run) and says "this box looks like the gaps
you drew" rather than "the model thinks so"; the Tag page shows it beside the box's score, and the review queue
can be ordered by it.

Labelled examples are the project's human-drawn boxes, described from their photos the first time they are needed
and kept in memory (keyed by the file's sha256 and the box), so a page of suggestions decodes each labelled photo
once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from edge.datasets.model import Box

DIMS = 48
MIN_SIDE_PX = 2  # a box thinner than this in the photo has no appearance to speak of


def descriptor(image_bgr: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """The unit-length appearance descriptor of a normalised box of a BGR photo (None for a degenerate box)."""
    h, w = image_bgr.shape[:2]
    x1, y1 = max(0, int(box[0] * w)), max(0, int(box[1] * h))
    x2, y2 = min(w, int(np.ceil(box[2] * w))), min(h, int(np.ceil(box[3] * h)))
    if x2 - x1 < MIN_SIDE_PX or y2 - y1 < MIN_SIDE_PX:
        return None
    crop = cv2.resize(image_bgr[y1:y2, x1:x2], (16, 16), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.float32)
    hue = np.minimum((hsv[:, 0] / 180.0 * 8).astype(int), 7)
    sat = np.minimum((hsv[:, 1] / 256.0 * 4).astype(int), 3)
    colour = np.bincount(hue * 4 + sat, weights=hsv[:, 2] / 255.0 + 0.05, minlength=32).astype(np.float32)
    colour /= max(float(np.linalg.norm(colour)), 1e-6)
    grey = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), (4, 4), interpolation=cv2.INTER_AREA).astype(np.float32)
    layout = (grey - grey.mean()).reshape(-1) / 255.0
    vector = np.concatenate([colour, layout]).astype(np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-6)


def encode(vector: np.ndarray | None) -> list[float] | None:
    """A descriptor as the JSON a suggestion's box keeps (3 decimals)."""
    return None if vector is None else [round(float(v), 3) for v in vector]


def descriptors(image_bgr: np.ndarray, boxes: Sequence[tuple[float, float, float, float]]) -> list[np.ndarray | None]:
    """Each box's appearance descriptor."""
    return [descriptor(image_bgr, b) for b in boxes]


class ExampleCache:
    """Vectors of labelled boxes, computed once per (source, file, label, box) and kept for the process. The source
    is "appearance" (descriptor) or a detection bundle's version (its feature map, edge.assist.suggest)."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._known: dict[tuple[str, str, str, float, float, float, float], np.ndarray | None] = {}
        self._lock = threading.Lock()

    def of(
        self, sha256: str, pixels: Any, boxes: Sequence[Box], describe: Any = descriptors, source: str = "appearance"
    ) -> list[np.ndarray | None]:
        """Each box's vector; `pixels()` decodes the photo and `describe(image, boxes)` describes the boxes, called
        only when a box is not known yet."""
        keys = [(source, sha256, b.label.casefold(), b.x1, b.y1, b.x2, b.y2) for b in boxes]
        with self._lock:
            missing = [k for k in keys if k not in self._known]
        if missing:
            image = pixels()
            found = dict(zip(missing, describe(image, [k[3:] for k in missing]), strict=True))
            with self._lock:
                if len(self._known) + len(found) > self.limit:
                    self._known.clear()
                self._known.update(found)
                return [self._known.get(k, found.get(k)) for k in keys]
        with self._lock:
            return [self._known[k] for k in keys]


def similar_boxes(
    boxes: Sequence[dict[str, Any]], examples: dict[str, list[tuple[int, np.ndarray]]], image_id: int, top_k: int
) -> list[dict[str, float] | None]:
    """For each suggested box with a vector, per label its mean cosine to that label's `top_k` most similar
    labelled boxes (boxes of the same image left out; vectors of another length, another source, are skipped)."""
    out: list[dict[str, float] | None] = []
    matrices = {
        label: (np.array([i for i, _ in rows]), np.stack([v for _, v in rows])) for label, rows in examples.items()
    }
    for box in boxes:
        raw = box.get("embedding")
        if not isinstance(raw, list) or not raw:
            out.append(None)
            continue
        vector = np.asarray(raw, dtype=np.float32)
        sims: dict[str, float] = {}
        for label, (ids, matrix) in sorted(matrices.items()):
            keep = ids != image_id
            if matrix.shape[1] != len(vector):
                continue
            if keep.any():
                cosines = np.sort(matrix[keep] @ vector)[::-1][:top_k]
                sims[label] = round(float(np.mean(cosines)), 3)
        out.append(sims)
    return out
