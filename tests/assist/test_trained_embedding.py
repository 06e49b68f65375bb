"""A trained classification bundle exports its embedding (manifest outputs.embedding) and the device shows each
label's similarity beside the suggestion (real training on generated images, real onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from edge.assist.room import _similar
from edge.assist.suggest import embedding_output, suggest
from edge.runtime.wrappers import ClassificationModel, load_model
from tests.trainer.helpers import coloured_dataset
from trainer.pipeline import TrainSpec, run_training

pytestmark = pytest.mark.slow


def test_the_trained_bundle_exports_an_embedding_that_separates_the_labels(tmp_path: Path) -> None:
    coloured_dataset(tmp_path / "data", per_label=12)
    spec = TrainSpec(
        data=tmp_path / "data", fmt="folders", task="classification", out=tmp_path / "bundle",
        backbone="squeezenet1_1", weights=None, input_size=64, views=2, threads=2, evaluation="holdout",
    )  # fmt: skip
    result = run_training(spec)
    model = load_model(result.bundle_dir, engine="onnxruntime", threads=1, batch_budget_ms=None)
    assert isinstance(model, ClassificationModel)
    assert embedding_output(model) == "embedding"
    assert result.report["parity"]["passed"]
    photos = sorted((tmp_path / "data").rglob("*.png")) + sorted((tmp_path / "data").rglob("*.jpg"))
    labels = [p.parent.name for p in photos]
    suggestions = suggest(model, [cv2.imread(str(p)) for p in photos])
    assert all(s.embedding is not None and abs(float((s.embedding**2).sum()) - 1.0) < 1e-4 for s in suggestions)
    import numpy as np

    examples = {
        label: (
            [i for i, lab in enumerate(labels) if lab == label],
            np.stack([s.embedding for s, lab in zip(suggestions, labels, strict=True) if lab == label]),
        )  # type: ignore[misc]
        for label in sorted(set(labels))
    }
    right = 0
    for i, (s, label) in enumerate(zip(suggestions, labels, strict=True)):
        sims = _similar(s.embedding, i, examples)  # type: ignore[arg-type]
        right += max(sims, key=lambda k: sims[k]) == label
    assert right / len(labels) >= 0.8, "each photo is most similar to the examples of its own label"
