"""The pipeline's detection path end to end on generated photos: bundle, parity, ONNX Runtime metrics, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.bundle import verify_bundle
from edge.cli import main
from edge.datasets.model import Box, Dataset, LabelInfo, Sample
from trainer.errors import TrainingError
from trainer.pipeline import TrainSpec, run_training


def _photos(root: Path, count: int) -> Dataset:
    rng = np.random.default_rng(0)
    ds = Dataset(labels=[LabelInfo("gap")])
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = rng.integers(110, 170, (64, 96, 3)).astype(np.uint8)
        x, y = int(rng.integers(2, 55)), int(rng.integers(2, 30))
        cv2.rectangle(image, (x, y), (x + 36, y + 28), (15, 15, 15), -1)
        path = root / f"shelf{i:02d}_jpg.rf.{i:032x}.jpg"
        cv2.imwrite(str(path), image)
        ds.samples.append(Sample(path, path.name, boxes=[Box("gap", x / 96, y / 64, (x + 36) / 96, (y + 28) / 64)]))
    return ds


def small_detection_spec(tmp_path: Path, **changes: Any) -> TrainSpec:
    """Detection on tmp_path/photos into tmp_path/bundle, sized for tests: SqueezeNet (the smallest backbone) without
    weights, 1 epoch at 64 px, 1 view, 2 threads."""
    base: dict[str, Any] = dict(
        data=tmp_path / "photos", fmt=None, task="detection", out=tmp_path / "bundle", backbone="squeezenet1_1",
        weights=None, epochs=1, input_size=64, views=1, threads=2,
    )  # fmt: skip
    return TrainSpec(**{**base, **changes})


@pytest.mark.slow
def test_detection_bundle_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = _photos(tmp_path / "photos", 10)
    spec = small_detection_spec(tmp_path, backbone="squeezenet1_1")
    result = run_training(spec, dataset=ds)
    manifest = verify_bundle(result.bundle_dir, [str(tmp_path / "keys" / "bundle-signing.pub")])
    assert manifest.task == "detection" and manifest.labels == ["gap"]
    assert manifest.outputs.type == "detection" and manifest.input.width == 64
    from trainer.detection.train import NMS_IOU

    # the device decodes with the NMS IoU the run evaluated with
    assert manifest.thresholds.nms_iou == NMS_IOU == result.report["training"]["nms_iou"]
    assert {"model.onnx", "openvino/model.xml", "report.html", "pr_curve.png"} <= set(manifest.files)
    assert set(result.metrics) >= {"map50", "map50_95", "precision", "recall", "f1"}
    assert result.report["parity"]["passed"]
    assert result.report["parity"]["onnxruntime"]["max_abs_diff_scores"] < 1e-3
    assert result.report["split"]["test_images"] >= 1
    # evaluate the bundle through the CLI on the same photos (YOLO-free: hand the Dataset over by writing COCO?
    # the generic evaluator needs a format on disk, so write the photos as a YOLO dataset).
    from edge.datasets.formats import write_dataset

    write_dataset(ds, tmp_path / "yolo", "yolo")
    assert main(["evaluate", "--bundle", str(result.bundle_dir), "--data", str(tmp_path / "yolo"), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["task"] == "detection"
    assert {"map50", "map50_95", "precision", "recall", "f1"} <= set(ev)
    assert 0.0 <= ev["map50"] <= 1.0


def test_detection_refuses_too_few_photos(tmp_path: Path) -> None:
    ds = _photos(tmp_path / "photos", 4)
    spec = TrainSpec(data=tmp_path / "photos", fmt=None, task="detection", out=tmp_path / "b", weights=None)
    with pytest.raises(TrainingError, match=r"too few photos with boxes \(4 distinct photos\)"):
        run_training(spec, dataset=ds)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("photos", "fine_tune", "deep"), [(12, None, False), (50, None, True), (50, False, False), (12, True, True)]
)
def test_larger_datasets_fine_tune_the_stride16_stage(
    tmp_path: Path, photos: int, fine_tune: bool | None, deep: bool
) -> None:
    from trainer.detection.train import DEEP_FINE_TUNE_BLOCKS, DetectorConfig, deep_fine_tune
    from trainer.recipes.detection import DEEP_FINE_TUNE_PHOTOS, DetectionRecipe

    assert photos < DEEP_FINE_TUNE_PHOTOS or photos == DEEP_FINE_TUNE_PHOTOS
    ds = _photos(tmp_path / "photos", photos)
    spec = small_detection_spec(tmp_path, fine_tune=fine_tune, threads=None, views=None)
    recipe = DetectionRecipe(spec, tmp_path / "scratch")
    recipe.prepare(ds, progress=None)  # type: ignore[arg-type]
    shallow = DetectorConfig()
    expected = (DEEP_FINE_TUNE_BLOCKS, 0.3, 1, 32) if deep else (shallow.fine_tune_blocks, 1.0, 0, shallow.views)
    assert (recipe.cfg.fine_tune_blocks, recipe.cfg.trunk_lr_scale, recipe.cfg.frozen_bn, recipe.cfg.views) == expected
    assert recipe.cfg.max_steps is None  # the spec's explicit epochs lift either recipe's step cap
    capped = deep_fine_tune(DetectorConfig())
    assert capped.max_steps == 500 and shallow.max_steps == 300
    asked = DetectionRecipe(small_detection_spec(tmp_path, fine_tune=fine_tune, threads=None, views=5), tmp_path / "s2")
    asked.prepare(ds, progress=None)  # type: ignore[arg-type]
    assert asked.cfg.views == 5  # a user's --views wins over either recipe's


def test_a_datasets_own_test_photos_do_not_count_towards_the_deep_recipe(tmp_path: Path) -> None:
    from trainer.detection.train import DetectorConfig
    from trainer.recipes.detection import DEEP_FINE_TUNE_PHOTOS, DetectionRecipe

    ds = _photos(tmp_path / "photos", DEEP_FINE_TUNE_PHOTOS + 5)
    for k, s in enumerate(ds.samples):  # 15 to train on (the 15-photo benchmark's shape), the rest a test split
        s.split = "train" if k < 12 else "val" if k < 15 else "test"
    recipe = DetectionRecipe(small_detection_spec(tmp_path, threads=None), tmp_path / "scratch")
    recipe.prepare(ds, progress=None)  # type: ignore[arg-type]
    assert recipe.cfg.fine_tune_blocks == DetectorConfig().fine_tune_blocks and recipe.cfg.frozen_bn == 0
