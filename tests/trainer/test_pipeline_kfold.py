"""Small datasets are evaluated by k-fold cross-validation through the whole pipeline: whole images, zone crops and
detection; the report and the manifest say so; the same seed gives the same folds and the same model."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edge.bundle import read_manifest, verify_bundle
from tests.trainer.helpers import classification_spec, coloured_dataset, half_empty_shelves
from tests.trainer.test_pipeline_detection import _photos, small_detection_spec
from trainer.pipeline import EvaluationPlan, Progress, TrainResult, TrainSpec, kfold_size_warnings, run_training


def _spec(data: Path, out: Path, **kw: object) -> TrainSpec:
    return classification_spec(data, out, **{"min_per_label": 5, **kw})


def _check_kfold(result: TrainResult, items: int, photos: int, folds: int, headline: str) -> dict:
    report = json.loads((result.bundle_dir / "report.json").read_text())
    evaluation = report["evaluation"]
    assert evaluation["method"] == "kfold" and evaluation["folds"] == folds
    assert evaluation["photos"] == photos and evaluation["items"] == items and evaluation["test_items"] == items
    assert "cross-validation" in evaluation["reason"]
    per_fold = evaluation["per_fold"]
    assert [f["fold"] for f in per_fold] == list(range(1, folds + 1))
    assert sum(f["test_items"] for f in per_fold) == items  # every item tested exactly once
    assert sum(f["test_photos"] for f in per_fold) == photos  # and every photo in one fold only
    values = [f[headline] for f in per_fold]
    spread = evaluation["metrics"][headline]
    assert spread["mean"] == pytest.approx(float(np.mean(values)))
    assert spread["std"] == pytest.approx(float(np.std(values)))
    assert spread["min"] == min(values) and spread["max"] == max(values)
    manifest = json.loads((result.bundle_dir / "manifest.json").read_text())
    # The device reads the headline under its usual key: the k-fold mean, with the method beside it.
    assert manifest["metrics"][headline] == pytest.approx(spread["mean"])
    assert manifest["metrics"]["evaluation"]["method"] == "kfold"
    assert "per_fold" not in manifest["metrics"]["evaluation"]
    assert result.metrics["evaluation"]["method"] == "kfold"
    assert report["split"]["source"] == "kfold" and report["engine"] == "torch"
    assert "cross-validation" in (result.bundle_dir / "report.html").read_text()
    assert report["parity"]["passed"]  # the shipped model is still exported and checked
    # No hold-out split was made: no "tiny test set" warning above a k-fold headline.
    assert not any(w.startswith("tiny test set") for w in report["warnings"])
    return report


def _check_int8_gate(result: TrainResult, report: dict, metric: str) -> dict:
    """The k-fold INT8 gate (trainer/pipeline.py `_int8_gate`): each fold's model quantised on that fold's training
    items only and scored on its held-out items, every item tested once; the shipped IR kept only within 1 point."""
    from trainer.export import nncf_available

    if not nncf_available():
        assert "int8" not in report
        return {}
    gate = report["int8"]
    assert gate["method"] == "kfold" and gate["on"] == "out_of_fold" and gate["metric"] == metric
    folds = report["evaluation"]["per_fold"]
    assert [g["fold"] for g in gate["per_fold"]] == [f["fold"] for f in folds]
    tested = [name for g in gate["per_fold"] for name in g["tested"]]
    assert len(tested) == len(set(tested)) == gate["images"] == report["evaluation"]["items"]

    def photo(name: str) -> str:
        return name.split("#")[0]  # a zone crop is `photo#zone`

    for g, f in zip(gate["per_fold"], folds, strict=True):
        assert len(g["tested"]) == f["test_items"]  # the fold's own held-out items
        # Never calibrated on (nor trained on: calibration items are the fold's training items) a tested photo.
        assert g["calibrated_on"] and not {photo(n) for n in g["tested"]} & {photo(n) for n in g["calibrated_on"]}
        if metric == "accuracy":  # the fold's exported FP32 model scores what its torch model did (one item apart)
            assert abs(g["fp32"] - f["accuracy"]) <= 1 / f["test_items"] + 1e-9
    assert gate["difference"] == pytest.approx(gate["int8"] - gate["fp32"], abs=1e-3)
    assert gate["kept"] == (gate["fp32"] - gate["int8"] <= 0.01 + 1e-9)
    assert ("openvino/int8/model.xml" in read_manifest(result.bundle_dir).files) == gate["kept"]
    assert f"on the {gate['images']} out-of-fold items" in gate["reason"]
    return gate


def test_kfold_warnings_speak_of_the_kfold_estimate_not_of_a_test_split() -> None:
    plan = EvaluationPlan("kfold", 5, 18, 18, "18 photos (< 60)", 0)
    held_out = ["tiny test set (3 samples for 3 labels): each test sample moves accuracy by 33 points", "other"]
    warnings = kfold_size_warnings(held_out, plan, labels=3, task="classification")
    assert warnings[0] == "other" and len(warnings) == 2
    assert warnings[1].startswith("small k-fold estimate (5-fold over 18 samples for 3 labels)")
    big = EvaluationPlan("kfold", 5, 40, 60, "40 photos (< 60)", 0)
    assert kfold_size_warnings(held_out, big, labels=2, task="classification") == ["other"]
    detection = kfold_size_warnings(["tiny test set (2 photos): treat mAP as rough"], plan, 1, "detection")
    assert detection == []  # 18 photos are enough for the hold-out bound of 10


@pytest.mark.slow
def test_small_classification_set_is_cross_validated_and_deterministic(tmp_path: Path) -> None:
    ds = coloured_dataset(tmp_path / "data", per_label=6)
    seen: list[Progress] = []
    a = run_training(_spec(tmp_path / "data", tmp_path / "a"), progress=seen.append, dataset=ds)
    report = _check_kfold(a, items=18, photos=18, folds=5, headline="accuracy")
    gate = _check_int8_gate(a, report, "accuracy")
    if gate:  # the out-of-fold FP32 scores are the k-fold's, not the shipped model's on its training photos
        assert gate["fp32"] == pytest.approx(report["metrics"]["accuracy"], abs=1 / 18 + 1e-9)
    # one progress bar over the folds and the shipped model: it never goes back
    assert all(q.fraction >= p.fraction - 1e-9 for p, q in itertools.pairwise(seen))
    assert [p.stage for p in seen][-1] == "done" and sum(p.message == "fitting head" for p in seen) > 6
    # The pooled out-of-fold predictions: one row per image in the confusion matrix.
    assert sum(map(sum, report["metrics"]["confusion_matrix"])) == 18
    assert report["metrics"]["samples"] == 18 and a.metrics["test_samples"] == 18
    # The shipped model learnt from every image: validation was carved out and then refitted on.
    split = report["split"]
    assert {k: split["train"][k] + split["val"][k] for k in split["train"]} == {"blue": 6, "green": 6, "red": 6}
    assert a.metrics["accuracy"] >= 0.6  # chance is 0.33
    verify_bundle(a.bundle_dir, [str(tmp_path / "keys" / "bundle-signing.pub")])

    b = run_training(_spec(tmp_path / "data", tmp_path / "b"), dataset=ds)
    assert b.report["evaluation"]["per_fold"] == a.report["evaluation"]["per_fold"]
    probe = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)

    def logits(bundle: Path) -> np.ndarray:
        s = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
        return np.asarray(s.run(None, {"input": probe})[0])

    assert np.array_equal(logits(a.bundle_dir), logits(b.bundle_dir))


@pytest.mark.slow
def test_holdout_when_asked_or_when_the_dataset_has_its_own_test_split(tmp_path: Path) -> None:
    ds = coloured_dataset(tmp_path / "data", per_label=6)
    result = run_training(_spec(tmp_path / "data", tmp_path / "h", evaluation="holdout"), dataset=ds)
    evaluation = result.report["evaluation"]
    assert evaluation["method"] == "holdout" and evaluation["folds"] == 1
    assert evaluation["test_items"] == result.metrics["test_samples"] == 3
    assert "per_fold" not in evaluation and result.report["engine"] == "onnxruntime"
    for s in ds.samples:  # the dataset brings its own split: it is respected
        s.split = "test" if s.name.endswith(("_00.png", "_01.png")) else "train"
    result = run_training(_spec(tmp_path / "data", tmp_path / "d"), dataset=ds)
    assert result.report["evaluation"]["method"] == "holdout"
    assert result.report["evaluation"]["reason"] == "the dataset's own test split"
    assert result.metrics["test_samples"] == 6


@pytest.mark.slow
def test_zone_crops_of_one_photo_stay_in_one_fold(tmp_path: Path) -> None:
    from edge.config.model import ZoneConfig

    zones = [
        ZoneConfig.model_validate({"id": "top", "polygon": [[0, 0], [1, 0], [1, 0.5], [0, 0.5]]}),
        ZoneConfig.model_validate({"id": "bottom", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}),
    ]
    ds = half_empty_shelves(tmp_path, 10)
    result = run_training(
        _spec(tmp_path, tmp_path / "b", zones=zones, alert_labels=["empty"], folds=4, input_size=32), dataset=ds
    )
    # 10 photos x 2 zones = 20 crops; both crops of a photo always in the same fold (test_photos add up to 10).
    report = _check_kfold(result, items=20, photos=10, folds=4, headline="accuracy")
    assert result.metrics["accuracy"] >= 0.7
    _check_int8_gate(result, report, "accuracy")  # both crops of a tested photo kept out of its calibration


@pytest.mark.slow
def test_small_detection_set_is_cross_validated(tmp_path: Path) -> None:
    ds = _photos(tmp_path / "photos", 9)
    spec = small_detection_spec(tmp_path, min_per_label=5)
    result = run_training(spec, dataset=ds)
    report = _check_kfold(result, items=9, photos=9, folds=3, headline="map50")
    _check_int8_gate(result, report, "map50")  # one detector per fold, quantised on its own training photos
    assert set(report["evaluation"]["metrics"]) == {"map50", "map50_95", "precision", "recall", "f1"}
    assert report["metrics"]["images"] == 9 and result.metrics["test_images"] == 9
    assert report["split"]["train_images"] == 9  # the shipped detector trained on every photo
    manifest = verify_bundle(result.bundle_dir, [str(tmp_path / "keys" / "bundle-signing.pub")])
    assert manifest.thresholds.score == pytest.approx(round(report["metrics"]["score_threshold"], 4))
