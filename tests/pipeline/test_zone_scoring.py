"""Zone scoring: polygon crops for classifiers, box overlap for detectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.config.model import ZoneConfig
from edge.pipeline.zone_scoring import DetectedBox, Zone, box_overlap, crop_zone, score_classification, score_detections

RECT = Zone("left", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)), ("empty",))
TRIANGLE = Zone("tri", ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)), ("empty",))


def test_crop_masks_outside_the_polygon() -> None:
    image = np.full((100, 100, 3), 200, dtype=np.uint8)
    crop = crop_zone(image, TRIANGLE)
    assert crop.shape == (100, 100, 3)
    assert crop[5, 5].tolist() == [200, 200, 200]  # inside
    assert crop[95, 95].tolist() == [0, 0, 0]  # outside the triangle: masked


def test_crop_of_a_rectangle_is_the_rectangle() -> None:
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, :40] = 255
    crop = crop_zone(image, RECT)
    assert crop.shape == (40, 40, 3) and crop.min() == 255


def test_classification_score_is_the_best_alert_label() -> None:
    zones = [RECT, Zone("b", RECT.polygon, ("empty", "gap"))]
    out = score_classification([{"empty": 0.2, "full": 0.8}, {"empty": 0.3, "gap": 0.6, "full": 0.1}], zones)
    assert [(s.label, s.score) for s in out] == [("empty", 0.2), ("gap", 0.6)]


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((0.1, 0.1, 0.3, 0.3), 1.0),  # wholly inside
        ((0.4, 0.0, 0.6, 1.0), 0.5),  # half inside
        ((0.6, 0.0, 0.9, 1.0), 0.0),  # outside
    ],
)
def test_overlap_is_share_of_the_box(box: tuple[float, float, float, float], expected: float) -> None:
    assert box_overlap(box, RECT.bbox(), RECT.polygon) == pytest.approx(expected, abs=1e-6)


def test_overlap_with_a_triangle_uses_the_polygon() -> None:
    # The box's lower-right half lies outside the triangle x + y <= 1.
    share = box_overlap((0.0, 0.0, 1.0, 1.0), TRIANGLE.bbox(), TRIANGLE.polygon)
    assert 0.4 < share < 0.6


def test_detection_score_takes_best_overlapping_alert_box() -> None:
    dets = [
        DetectedBox("empty", 0.95, (0.7, 0.1, 0.9, 0.9)),  # best score but in the other half
        DetectedBox("empty", 0.7, (0.1, 0.1, 0.4, 0.9)),
        DetectedBox("stocked", 0.99, (0.1, 0.1, 0.4, 0.9)),  # not an alert label
        DetectedBox("empty", 0.8, (0.3, 0.1, 0.7, 0.9)),  # 50 % inside: below 0.6
    ]
    (score,) = score_detections(dets, [RECT], min_overlap=0.6)
    assert score.score == pytest.approx(0.7) and score.label == "empty"
    assert score.bbox == (0.1, 0.1, 0.4, 0.9)
    (none,) = score_detections([], [RECT], min_overlap=0.5)
    assert none.score == 0.0 and none.bbox is None


def test_evaluate_zones_with_a_real_classifier(tmp_path: Path) -> None:
    from edge.pipeline.camera_pipeline import evaluate_zones, zones_for_model
    from edge.pipeline.model_slot import build_active
    from edge.runtime.wrappers import load_model
    from tests.helpers.tiny_bundle import make_classification_bundle

    bundle = make_classification_bundle(tmp_path, labels=("red", "green"), alert_labels=("red",), openvino=False)
    active = build_active(bundle.bundle_dir, lambda p: load_model(p, "onnxruntime", 1))
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, :40] = (0, 0, 255)  # left half red (BGR)
    image[:, 40:] = (0, 255, 0)  # right half green
    configs = [
        ZoneConfig(id="left", polygon=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)]),
        ZoneConfig(id="right", polygon=[(0.5, 0), (1, 0), (1, 1), (0.5, 1)]),
        ZoneConfig(id="green", polygon=[(0.5, 0), (1, 0), (1, 1), (0.5, 1)], label="green"),
    ]
    zones = zones_for_model(configs, active)
    assert [z.alert_labels for z in zones] == [("red",), ("red",), ("green",)]
    left, right, green = evaluate_zones(active, image, zones, min_overlap=0.5)
    assert left.label == "red" and left.score > 0.9
    assert right.score < 0.1
    assert green.label == "green" and green.score > 0.9


def _crop_zone_before(image: np.ndarray, zone: Zone) -> np.ndarray:
    """crop_zone as it was before the cached cuts (session 6): a copy of the box, masked per call."""
    import cv2

    from edge.pipeline.zone_scoring import zone_pixel_rect

    h, w = image.shape[:2]
    x1, y1, x2, y2 = zone_pixel_rect(zone, w, h)
    crop = image[y1:y2, x1:x2].copy()
    pts = np.array([[px * w - x1, py * h - y1] for px, py in zone.polygon], dtype=np.float32)
    mask = np.zeros(crop.shape[:2], dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    if not mask.all():
        crop[mask == 0] = 0
    return crop


ZONES = [
    RECT,
    TRIANGLE,
    Zone("strip", ((0.25, 0.0), (0.5, 0.0), (0.5, 1.0), (0.25, 1.0)), ()),
    Zone("thin", ((0.3, 0.3), (0.3004, 0.3), (0.3004, 0.9), (0.3, 0.9)), ()),  # under a pixel wide
    Zone("out", ((-0.2, 0.5), (1.3, 0.4), (0.8, 1.4)), ()),  # reaches past the frame
    Zone("quad", ((0.1, 0.2), (0.7, 0.05), (0.9, 0.8), (0.2, 0.95)), ()),
    Zone("star", ((0.5, 0.0), (0.6, 0.4), (1.0, 0.5), (0.6, 0.6), (0.5, 1.0), (0.4, 0.6), (0.0, 0.5), (0.4, 0.4)), ()),
]


@pytest.mark.parametrize("size", [(720, 1280), (37, 53), (1080, 1920)])
def test_zone_crops_are_the_per_call_crops_bit_for_bit(size: tuple[int, int]) -> None:
    from edge.pipeline.zone_scoring import zone_crop, zone_cut

    zone_cut.cache_clear()
    rng = np.random.default_rng(size[0])
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    image.flags.writeable = False  # as a captured frame
    for _ in range(2):  # the second time from the cache
        for zone in ZONES:
            want = _crop_zone_before(image, zone)
            fast, owned = zone_crop(image, zone), crop_zone(image, zone)
            assert fast.shape == want.shape and fast.dtype == want.dtype and np.array_equal(fast, want), zone.id
            assert np.array_equal(owned, want) and owned.flags.writeable and not np.may_share_memory(owned, image)
    assert zone_cut.cache_info().hits >= len(ZONES)


def test_a_rectangle_zones_crop_is_a_read_only_view_and_a_polygons_a_masked_copy() -> None:
    from edge.pipeline.zone_scoring import zone_crop, zone_cut

    image = np.full((60, 80, 3), 7, dtype=np.uint8)
    view = zone_crop(image, RECT)
    assert np.shares_memory(view, image) and not view.flags.writeable
    masked = zone_crop(image, TRIANGLE)
    assert not np.shares_memory(masked, image) and masked[59, 79].tolist() == [0, 0, 0]
    cut = zone_cut(TRIANGLE.polygon, 80, 60)
    assert cut.mask is not None and not cut.mask.flags.writeable
    assert zone_cut(RECT.polygon, 80, 60).mask is None
    # A zone given with lists (as a config or dataset may) is cut the same way.
    listed = Zone("l", [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], ())  # type: ignore[arg-type]
    assert np.array_equal(zone_crop(image, listed), masked)
