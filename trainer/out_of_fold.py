"""Out-of-fold predictions of a k-fold run, per image, for the device's deploy comparison (edge.assist.compare).

With k-fold the shipped model trains on every image, so the device cannot score it honestly on the project's
images. Each item's out-of-fold prediction comes from the fold model that never saw it; the device scores the
running version on the same images (those it did not train on) and compares the two there. Rows are keyed by the
image file's sha256 (the store keeps it per image) and name; classification zone crops are left out (the device
compares whole images).

report.json `evaluation.out_of_fold`: classification `{"sha256", "image", "label", "score"}` (the predicted label
and its probability); detection `{"sha256", "image", "boxes": [[label, score, x1, y1, x2, y2], ...]}` (normalised
to the image, best first, at most MAX_BOXES scoring at least MIN_SCORE).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MIN_SCORE = 0.01  # the device's comparison keeps detections from 0.01 (edge.assist.compare.EVAL_SCORE_FLOOR)
MAX_BOXES = 100


def _sha256(path: Path, cache: dict[Path, str]) -> str:
    if path not in cache:
        cache[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return cache[path]


def out_of_fold(
    labels: Sequence[str], items: Sequence[Any], indices: Sequence[int], predictions: Sequence[Any]
) -> list[dict[str, Any]]:
    """One row per evaluated whole image: its out-of-fold prediction (probabilities or detections)."""
    rows: list[dict[str, Any]] = []
    hashes: dict[Path, str] = {}
    seen: set[str] = set()
    for index, prediction in zip(indices, predictions, strict=True):
        item = items[index]
        if getattr(item, "crop", None) is not None:
            continue  # a zone crop: the device compares whole images
        path = Path(item.path)
        digest = _sha256(path, hashes)
        if digest in seen:
            continue  # augmented views of one photo share its file
        seen.add(digest)
        row: dict[str, Any] = {"sha256": digest, "image": str(getattr(item, "name", "") or path.name)}
        if isinstance(prediction, np.ndarray):
            best = int(np.argmax(prediction))
            row |= {"label": labels[best], "score": round(float(prediction[best]), 4)}
        else:
            found = sorted((d for d in prediction if d.score >= MIN_SCORE), key=lambda d: -d.score)[:MAX_BOXES]
            row["boxes"] = [[d.label, round(float(d.score), 4), *(round(float(v), 5) for v in d.bbox)] for d in found]
        rows.append(row)
    return rows
