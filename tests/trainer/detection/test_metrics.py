"""detection_metrics on hand-made cases whose COCO AP is known exactly, and engine parity."""

from __future__ import annotations

import pytest

from edge.datasets.model import Box
from edge.runtime.postprocess import Detection
from trainer.detection.metrics import compare_detections, detection_metrics

LABELS = ["gap", "price"]
GT = [
    [Box("gap", 0.1, 0.1, 0.4, 0.5), Box("price", 0.6, 0.6, 0.8, 0.7)],
    [Box("gap", 0.5, 0.2, 0.9, 0.6)],
]


def _perfect(score: float = 0.9) -> list[list[Detection]]:
    return [[Detection(b.label, score, b.as_tuple()) for b in boxes] for boxes in GT]


def test_perfect_predictions_score_one() -> None:
    m = detection_metrics(_perfect(), GT, LABELS)
    assert m["map50"] == pytest.approx(1.0)
    assert m["map50_95"] == pytest.approx(1.0)
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)
    assert m["per_label"]["gap"]["ap50"] == pytest.approx(1.0)
    assert m["per_label"]["price"]["ground_truth"] == 1
    assert (m["tp"], m["fp"], m["fn"]) == (3, 0, 0)


def test_one_false_positive_above_the_only_true_positive_halves_ap() -> None:
    gt = [[Box("gap", 0.1, 0.1, 0.4, 0.5)]]
    predictions = [
        [Detection("gap", 0.9, (0.6, 0.6, 0.9, 0.9)), Detection("gap", 0.8, (0.1, 0.1, 0.4, 0.5))],
    ]
    m = detection_metrics(predictions, gt, ["gap"])
    # precision at recall 1 is 1/2 and COCO's interpolation takes that for every recall point
    assert m["map50"] == pytest.approx(0.5)
    assert m["map50_95"] == pytest.approx(0.5)
    # best F1 keeps both detections: P 0.5, R 1
    assert m["score_threshold"] == pytest.approx(0.8)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(2 / 3)
    # no threshold reaches precision 0.9
    assert m["suggested_threshold"]["threshold"] is None


def test_false_positive_below_the_true_positive_keeps_ap_and_suggests_a_threshold() -> None:
    gt = [[Box("gap", 0.1, 0.1, 0.4, 0.5)]]
    predictions = [[Detection("gap", 0.9, (0.1, 0.1, 0.4, 0.5)), Detection("gap", 0.3, (0.6, 0.6, 0.9, 0.9))]]
    m = detection_metrics(predictions, gt, ["gap"], score_threshold=0.2)
    assert m["map50"] == pytest.approx(1.0)
    assert m["score_threshold_chosen_by"] == "given"
    assert m["precision"] == pytest.approx(0.5)
    assert m["suggested_threshold"] == {"target_precision": 0.9, "threshold": 0.9, "recall": 1.0}
    assert [p["threshold"] for p in m["pr_curve"]] == [0.9, 0.3]


def test_wrong_class_scores_zero() -> None:
    predictions = [[Detection("price", 0.9, b.as_tuple()) for b in boxes if b.label == "gap"] for boxes in GT]
    gt = [[b for b in boxes if b.label == "gap"] for boxes in GT]
    m = detection_metrics(predictions, gt, LABELS)
    assert m["map50"] == 0.0
    assert m["per_label"]["gap"]["ap50"] == 0.0
    assert m["recall"] == 0.0


def test_a_box_off_by_more_than_the_iou_is_a_miss_at_05_but_counts_at_lower_iou() -> None:
    gt = [[Box("gap", 0.0, 0.0, 0.4, 0.4)]]
    shifted = [[Detection("gap", 0.9, (0.2, 0.0, 0.6, 0.4))]]  # IoU = 1/3
    assert detection_metrics(shifted, gt, ["gap"])["map50"] == 0.0
    assert detection_metrics(shifted, gt, ["gap"], iou=0.3)["recall"] == 1.0


def test_no_predictions_at_all() -> None:
    m = detection_metrics([[], []], GT, LABELS)
    assert m["map50"] == 0.0 and m["recall"] == 0.0 and m["detections"] == 0
    assert m["per_label"]["gap"]["ap50"] == 0.0


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="not among"):
        detection_metrics([[Detection("shelf", 0.9, (0, 0, 1, 1))], []], GT, LABELS)
    with pytest.raises(ValueError, match="1 prediction lists for 2 images"):
        detection_metrics([[]], GT, LABELS)


def test_compare_detections() -> None:
    same = compare_detections(_perfect(0.9), _perfect(0.9))
    assert same["agreement"] == 1.0 and same["images_agreeing"] == 2 and same["max_score_diff"] == 0.0
    nudged = [[Detection(d.label, d.score - 0.01, d.bbox) for d in dets] for dets in _perfect(0.9)]
    assert compare_detections(_perfect(0.9), nudged)["max_score_diff"] == pytest.approx(0.01)
    missing_one = [_perfect()[0][:1], _perfect()[1]]
    partial = compare_detections(_perfect(), missing_one)
    assert partial["matched"] == 2 and partial["agreement"] == pytest.approx(4 / 5)
    assert compare_detections([[], []], [[], []])["agreement"] == 1.0
