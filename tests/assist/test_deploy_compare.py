"""Deploy only when better: a new version is scored beside the running one on the same images (the project's test
split plus reviewed inbox frames), both on real onnxruntime, and activated only when not worse."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from edge.bundle import pack_bundle
from edge.training.deploy import decide_deployment
from edge.training.runner import TrainingRunner
from edge.training.runs import TrainingRun
from tests.assist.conftest import GREEN, RED, Rig, colour_jpeg
from tests.helpers import tiny_bundle


def worse_bundle(root: Path, keys: Path) -> Path:
    """A red/green classifier that answers the wrong colour (as if trained on shuffled labels)."""
    private, public = tiny_bundle.ensure_keys(keys)
    manifest = tiny_bundle._manifest(
        name="shuffled",
        version="cls-shuffled",
        task="classification",
        labels=("red", "green"),
        alert_labels=None,
        input_spec=tiny_bundle._rgb_input(32, 32, "stretch"),
        outputs={"type": "classification", "logits": "logits", "activation": "softmax"},
        score_threshold=0.5,
    )
    graph = tiny_bundle.classification_graph(("red", "green"), 32, gain=-20.0)
    manifest["metrics"] = {"accuracy": 0.97}  # what a leaky evaluation might claim
    return tiny_bundle._signed(root / "cls-shuffled", manifest, graph, False, private, public).bundle_dir


def runner_with_run(rig: Rig, tmp_path: Path, run_id: str, threshold: float) -> tuple[TrainingRunner, TrainingRun]:
    """A training runner over the rig's store and models, with one classification run of project 1 recorded."""
    runner = TrainingRunner(lambda: None, rig.store, rig.models, tmp_path / "runs-data")  # type: ignore[arg-type,return-value]
    run = TrainingRun(
        id=run_id, task="classification", backbone=None, epochs=None, deploy_threshold=threshold, metric="accuracy",
        source="upload", project=1,
    )  # fmt: skip
    runner.history.add(run)
    return runner, run


def test_pure_decision_keeps_the_running_version_when_the_new_one_is_worse() -> None:
    comparison = {
        "metric": "accuracy",
        "new": 0.4,
        "running": 0.9,
        "running_version": "v-old",
        "images": 10,
        "test_images": 8,
        "inbox_images": 2,
    }
    worse = decide_deployment("v-new", {"accuracy": 0.95}, "accuracy", 0.85, comparison=comparison)
    assert worse.state == "installed" and not worse.activate
    assert "0.400" in worse.reason and "0.900" in worse.reason and "v-old" in worse.reason
    better = decide_deployment("v-new", {"accuracy": 0.95}, "accuracy", 0.85, comparison={**comparison, "new": 0.9})
    assert better.activate and "not worse" in better.reason
    # without a running number the threshold alone decides, as before
    assert decide_deployment("v-new", {"accuracy": 0.95}, "accuracy", 0.85, comparison=None).activate


def _upload(rig: Rig, images: list[bytes]) -> list[int]:
    files = [(io.BytesIO(data), f"img-{i}.jpg") for i, data in enumerate(images)]
    resp = rig.admin.post("/api/v1/images", data={"file": files}, content_type="multipart/form-data")
    return [item["id"] for item in resp.get_json()["items"]]


def test_a_worse_version_is_installed_not_activated_with_both_numbers_in_the_run(
    rig: Rig, bundles: Any, tmp_path: Path
) -> None:
    for name in ("red", "green"):
        rig.admin.post("/api/v1/labels", json={"name": name})
    ids = _upload(rig, [colour_jpeg(RED, 40 + i) for i in range(5)] + [colour_jpeg(GREEN, 50 + i) for i in range(5)])
    for i, image_id in enumerate(ids):
        rig.store.set_annotations(image_id, ["red" if i < 5 else "green"], [])
    rig.store.set_split(ids[:8], "test")
    rig.models.install(bundles.plain, activate=True, project=1)

    runner, run = runner_with_run(rig, tmp_path, "run-1", 0.85)
    tar = pack_bundle(worse_bundle(tmp_path, bundles.keys.parent), tmp_path / "worse.tar.gz")
    runner._install(run, tar)

    assert rig.models.active_version() == "cls-plain"
    run = runner.get("run-1")
    assert run.state == "installed" and not run.activated
    assert run.comparison is not None
    assert run.comparison["new"] == 0.0 and run.comparison["running"] == 1.0
    assert run.comparison["test_images"] == 8 and run.comparison["images"] == 8
    assert "0.000" in (run.decision or "") and "1.000" in (run.decision or "")
    assert "cls-plain" in (run.decision or "")
    # kept in the run history on disk
    assert TrainingRunner(lambda: None, rig.store, rig.models, tmp_path / "runs-data").get("run-1").comparison == (  # type: ignore[arg-type,return-value]
        run.comparison
    )


def test_an_administrator_can_override_and_the_run_says_so(rig: Rig, bundles: Any, tmp_path: Path) -> None:
    rig.models.install(bundles.plain, activate=True, project=1)
    runner, run = runner_with_run(rig, tmp_path, "run-2", 0.99)
    rig.app.extensions["shelfwatch"].trainer = runner
    runner._install(run, pack_bundle(bundles.embedded, tmp_path / "emb.tar.gz"))
    assert runner.get("run-2").state == "installed"  # the tiny bundle reports no accuracy
    assert rig.admin.post("/api/v1/training/run-9/override").status_code == 404
    resp = rig.admin.post("/api/v1/training/run-2/override")
    assert resp.status_code == 200, resp.get_json()
    assert rig.models.active_version() == "cls-emb"
    assert runner.get("run-2").state == "deployed" and "override" in (runner.get("run-2").decision or "")
    assert rig.admin.post("/api/v1/training/run-2/override").status_code == 409


