"""Generated datasets for the format tests: real image files written with OpenCV, several labels, splits, tags and
boxes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.datasets.model import Box, Dataset, LabelInfo, Sample

LABELS = ["apple", "banana", "carrot"]


def write_image(path: Path, width: int = 48, height: int = 32, seed: int = 0) -> Path:
    """A small noise image (distinct per seed) written with cv2; the suffix picks the encoding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


def digest(path: Path) -> str:
    """sha256 of a file: how tests match samples across formats that rename files."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_source_dataset(folder: Path) -> Dataset:
    """Nine images (JPEG and PNG, different sizes, one clashing base name) with tags, boxes and every split."""
    specs = [
        # (relative name, width, height, split, tags, boxes as (label, x1, y1, x2, y2))
        ("a/img0.jpg", 64, 48, "train", ["apple"], [("apple", 0.1, 0.2, 0.5, 0.6)]),
        ("a/img1.png", 40, 30, "train", ["banana", "apple"], [("banana", 0.0, 0.0, 1.0, 1.0)]),
        ("b/img1.jpg", 50, 50, "val", [], [("carrot", 0.25, 0.25, 0.75, 0.5), ("apple", 0.5, 0.5, 0.9, 0.95)]),
        ("b/img3.jpg", 80, 40, "val", ["carrot"], []),
        ("c/img4.png", 32, 64, "test", ["banana"], [("banana", 0.125, 0.3, 0.5, 0.7)]),
        ("c/img5.jpg", 48, 32, "test", ["apple", "carrot"], []),
        ("d/img6.jpg", 48, 32, "auto", ["carrot"], [("carrot", 0.3333, 0.1, 0.6667, 0.9)]),
        ("d/img7.jpg", 48, 32, "auto", [], []),
        ("d/IMG0.jpg", 56, 42, "train", ["banana"], [("apple", 0.02, 0.03, 0.98, 0.97)]),
    ]
    ds = Dataset(labels=[LabelInfo(n) for n in LABELS])
    for seed, (name, width, height, split, tags, boxes) in enumerate(specs):
        path = write_image(folder / name, width, height, seed=seed)
        ds.samples.append(
            Sample(
                path=path.resolve(),
                name=name,
                tags=list(tags),
                boxes=[Box(*b) for b in boxes],
                split=split,
                # The store may not know sizes: writers then read them from the image header.
                width=width if seed % 2 else None,
                height=height if seed % 2 else None,
            )
        )
    return ds


@pytest.fixture
def source_dataset(tmp_path: Path) -> Dataset:
    """A generated dataset whose images live under tmp_path/source."""
    return make_source_dataset(tmp_path / "source")
