"""Skill test fixtures: real shelf photos sorted by how gappy the tiny detector will find them, tiny bundles
for the example's two projects, and a data dir whose store has those projects and whose repository has them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.model_repository import ModelRepository
from edge.store import DatasetStore
from tests.helpers.tiny_bundle import (
    DEFAULT_DETECTION_BOXES,
    TinyBundle,
    make_classification_bundle,
    make_detection_bundle,
)

REPO = Path(__file__).resolve().parents[2]
EMPTY_SHELF = REPO.parent / "shared" / "datasets" / "empty_shelf" / "train" / "images"
SIZE = 64  # the tiny detector's input (letterboxed; the photos are square)

EXAMPLE = """\
cameras:
  - id: aisle3
    source: /srv/frames
    fps: 2
    zones: [{id: shelf-a, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}]
    skills:
      - id: gaps
        blocks:
          - {id: det, type: detect, project: shelf-gaps, min_score: 0.3}
          - {id: cov, type: coverage, input: det, label: empty_shelf}
          - {id: low, type: hysteresis, input: cov, on: 0.2, off: 0.1, min_frames: 2}
          - {id: event, type: mqtt_event, input: low, event: low_stock}
          - {id: hook, type: webhook, input: low, url: "http://127.0.0.1:9000/hook", secret: "${HOOK_SECRET}"}
      - id: which
        blocks:
          - {id: det, type: detect, project: shelf-gaps, min_score: 0.3}
          - {id: kind, type: classify, project: products, input: det, crop: boxes}
          - {id: rule, type: condition, input: kind, when: "score >= 0.5"}
          - {id: cool, type: cooldown, input: rule, seconds: 30}
          - {id: event, type: mqtt_event, input: cool, event: product_gap}
"""
"""The issue's example, verbatim (tests replace the source folder and the receiver's port)."""


def half_darkness(path: Path) -> float:
    """The darker of the tiny detector's two boxes on this photo (its raw score before contrast)."""
    image = cv2.imread(str(path))
    assert image is not None, path
    small = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    best = 0.0
    for x1, y1, x2, y2 in DEFAULT_DETECTION_BOXES:
        region = small[round(y1 * SIZE) : round(y2 * SIZE), round(x1 * SIZE) : round(x2 * SIZE)]
        best = max(best, 1.0 - float(region.mean()))
    return best


@dataclass(frozen=True)
class ShelfPhotos:
    """Real photos: `gap` ones the steep tiny detector finds empty halves in, `stocked` ones it finds none in."""

    gap: list[Path]
    stocked: list[Path]
    pivot: float  # brightness at which the detector's score is 0.5
    contrast: float


@pytest.fixture(scope="session")
def shelf_photos() -> ShelfPhotos:
    if not EMPTY_SHELF.is_dir():
        pytest.skip(f"real shelf photos not found at {EMPTY_SHELF} (../shared is absent)")
    photos = sorted(EMPTY_SHELF.glob("*.jpg"))[:60]
    ranked = sorted(photos, key=half_darkness)
    stocked, gap = ranked[:3], ranked[-3:]
    lo, hi = half_darkness(stocked[-1]), half_darkness(gap[0])
    if hi - lo < 0.02:
        pytest.skip("the shelf photos are too alike for the tiny detector to tell apart")
    middle = (lo + hi) / 2
    # Scores: stocked photos <= 0.5 - 0.6 -> 0, gap photos >= 1.1 -> 1 (clipped).
    return ShelfPhotos(gap, stocked, pivot=1.0 - middle, contrast=0.6 / ((hi - lo) / 2))


@dataclass(frozen=True)
class Projects:
    """A data dir whose store has the example's projects, each with an installed tiny version."""

    data_dir: Path
    public_key: Path
    detector: TinyBundle
    classifier: TinyBundle


def gap_detector(bundles: Path, photos: ShelfPhotos, version: str) -> TinyBundle:
    """A version of the shelf-gaps project's tiny detector, tuned to find the gaps of these photos."""
    return make_detection_bundle(
        bundles,
        labels=("empty_shelf",),
        alert_labels=("empty_shelf",),
        version=version,
        name="shelf-gaps",
        contrast=photos.contrast,
        pivot=photos.pivot,
        score_threshold=0.05,
    )


def make_projects(data_dir: Path, bundles: Path, photos: ShelfPhotos) -> Projects:
    detector = gap_detector(bundles, photos, "gaps-1")
    classifier = make_classification_bundle(
        bundles, labels=("red", "green"), version="products-1", name="products", key_dir=bundles / "keys"
    )
    install_projects(data_dir, detector.bundle_dir, classifier.bundle_dir, detector.public_key)
    return Projects(data_dir, detector.public_key, detector, classifier)


def install_projects(data_dir: Path, detector: Path, classifier: Path, public_key: Path) -> None:
    """A data dir whose store has the example's projects, shelf-gaps with `detector` installed and products with
    `classifier`."""
    store = DatasetStore(data_dir)
    try:
        gaps = store.create_project("shelf-gaps", "detection")
        products = store.create_project("products", "classification")
    finally:
        store.close()
    repo = ModelRepository(data_dir / "models", [str(public_key)])
    repo.install(detector, project=gaps.id)
    repo.install(classifier, project=products.id)


@pytest.fixture
def projects(tmp_path: Path, shelf_photos: ShelfPhotos) -> Projects:
    return make_projects(tmp_path / "data", tmp_path / "bundles", shelf_photos)
