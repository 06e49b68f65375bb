"""The evaluation's mistakes for the studio's gallery: wrong classifications, false and missed boxes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from edge.datasets.model import Box
from edge.runtime.postprocess import Detection
from trainer.data import ClassSample
from trainer.recipes.classification import classification_mistakes
from trainer.recipes.detection import detection_mistakes


def test_classification_mistakes_name_the_image_zone_and_labels() -> None:
    items = [
        ClassSample(Path("a.jpg"), 0, "a", (0.0, 0.0, 0.5, 1.0), "a.jpg#left"),
        ClassSample(Path("a.jpg"), 1, "a", (0.5, 0.0, 1.0, 1.0), "a.jpg#right"),
        ClassSample(Path("b.jpg"), 1, "b", None, "b.jpg"),
    ]
    data = SimpleNamespace(items=items, labels=["low_stock", "none"])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]])
    (wrong,) = classification_mistakes(data, [0, 1, 2], probs)  # type: ignore[arg-type]
    assert wrong == {
        "image": "a.jpg",
        "zone": "right",
        "zone_box": {"x1": 0.5, "y1": 0.0, "x2": 1.0, "y2": 1.0},
        "true": "none",
        "predicted": "low_stock",
        "score": 0.8,
    }


def test_detection_mistakes_are_false_and_missed_boxes_at_the_threshold() -> None:
    truth = [Box("gap", 0.1, 0.1, 0.4, 0.4), Box("gap", 0.6, 0.6, 0.9, 0.9)]
    right = SimpleNamespace(name="ok.jpg", path=Path("ok.jpg"), boxes=[truth[0]])
    wrong = SimpleNamespace(name="bad.jpg", path=Path("bad.jpg"), boxes=truth)
    predictions = [
        [Detection("gap", 0.9, (0.1, 0.1, 0.4, 0.41))],
        [
            Detection("gap", 0.8, (0.11, 0.1, 0.4, 0.4)),  # matches the first box
            Detection("gap", 0.7, (0.0, 0.6, 0.2, 0.8)),  # a false box
            Detection("gap", 0.2, (0.6, 0.6, 0.9, 0.9)),  # below the threshold: the second box is missed
        ],
    ]
    data = SimpleNamespace(items=[right, wrong], labels=["gap"])
    (m,) = detection_mistakes(data, [0, 1], predictions, 0.5)  # type: ignore[arg-type]
    assert m["image"] == "bad.jpg"
    assert m["false_boxes"] == [{"label": "gap", "x1": 0.0, "y1": 0.6, "x2": 0.2, "y2": 0.8, "score": 0.7}]
    assert m["missed_boxes"] == [{"label": "gap", "x1": 0.6, "y1": 0.6, "x2": 0.9, "y2": 0.9}]
