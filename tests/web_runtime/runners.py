"""A trainer job runner for the deploy-decision tests: a real signed tiny bundle whose manifest reports accuracy 0.5.

Injected into the real trainer service as `tests.web_runtime.runners:half_accuracy_runner`; it reads the job's
dataset, reports progress, and writes a colour classifier (tests/helpers/tiny_bundle.py) signed with the service's
key, with `metrics.accuracy` = 0.5 so that a deploy threshold decides whether the device activates it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from edge.bundle import write_bundle
from tests.helpers.tiny_bundle import _export, classification_graph
from tests.trainer.service.runners import tiny_colour_manifest
from trainer.pipeline import Progress, TrainResult, TrainSpec

ACCURACY = 0.5


def half_accuracy_runner(
    spec: TrainSpec, progress: Callable[[Progress], None], should_cancel: Callable[[], bool]
) -> TrainResult:
    """Read the data and write a real signed bundle reporting accuracy 0.5."""
    from trainer.data import read_any

    labels = read_any(Path(spec.data), spec.fmt).label_names
    progress(Progress("training", 0.5, 1, 1, 0.1, None, "one step"))
    manifest = tiny_colour_manifest(spec, labels)
    manifest["metrics"] = {"accuracy": ACCURACY, "macro_f1": ACCURACY}
    assert spec.signing_key is not None
    with tempfile.TemporaryDirectory() as tmp:
        files = _export(classification_graph(labels, 32), Path(tmp), False)
        bundle = write_bundle(spec.out, manifest, files, spec.signing_key)
    return TrainResult(bundle, {"total": 0.1}, {"accuracy": ACCURACY}, {}, [])
