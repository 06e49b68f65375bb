"""The synthetic demo shelf: determinism, ground truth that matches the pixels, zones and the dataset helper."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.cameras.synthetic import (
    BACK_WALL_BGR,
    LOW_STOCK_LEVEL,
    SyntheticShelf,
    SyntheticShelfSource,
    default_zones,
    empty_regions,
    present_fraction,
    render_shelf,
)
from edge.errors import CameraError
from tests.helpers.shelf_dataset import generate_shelf_dataset

W, H = 320, 180


def imread(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def wall_fraction(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Share of pixels in a normalised box that look like the back wall (incl. its shading and pegboard holes)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    crop = image[int(y1 * h) : int(y2 * h), int(x1 * w) : int(x2 * w)].astype(np.int16)
    dist = np.abs(crop - np.array(BACK_WALL_BGR, np.int16)).max(axis=2)
    # The board's shadow darkens the wall uniformly; compare chroma-free brightness offsets too.
    grey_like = (np.ptp(crop - np.array(BACK_WALL_BGR, np.int16), axis=2) < 18) & (dist < 75)
    return float(grey_like.mean())


def test_render_is_deterministic_for_seed_stock_and_time() -> None:
    a = render_shelf(W, H, [1.0, 0.5, 0.0], seed=4, t=12.5)
    b = render_shelf(W, H, [1.0, 0.5, 0.0], seed=4, t=12.5)
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    c = render_shelf(W, H, [1.0, 0.5, 0.0], seed=4, t=13.0)
    assert not np.array_equal(a, c), "noise and flicker change with time"
    assert float(np.abs(a.astype(int) - c.astype(int)).mean()) < 8, "...but only slightly"
    d = render_shelf(W, H, [1.0, 0.5, 0.0], seed=5, t=12.5)
    assert float(np.abs(a.astype(int) - d.astype(int)).mean()) > 10, "another seed stocks other products"


def test_empty_rows_show_back_wall_and_full_rows_show_products() -> None:
    zones = default_zones(4)
    image = render_shelf(640, 360, [1.0, 0.0, 1.0, 0.0], seed=1, t=0.0)
    fractions = [wall_fraction(image, z.bbox()) for z in zones]
    assert fractions[1] > 0.8 and fractions[3] > 0.8, fractions
    assert fractions[0] < 0.5 and fractions[2] < 0.5, fractions


def test_ground_truth_matches_pixels_over_a_restock_cycle() -> None:
    shelf = SyntheticShelf(W, H, rows=3, period=20.0, seed=2)
    zones = shelf.zones()
    low_walls: list[float] = []
    ok_walls: list[float] = []
    seen: dict[str, set[bool]] = {z.id: set() for z in zones}
    for t in np.arange(0.0, 30.0, 0.75):
        truth = shelf.ground_truth(float(t))
        image = shelf.render(float(t))
        for z in zones:
            seen[z.id].add(truth[z.id])
            (low_walls if truth[z.id] else ok_walls).append(wall_fraction(image, z.bbox()))
    assert all(s == {True, False} for s in seen.values()), "every row runs low and gets restocked"
    assert min(low_walls) > 0.6, "a low row's zone is mostly back wall"
    assert np.mean(low_walls) > np.mean(ok_walls) + 0.25


def test_stock_and_truth_are_functions_of_seed_and_time() -> None:
    a, b = SyntheticShelf(W, H, seed=9), SyntheticShelf(W, H, seed=9)
    assert a.stock_at(33.3) == b.stock_at(33.3)
    assert a.ground_truth(33.3) == b.ground_truth(33.3)
    frac = present_fraction(W, H, a.stock_at(33.3), 9)
    assert a.ground_truth(33.3) == {f"row-{i + 1}": f < LOW_STOCK_LEVEL for i, f in enumerate(frac)}
    assert a.stock_at(10.0) != SyntheticShelf(W, H, seed=10).stock_at(10.0)


def test_unpaced_source_is_reproducible_and_realtime_uses_wall_clock() -> None:
    def frames(seed: int) -> list[np.ndarray]:
        src = SyntheticShelfSource(160, 96, rows=2, seed=seed, fps=5, realtime=False)
        src.open()
        out = [src.read() for _ in range(3)]
        src.close()
        return out

    one, two = frames(1), frames(1)
    assert all(np.array_equal(x, y) for x, y in zip(one, two, strict=True))
    src = SyntheticShelfSource(160, 96, rows=2, seed=1, fps=5, realtime=False)
    src.open()
    src.read()
    src.read()
    assert src.last_t == pytest.approx(0.2)
    live = SyntheticShelfSource(160, 96, rows=2, seed=1, fps=50)
    live.open()
    image = live.read()
    assert live.last_t > 1e9 and np.array_equal(image.shape, (96, 160, 3))


def test_default_zones_one_per_row_inside_the_frame() -> None:
    zones = default_zones(4)
    assert [z.id for z in zones] == ["row-1", "row-2", "row-3", "row-4"]
    boxes = [z.bbox() for z in zones]
    for (_, _, _, bottom), (_, top, _, _) in itertools.pairwise(boxes):
        assert bottom < top, "rows do not overlap"
    assert all(0 <= v <= 1 for b in boxes for v in b)
    with pytest.raises(ValueError):
        default_zones(0)


def test_bad_sizes_and_options_are_clear_errors() -> None:
    with pytest.raises(CameraError, match="at least 32x32"):
        SyntheticShelfSource(10, 10)
    with pytest.raises(CameraError, match="fps must be positive"):
        SyntheticShelfSource(fps=0)
    with pytest.raises(CameraError, match="rows must be"):
        SyntheticShelfSource(160, 96, rows=40)


def test_empty_regions_cover_exactly_the_missing_items() -> None:
    assert empty_regions(W, H, [1.0, 1.0], seed=3) == []
    full_empty = empty_regions(W, H, [0.0, 1.0], seed=3)
    assert len(full_empty) == 1
    x1, y1, x2, y2 = full_empty[0]
    z = default_zones(2)[0].bbox()
    assert x1 == pytest.approx(z[0], abs=0.02) and x2 == pytest.approx(z[2], abs=0.02)
    assert y1 == pytest.approx(z[1], abs=0.01) and y2 == pytest.approx(z[3], abs=0.01)
    image = render_shelf(W, H, [0.5, 0.3], seed=3)
    regions = empty_regions(W, H, [0.5, 0.3], seed=3)
    assert len(regions) >= 2
    for box in regions:
        assert wall_fraction(image, box) > 0.7, box


def test_generate_shelf_dataset_writes_yolo_and_classification_folders(tmp_path: Path) -> None:
    summary = generate_shelf_dataset(tmp_path / "ds", n=6, seed=1, width=W, height=H)
    root = tmp_path / "ds"
    images = sorted((root / "train" / "images").glob("*.jpg"))
    labels = sorted((root / "train" / "labels").glob("*.txt"))
    assert len(images) == len(labels) == summary.images == 6
    assert yaml.safe_load((root / "data.yaml").read_text())["names"] == ["empty_shelf"]
    n_boxes = 0
    for img_path, lbl_path in zip(images, labels, strict=True):
        assert img_path.stem == lbl_path.stem
        image = imread(img_path)
        assert image.shape == (H, W, 3)
        for line in lbl_path.read_text().splitlines():
            cls, *coords = line.split()
            assert cls == "0"
            cx, cy, bw, bh = map(float, coords)
            box = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
            assert all(0 <= v <= 1 for v in box)
            assert wall_fraction(image, box) > 0.6, "a labelled empty region shows the back wall"
            n_boxes += 1
    assert n_boxes == summary.boxes > 0
    low = sorted((root / "classification" / "low_stock").glob("*.jpg"))
    ok = sorted((root / "classification" / "ok").glob("*.jpg"))
    assert len(low) + len(ok) == 6 * 4 and low and ok
    assert summary.crops == {"low_stock": len(low), "ok": len(ok)}
    low_wall = np.mean([wall_fraction(imread(p), (0, 0, 1, 1)) for p in low])
    ok_wall = np.mean([wall_fraction(imread(p), (0, 0, 1, 1)) for p in ok])
    assert low_wall > ok_wall + 0.25
    again = generate_shelf_dataset(tmp_path / "again", n=6, seed=1, width=W, height=H)
    assert again.boxes == summary.boxes and again.crops == summary.crops, "same seed, same dataset"


def test_generate_shelf_dataset_rejects_n_below_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_shelf_dataset(tmp_path, n=0)
    assert list(tmp_path.iterdir()) == []
