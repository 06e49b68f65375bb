"""A trainer job runner for the studio's report page: a real signed tiny bundle with a report like the pipeline's.

`tests.web_runtime.studio_runners:reported_runner` writes the tiny colour classifier (accuracy 0.5 in the manifest)
and a report.json with per-label numbers, a confusion matrix, a warning, the trainer machine's absolute weights path
(which the device must not show) and `metrics.mistakes` naming two of the job's own dataset images, as the
classification recipe writes them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from edge.bundle import write_bundle
from tests.helpers.tiny_bundle import _export, classification_graph
from tests.trainer.service.runners import tiny_colour_manifest
from trainer.pipeline import Progress, TrainResult, TrainSpec

WARNING = "tiny test set: 6 images; read the numbers as rough"


def reported_runner(
    spec: TrainSpec, progress: Callable[[Progress], None], should_cancel: Callable[[], bool]
) -> TrainResult:
    """Read the data and write a signed bundle whose report.json lists two mistakes on its images."""
    from trainer.data import read_any

    dataset = read_any(Path(spec.data), spec.fmt)
    labels = dataset.label_names
    progress(Progress("training", 0.5, 1, 2, 0.4, 30.0, "one step"))
    manifest = tiny_colour_manifest(spec, labels)
    manifest["metrics"] = {"accuracy": 0.5, "macro_f1": 0.5}
    wrong = [s for s in dataset.samples if s.tags][:2]
    report = {
        "name": spec.name,
        "version": manifest["version"],
        "task": "classification",
        "engine": "onnxruntime",
        "labels": labels,
        "metrics": {
            "accuracy": 0.5,
            "macro_f1": 0.5,
            "samples": 4,
            "labels": labels,
            "confusion_matrix": [[1 if i == j else 0 for j in range(len(labels))] for i in range(len(labels))],
            "per_label": {lab: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2} for lab in labels},
            "mistakes": [
                {
                    "image": s.name,
                    "zone": None,
                    "zone_box": None,
                    "true": s.tags[0],
                    "predicted": next(lab for lab in labels if lab != s.tags[0]),
                    "score": 0.9,
                }
                for s in wrong
            ],
        },
        "base": {"backbone": "squeezenet1_1", "weights": "/srv/trainer-machine/weights/squeezenet1_1.npz"},
        "warnings": [WARNING],
    }
    assert spec.signing_key is not None
    with tempfile.TemporaryDirectory() as tmp:
        files = _export(classification_graph(labels, 32), Path(tmp), False)
        (Path(tmp) / "report.json").write_text(json.dumps(report))
        files["report.json"] = Path(tmp) / "report.json"
        bundle = write_bundle(spec.out, manifest, files, spec.signing_key)
    return TrainResult(bundle, {"total": 0.1}, {"accuracy": 0.5}, report, [WARNING])