def _annotated(rig: Rig, seeds: range) -> list[int]:
    """Five red and five green photos, tagged with their colour."""
    ids = _upload(rig, [colour_jpeg(RED, s) for s in seeds[:5]] + [colour_jpeg(GREEN, s) for s in seeds[5:]])
    for i, image_id in enumerate(ids):
        rig.store.set_annotations(image_id, ["red" if i < 5 else "green"], [])
    return ids


@pytest.mark.slow
def test_a_cross_validated_version_on_swapped_labels_is_compared_on_images_neither_trained_on(
    rig: Rig, bundles: Any, tmp_path: Path
) -> None:
    """A k-fold project (no test split): the new run trains on every photo with the colours swapped, so its own
    k-fold estimate is high; on the photos added since the running version (which never saw them), its out-of-fold
    predictions are wrong where the running version is right: installed, not activated, both numbers kept."""
    import dataclasses
    import json

    from tests.trainer.helpers import classification_spec
    from trainer.pipeline import run_training

    for name in ("red", "green"):
        rig.admin.post("/api/v1/labels", json={"name": name})
    before = _annotated(rig, range(60, 70))  # what the running version could have trained on
    rig.models.install(bundles.plain, activate=True, project=1)
    time.sleep(1.1)  # the store and the install time count seconds
    since = _annotated(rig, range(70, 80))  # added since: the running version never saw them
    dataset = rig.store.export_dataset(project=1)
    swap = {"red": "green", "green": "red"}
    dataset.samples = [dataclasses.replace(s, tags=[swap[t] for t in s.tags]) for s in dataset.samples]
    spec = classification_spec(
        tmp_path / "unused", tmp_path / "swapped", evaluation="kfold", int8=False, min_per_label=5,
        signing_key=bundles.keys.parent / "signing.key",
    )  # fmt: skip
    result = run_training(spec, dataset=dataset)
    report = json.loads((result.bundle_dir / "report.json").read_text())
    rows = report["evaluation"]["out_of_fold"]
    assert {r["sha256"] for r in rows} == {rig.store.get_image(i).sha256 for i in before + since}
    assert result.metrics["accuracy"] >= 0.85  # its own k-fold, on the swapped labels, says it is good

    runner, run = runner_with_run(rig, tmp_path, "run-cv", 0.85)
    runner._install(run, pack_bundle(result.bundle_dir, tmp_path / "swapped.tar.gz"))
    assert rig.models.active_version() == "cls-plain"
    run = runner.get("run-cv")
    assert run.state == "installed" and not run.activated
    comparison = run.comparison
    assert comparison is not None
    assert comparison["images"] == comparison["fold_images"] == 10 and comparison["test_images"] == 0
    assert comparison["running"] == 1.0 and comparison["new"] is not None and comparison["new"] <= 0.2
    decision = run.decision or ""
    assert f"{comparison['new']:.3f}" in decision and "1.000" in decision and "out-of-fold" in decision, decision


def test_fold_images_are_those_added_since_the_running_version(rig: Rig, bundles: Any) -> None:
    """The device side of a k-fold comparison: only images added after the running version's install that the folds
    tested count; out-of-fold answers are scored against the store's tags."""
    from edge.assist.compare import fold_images, score_rows

    for name in ("red", "green"):
        rig.admin.post("/api/v1/labels", json={"name": name})
    old = _annotated(rig, range(80, 90))
    since = rig.store.get_image(old[-1]).created  # as if the running version was installed then
    time.sleep(1.1)
    new = _annotated(rig, range(90, 100))
    sha = {i: rig.store.get_image(i).sha256 for i in old + new}
    right = [{"sha256": sha[i], "label": "red" if n < 5 else "green"} for n, i in enumerate(new)]
    rows = right[:8] + [{"sha256": sha[i], "label": "red"} for i in old]  # two new photos untested by the folds
    records, inbox = fold_images(rig.store, 1, rows, since)
    assert [r.id for r in records] == new[:8]
    assert inbox == 0
    assert score_rows("classification", rows, records) == 1.0
    wrong = [{**r, "label": "green" if r["label"] == "red" else "red"} for r in right]
    assert score_rows("classification", wrong, records) == 0.0
    # detection rows: [label, score, x1, y1, x2, y2] per box, scored by mAP@0.5 against the stored boxes
    from edge.datasets.model import Box

    rig.store.set_annotations(new[0], [], [Box("red", 0.1, 0.1, 0.5, 0.5)])
    record = rig.store.get_image(new[0])
    hit = [{"sha256": record.sha256, "boxes": [["red", 0.9, 0.11, 0.1, 0.5, 0.52]]}]
    miss = [{"sha256": record.sha256, "boxes": [["red", 0.9, 0.6, 0.6, 0.9, 0.9]]}]
    assert score_rows("detection", hit, [record]) == 1.0 and score_rows("detection", miss, [record]) == 0.0
