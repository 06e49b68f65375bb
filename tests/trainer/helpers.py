"""Generated data for the trainer tests: coloured blocks on noise (one colour per label), half-empty shelf photos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config.model import ZoneConfig
from edge.datasets.model import Box, Dataset, LabelInfo, Sample
from trainer.pipeline import TrainSpec

COLOURS = {"red": (40, 40, 210), "green": (40, 190, 40), "blue": (210, 70, 40)}


def rect_zone(zone_id: str, x1: float, y1: float, x2: float, y2: float) -> ZoneConfig:
    """A rectangular zone (normalised corners), its polygon clockwise from the top left."""
    return ZoneConfig(id=zone_id, polygon=[(x1, y1), (x2, y1), (x2, y2), (x1, y2)])


def coloured_dataset(root: Path, per_label: int = 10, seed: int = 0, size: tuple[int, int] = (56, 48)) -> Dataset:
    """Images with a block of the label's colour at a random place; written as PNG under root/<label>/."""
    rng = np.random.default_rng(seed)
    ds = Dataset(labels=[LabelInfo(n) for n in COLOURS])
    w, h = size
    for name, bgr in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            image = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
            x, y = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            cv2.rectangle(image, (x, y), (x + w // 2, y + h // 2), bgr, -1)
            path = root / name / f"{name}_{i:02d}.png"
            cv2.imwrite(str(path), image)
            ds.samples.append(Sample(path, f"{name}/{path.name}", tags=[name]))
    return ds


def half_empty_shelves(root: Path, count: int) -> Dataset:
    """64x64 shelf photos in two halves: a dark (empty) half where an 'empty' box says so, stocked colour elsewhere.

    Photo i has its top half empty when i is odd, its bottom half when i is even; written as PNG under root.
    """
    rng = np.random.default_rng(0)
    ds = Dataset(labels=[LabelInfo("empty")])
    for i in range(count):
        image = np.zeros((64, 64, 3), np.uint8)
        boxes = []
        for half, (y1, y2) in enumerate(((0, 32), (32, 64))):
            if (i + half) % 2:
                image[y1:y2] = rng.integers(0, 40, (y2 - y1, 64, 3))
                boxes.append(Box("empty", 0.05, y1 / 64 + 0.05, 0.95, y2 / 64 - 0.05))
            else:
                image[y1:y2] = rng.integers(0, 40, (y2 - y1, 64, 3)) + np.array([30, 150, 200], np.uint8)
        path = root / f"shelf{i}.png"
        cv2.imwrite(str(path), image)
        ds.samples.append(Sample(path, path.name, boxes=boxes))
    return ds


def classification_spec(data: Path, out: Path, **changes: Any) -> TrainSpec:
    """A test-sized classification TrainSpec over a folders dataset: SqueezeNet (the smallest backbone) without
    weights, 64 px, 2 views, 2 threads."""
    base: dict[str, Any] = dict(
        data=data, fmt="folders", task="classification", out=out, backbone="squeezenet1_1", weights=None,
        input_size=64, views=2, threads=2,
    )  # fmt: skip
    return TrainSpec(**{**base, **changes})
