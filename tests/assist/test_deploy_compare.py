"""Deploy only when better: a new version is scored beside the running one on the same images (the project's test
split plus reviewed inbox frames), both on real onnxruntime, and activated only when not worse."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

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

    runner = TrainingRunner(lambda: None, rig.store, rig.models, tmp_path / "runs-data")  # type: ignore[arg-type,return-value]
    run = TrainingRun(
        id="run-1", task="classification", backbone=None, epochs=None, deploy_threshold=0.85, metric="accuracy",
        source="upload", project=1,
    )  # fmt: skip
    runner.history.add(run)
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
    runner = TrainingRunner(lambda: None, rig.store, rig.models, tmp_path / "runs-data")  # type: ignore[arg-type,return-value]
    rig.app.extensions["shelfwatch"].trainer = runner
    run = TrainingRun(
        id="run-2", task="classification", backbone=None, epochs=None, deploy_threshold=0.99, metric="accuracy",
        source="upload", project=1,
    )  # fmt: skip
    runner.history.add(run)
    runner._install(run, pack_bundle(bundles.embedded, tmp_path / "emb.tar.gz"))
    assert runner.get("run-2").state == "installed"  # the tiny bundle reports no accuracy
    assert rig.admin.post("/api/v1/training/run-9/override").status_code == 404
    resp = rig.admin.post("/api/v1/training/run-2/override")
    assert resp.status_code == 200, resp.get_json()
    assert rig.models.active_version() == "cls-emb"
    assert runner.get("run-2").state == "deployed" and "override" in (runner.get("run-2").decision or "")
    assert rig.admin.post("/api/v1/training/run-2/override").status_code == 409
