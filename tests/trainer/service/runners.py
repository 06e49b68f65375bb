"""Job runners the service tests inject (`--runner tests.trainer.service.runners:tiny_runner`).

`tiny_runner` is a real runner, not a mock: it reads the job's dataset with the formats reader, reports progress
through the stages for `spec.epochs` steps of STEP_S each (checking cancel at every step, as run_training does),
and writes a real signed bundle (an onnx.helper colour classifier from tests/helpers/tiny_bundle.py) with the
service's signing key. It makes the service's job life cycle testable in seconds, and slow on demand
(a large `epochs`) for the cancel and restart tests.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.bundle import write_bundle
from tests.helpers.tiny_bundle import _export, _manifest, classification_graph
from trainer.errors import TrainingCancelled
from trainer.pipeline import Progress, TrainResult, TrainSpec, new_version

STEP_S = 0.05


def tiny_colour_manifest(spec: TrainSpec, labels: list[str]) -> dict[str, Any]:
    """The manifest of the tiny colour classifier (32x32 RGB, softmax logits) the test runners write."""
    return _manifest(
        name=spec.name,
        version=new_version(),
        task="classification",
        labels=labels,
        alert_labels=None,
        input_spec={
            "width": 32,
            "height": 32,
            "color": "RGB",
            "scale": 1.0 / 255.0,
            "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
            "resize": "stretch",
        },
        outputs={"type": "classification", "logits": "logits", "activation": "softmax"},
        score_threshold=0.5,
    )


def tiny_runner(
    spec: TrainSpec, progress: Callable[[Progress], None], should_cancel: Callable[[], bool]
) -> TrainResult:
    """Read the data, 'train' for spec.epochs steps, write a real signed tiny bundle to spec.out."""
    from trainer.data import read_any

    labels = read_any(Path(spec.data), spec.fmt).label_names
    steps = spec.epochs or 3
    progress(Progress("loading", 0.01, message="reading"))
    for step in range(1, steps + 1):
        if should_cancel():
            raise TrainingCancelled("training cancelled")
        time.sleep(STEP_S)
        progress(Progress("training", 0.05 + 0.7 * step / steps, step, steps, 1.0 / step, None, f"step {step}"))
    progress(Progress("exporting", 0.8, message="onnx"))
    manifest = tiny_colour_manifest(spec, labels)
    progress(Progress("evaluating", 0.9, message="signing"))
    if should_cancel():
        raise TrainingCancelled("training cancelled")
    assert spec.signing_key is not None
    with tempfile.TemporaryDirectory() as tmp:
        files = _export(classification_graph(labels, 32), Path(tmp), False)
        html = Path(tmp) / "report.html"
        html.write_text("<html><body>tiny report</body></html>")
        files["report.html"] = html
        bundle = write_bundle(spec.out, manifest, files, spec.signing_key)
    metrics = {"accuracy": 1.0, "steps": steps}
    return TrainResult(bundle, {"total": steps * STEP_S}, metrics, {}, ["tiny runner: not a trained model"])
