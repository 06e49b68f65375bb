"""The NONE/other class the trainer trains is never a low-stock label on the device (one vocabulary for both)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config.model import ZoneConfig
from edge.datasets.model import Box
from edge.datasets.zone_crops import zone_crop_label
from edge.pipeline.camera_pipeline import evaluate_zones, zones_for_model
from edge.pipeline.model_slot import build_active
from edge.runtime.wrappers import load_model
from edge.vocabulary import NONE_CLASS_NAMES, none_label
from tests.helpers.tiny_bundle import make_classification_bundle, solid_image

# Every spelling the trainer takes as the dataset's NONE/other class, and the cases a user types.
NONE_SPELLINGS = [*sorted(NONE_CLASS_NAMES), "Nothing", "NONE", "Background"]


@pytest.mark.parametrize("name", NONE_SPELLINGS)
def test_the_trainers_none_class_raises_no_alert_on_the_device(tmp_path: Path, name: str) -> None:
    # The tiny model says "red" on a red image and `name` on a green one.
    labels = ("red", name)
    # Training: an annotated image whose only box misses the zone gives the zone's crop the dataset's NONE class.
    assert none_label(labels) == name
    assert zone_crop_label([], [Box("red", 0.8, 0.8, 0.9, 0.9)], (0.0, 0.0, 0.4, 0.4), none_label(labels)) == name
    # Device: the bundle names no alert labels; a zone showing the NONE class scores low, a red zone high.
    bundle = make_classification_bundle(tmp_path, labels=labels, openvino=False)
    active = build_active(bundle.bundle_dir, lambda d: load_model(d, engine="onnxruntime"))
    assert active.alert_labels == ("red",)
    zones = zones_for_model([ZoneConfig(id="shelf", polygon=[(0, 0), (1, 0), (1, 1), (0, 1)])], active)
    (green,) = evaluate_zones(active, solid_image((0, 255, 0)), zones, 0.5)
    (red,) = evaluate_zones(active, solid_image((0, 0, 255)), zones, 0.5)
    assert green.score < 0.5 < red.score
    assert red.label == "red"
