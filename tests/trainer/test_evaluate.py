"""Classification metrics, PR curves, threshold suggestion and the self-contained report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.errors import TrainingError
from trainer.evaluate import classification_metrics, pr_curve, threshold_for_precision, write_report


def test_metrics_by_hand() -> None:
    labels = ["a", "b", "c"]
    y = np.array([0, 0, 0, 1, 1, 2])
    probs = np.array(
        [[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]]
    )
    m = classification_metrics(labels, y, probs)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["per_label"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": 0.8, "support": 3}
    assert m["per_label"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.8 + 1.0) / 3)
    # b's predictions at >= 0.7 are right (0.8 true, 0.7 false: no) -> precision 1.0 needs threshold 0.8
    assert m["suggested_thresholds"]["b"] == pytest.approx(0.8)
    with pytest.raises(TrainingError, match="shape"):
        classification_metrics(labels, y, probs[:, :2])


def test_threshold_and_curve() -> None:
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.3])
    positive = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    assert threshold_for_precision(scores, positive, 0.75) == pytest.approx(0.7)  # 3 of 4 admitted are right
    assert threshold_for_precision(scores, positive, 1.0) == pytest.approx(0.9)
    assert threshold_for_precision(scores, np.zeros(6, bool), 0.5) is None
    curve = pr_curve(scores, positive)
    assert curve[0] == {"threshold": 0.95, "precision": 1.0, "recall": pytest.approx(1 / 3)}
    assert curve[-1]["recall"] == 1.0 and curve[-1]["precision"] == 0.5


def test_alert_threshold_uses_alert_labels() -> None:
    labels = ["empty", "ok"]
    y = np.array([0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.1, 0.9]])
    m = classification_metrics(labels, y, probs, alert_labels=["empty"], target_precision=1.0)
    assert m["suggested_score_threshold"] == pytest.approx(0.7)
    assert "alert labels" in m["score_threshold_basis"]


def test_report_files_are_self_contained(tmp_path: Path) -> None:
    labels = ["a", "b"]
    m = classification_metrics(labels, np.array([0, 1, 1]), np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]))
    report = {"name": "n", "version": "v<1>", "task": "classification", "metrics": m, "warnings": ["careful <b>"]}
    files = write_report(tmp_path, report)
    assert set(files) == {"report.json", "confusion_matrix.png", "pr_curve.png", "report.html"}
    assert files["confusion_matrix.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = files["report.html"].read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page
    assert "careful &lt;b&gt;" in page and "v&lt;1&gt;" in page
