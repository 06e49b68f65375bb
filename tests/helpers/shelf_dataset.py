"""A synthetic shelf dataset on disk for tests: YOLO empty-region boxes plus low_stock/ok zone crops.

The photos come from the synthetic camera (edge.cameras.synthetic), the YOLO set from the project's own writer
(edge.datasets.formats, as an export would write it), so what a test reads back is what a user's export holds.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.cameras.synthetic import (
    CLASS_LOW,
    CLASS_OK,
    EMPTY_LABEL,
    LOW_STOCK_LEVEL,
    default_zones,
    empty_regions,
    present_fraction,
    render_shelf,
)
from edge.datasets.formats import write_dataset
from edge.datasets.model import Box, Dataset, LabelInfo, Sample


@dataclass
class ShelfDatasetSummary:
    """What generate_shelf_dataset wrote."""

    root: Path
    images: int
    boxes: int
    crops: dict[str, int]


def generate_shelf_dataset(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    *,
    width: int = 640,
    height: int = 360,
    rows: int = 4,
    quality: int = 90,
) -> ShelfDatasetSummary:
    """Write n synthetic shelf photos as a YOLO detection set of empty regions plus low_stock/ok zone crops.

    Layout under out_dir: `data.yaml`, `train/images/*.jpg`, `train/labels/*.txt` (class 0 = `empty_shelf`,
    normalised cx cy w h), and `classification/low_stock/*.jpg`, `classification/ok/*.jpg` (one crop per row).
    Each image uses its own product layout; about a third of the rows are low. Same seed, same files.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    root = Path(out_dir)
    rng = np.random.default_rng(seed)
    zones = default_zones(rows)
    dataset = Dataset(labels=[LabelInfo(EMPTY_LABEL)])
    crops: dict[str, list[tuple[str, np.ndarray]]] = {CLASS_LOW: [], CLASS_OK: []}
    with tempfile.TemporaryDirectory(prefix="shelf-photos-") as photos:
        for k in range(n):
            layout_seed = int(rng.integers(0, 2**31 - 1))
            stock = [
                float(rng.uniform(0.0, 0.22)) if rng.random() < 0.35 else float(rng.uniform(0.4, 1.0))
                for _ in range(rows)
            ]
            image = render_shelf(width, height, stock, layout_seed, t=float(k))
            name = f"shelf_{seed}_{k:05d}"
            photo = Path(photos) / f"{name}.jpg"
            _write_jpeg(photo, image, quality)
            boxes = [Box(EMPTY_LABEL, *box) for box in empty_regions(width, height, stock, layout_seed)]
            dataset.samples.append(Sample(path=photo, name=photo.name, boxes=boxes, split="train"))
            fractions = present_fraction(width, height, stock, layout_seed)
            for zone, frac in zip(zones, fractions, strict=True):
                x1, y1, x2, y2 = zone.bbox()
                crop = image[int(y1 * height) : int(y2 * height), int(x1 * width) : int(x2 * width)]
                crops[CLASS_LOW if frac < LOW_STOCK_LEVEL else CLASS_OK].append((f"{name}_{zone.id}.jpg", crop))
        write_dataset(dataset, root, "yolo")
    for cls, items in crops.items():
        folder = root / "classification" / cls
        folder.mkdir(parents=True, exist_ok=True)
        for file_name, crop in items:
            _write_jpeg(folder / file_name, crop, quality)
    n_boxes = sum(len(s.boxes) for s in dataset.samples)
    return ShelfDatasetSummary(root=root, images=n, boxes=n_boxes, crops={c: len(v) for c, v in crops.items()})


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"could not encode {path.name} as JPEG")
    path.write_bytes(buf.tobytes())
