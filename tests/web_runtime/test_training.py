"""The training round trip against the REAL trainer service (its Flask app on a loopback port, worker processes).

One run uses the real training pipeline (random-init squeezenet, tiny images, two epochs) with the trainer pulling
the dataset page by page from the device's HTTP API, and ends with the bundle installed, active, and answering
predictions. The others use the trainer tests' `tiny_runner` (a real runner writing a real signed bundle in a
fraction of a second) for the upload path, the deploy decision, cancel and errors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from flask.testing import FlaskClient

from edge.errors import TrainerError
from edge.training.client import TrainerClient, TrainerHttpError
from edge.web.server import WebServer
from tests.web_runtime.conftest import (
    COLOURS,
    TOKEN,
    Bundles,
    Device,
    Trainer,
    fill_store,
    jpeg,
    make_config,
    start_device,
    start_trainer,
)


@pytest.fixture
def trained_device(tmp_path: Path, tiny_trainer: Trainer, shelf_folder: Path) -> Iterator[Device]:
    """A device trusting the tiny trainer's key, with a ready classification dataset."""
    config = make_config(
        tmp_path / "device", tiny_trainer.public_key(), shelf_folder, url=tiny_trainer.url, token=TOKEN
    )
    dev = start_device(config)
    fill_store(dev.agent.store)
    try:
        yield dev
    finally:
        dev.agent.stop()


def wait_run(client: FlaskClient, device: Device, run_id: str, timeout: float = 240.0) -> dict[str, Any]:
    """Poll the run until it ended; the run with its report."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/training/{run_id}", headers=device.auth).get_json()
        if not run["in_progress"]:
            return dict(run)
        time.sleep(0.2)
    raise AssertionError(f"training run {run_id} did not end within {timeout} s")


# ------------------------------------------------------------------------------------------------ real pipeline


@pytest.mark.slow
def test_round_trip_with_the_real_pipeline_pull(tmp_path: Path, shelf_folder: Path) -> None:
    trainer = start_trainer(tmp_path / "trainer", None)
    device: Device | None = None
    server: WebServer | None = None
    try:
        config = make_config(tmp_path / "device", trainer.public_key(), shelf_folder, url=trainer.url, token=TOKEN)
        device = start_device(config)
        fill_store(device.agent.store)
        server = WebServer(device.app).start()  # the trainer pulls the pages over real HTTP
        client = device.app.test_client()
        tokens_before = len(device.services.users.list_tokens(1))  # type: ignore[union-attr]

        resp = client.post(
            "/api/v1/training",
            json={
                "task": "classification",
                "source": "pull",
                "device_url": server.url,
                "epochs": 2,
                "input_size": 64,
                "deploy_threshold": 0.0,
            },
            headers=device.auth,
        )
        assert resp.status_code == 202, resp.get_json()
        run_id = resp.get_json()["id"]
        run = wait_run(client, device, run_id)
        assert run["state"] == "deployed", run
        assert run["activated"] is True and run["headline"] is not None and run["metric"] == "accuracy"
        version = run["version"]
        report = run["report"]
        assert report["task"] == "classification"
        matrix = report["metrics"]["confusion_matrix"]
        assert len(matrix) == 3 and sum(map(sum, matrix)) == report["metrics"]["samples"] > 0
        assert set(report["metrics"]["per_label"]) == set(COLOURS)
        assert {"confusion_matrix.png", "pr_curve.png", "report.html"} <= set(run["files"])

        models = client.get("/api/v1/models", headers=device.auth).get_json()
        assert models["active"] == version
        png = client.get(f"/api/v1/models/{version}/files/confusion_matrix.png", headers=device.auth)
        assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"

        image = np.zeros((48, 56, 3), dtype=np.uint8)
        image[:] = COLOURS["green"]
        answer = client.post("/api/v1/predict", data=jpeg(image), headers=device.auth).get_json()
        assert answer["model"]["version"] == version
        assert answer["label"] in COLOURS and set(answer["label_scores"]) == set(COLOURS)
        assert device.agent.slot.current is not None and device.agent.slot.current.version == version

        # The pull token was revoked once the trainer had the dataset.
        tokens = device.services.users.list_tokens(1)  # type: ignore[union-attr]
        assert len(tokens) == tokens_before + 1
        pull_token = [t for t in tokens if "trainer dataset pull" in t.name]
        assert pull_token and pull_token[0].revoked is not None
    finally:
        if server is not None:
            server.stop()
        if device is not None:
            device.agent.stop()
        trainer.stop()


# ------------------------------------------------------------------------------------------------ tiny runner


def test_upload_round_trip_installs_but_keeps_inactive_without_the_metric(
    trained_device: Device, tiny_trainer: Trainer
) -> None:
    client = trained_device.app.test_client()
    overview = client.get("/api/v1/training", headers=trained_device.auth).get_json()
    assert overview["current"] is None and overview["trainer_configured"] is True
    assert overview["deploy_threshold"] == 0.85

    resp = client.post(
        "/api/v1/training",
        json={"task": "classification", "epochs": 3, "deploy_threshold": 0.9},
        headers=trained_device.auth,
    )
    assert resp.status_code == 202
    run = wait_run(client, trained_device, resp.get_json()["id"], timeout=60)
    assert run["state"] == "installed", run
    assert run["activated"] is False and "not activated" in run["decision"] and "accuracy" in run["decision"]
    assert run["job_id"] and run["dataset_id"]
    models = client.get("/api/v1/models", headers=trained_device.auth).get_json()
    assert [m["version"] for m in models["items"]] == [run["version"]] and models["active"] is None
    # The tiny runner's report.json came through the trainer's report route.
    assert run["report"] is not None and run["has_report"] is True
    assert run["files"] == ["report.html", "report.json"]  # the tiny bundle has no evaluation pictures
    assert run["warnings"] == ["tiny runner: not a trained model"]
    # The threshold the user chose is remembered.
    assert client.get("/api/v1/training", headers=trained_device.auth).get_json()["deploy_threshold"] == 0.9
    history = client.get("/api/v1/training", headers=trained_device.auth).get_json()["items"]
    assert [h["id"] for h in history] == [run["id"]]


def test_cancel_stops_the_trainer_job_and_installs_nothing(trained_device: Device, tiny_trainer: Trainer) -> None:
    client = trained_device.app.test_client()
    resp = client.post("/api/v1/training", json={"task": "classification", "epochs": 400}, headers=trained_device.auth)
    assert resp.status_code == 202
    run_id = resp.get_json()["id"]
    again = client.post("/api/v1/training", json={"task": "classification"}, headers=trained_device.auth)
    assert again.status_code == 409 and "already in progress" in again.get_json()["error"]
    deadline = time.monotonic() + 30
    while True:  # the trainer's live progress comes through: stage, epoch of epochs
        progress = client.get(f"/api/v1/training/{run_id}", headers=trained_device.auth).get_json()["progress"]
        if progress.get("stage") == "training":
            break
        assert time.monotonic() < deadline, "the job never reported training progress"
        time.sleep(0.1)
    assert progress["epochs"] == 400 and 1 <= progress["epoch"] <= 400
    cancelled = client.post(f"/api/v1/training/{run_id}/cancel", headers=trained_device.auth)
    assert cancelled.status_code == 202
    run = wait_run(client, trained_device, run_id, timeout=60)
    assert run["state"] == "cancelled"
    assert client.get("/api/v1/models", headers=trained_device.auth).get_json()["items"] == []
    job = TrainerClient(tiny_trainer.url, TOKEN).job(run["job_id"])
    assert job["state"] == "cancelled"
    assert client.post(f"/api/v1/training/{run_id}/cancel", headers=trained_device.auth).status_code == 409


def test_stopping_the_device_stops_following_the_job_and_leaves_the_run_to_resume(
    tmp_path: Path, tiny_trainer: Trainer, shelf_folder: Path
) -> None:
    config = make_config(
        tmp_path / "device", tiny_trainer.public_key(), shelf_folder, url=tiny_trainer.url, token=TOKEN
    )
    device = start_device(config)
    stopped = False
    try:
        fill_store(device.agent.store)
        client = device.app.test_client()
        resp = client.post("/api/v1/training", json={"task": "classification", "epochs": 400}, headers=device.auth)
        assert resp.status_code == 202
        run_id = resp.get_json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/training/{run_id}", headers=device.auth).get_json()["job_id"] is None:
            assert time.monotonic() < deadline, "the run never got a trainer job"
            time.sleep(0.1)
        runner = device.services.trainer
        assert runner is not None
        thread = runner._threads[run_id]
        device.agent.stop()
        stopped = True
        # The run's thread used to poll the trainer (and later install into a stopped device) until the job ended.
        assert not thread.is_alive()
        saved = {r["id"]: r for r in json.loads((tmp_path / "device" / "training" / "runs.json").read_text())}
        assert saved[run_id]["state"] in ("queued", "training") and saved[run_id]["error"] is None
        TrainerClient(tiny_trainer.url, TOKEN).cancel(saved[run_id]["job_id"])
    finally:
        if not stopped:
            device.agent.stop()


def test_training_refuses_bad_requests(trained_device: Device, tmp_path: Path, shelf_folder: Path) -> None:
    client = trained_device.app.test_client()
    auth = trained_device.auth
    assert client.post("/api/v1/training", json={"task": "segmentation"}, headers=auth).status_code == 400
    assert client.post("/api/v1/training", json={"deploy_threshold": 2}, headers=auth).status_code == 400
    assert client.post("/api/v1/training", data="{", headers=auth).status_code == 400
    not_ready = client.post("/api/v1/training", json={"task": "detection"}, headers=auth)
    assert not_ready.status_code == 409 and "not ready" in not_ready.get_json()["error"]
    assert client.get("/api/v1/training/run-unknown", headers=auth).status_code == 404
    assert client.post("/api/v1/training/run-unknown/cancel", headers=auth).status_code == 404

    bare = start_device(make_config(tmp_path / "bare", "AAAA" * 11, shelf_folder))
    try:
        bare_client = bare.app.test_client()
        fill_store(bare.agent.store)
        resp = bare_client.post("/api/v1/training", json={"task": "classification"}, headers=bare.auth)
        assert resp.status_code == 503 and "trainer.url" in resp.get_json()["error"]
        assert bare_client.get("/api/v1/training", headers=bare.auth).get_json()["trainer_configured"] is False
    finally:
        bare.agent.stop()


def test_trainer_client_errors_carry_the_trainers_message(tiny_trainer: Trainer, tmp_path: Path) -> None:
    with pytest.raises(TrainerHttpError) as wrong_token:
        TrainerClient(tiny_trainer.url, "wrong-token").job("job-x")
    assert wrong_token.value.status == 401
    client = TrainerClient(tiny_trainer.url, TOKEN)
    with pytest.raises(TrainerHttpError) as unknown:
        client.job("job-does-not-exist")
    assert unknown.value.status == 404 and "job-does-not-exist" in str(unknown.value)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(TrainerHttpError) as refused:
        client.upload_archive(bad)
    assert refused.value.status == 400
    with pytest.raises(TrainerError, match="cannot be reached"):
        TrainerClient("http://127.0.0.1:9", TOKEN, timeout=2).job("job-x")
    with pytest.raises(TrainerError, match="http"):
        TrainerClient("ftp://trainer", TOKEN)


def test_a_device_restart_follows_the_trainer_job_again(
    tmp_path: Path, tiny_trainer: Trainer, shelf_folder: Path
) -> None:
    from edge.store import DatasetStore
    from edge.training.runs import TrainingRun

    config = make_config(
        tmp_path / "device", tiny_trainer.public_key(), shelf_folder, url=tiny_trainer.url, token=TOKEN
    )
    # What the previous process left: a job the trainer is running, and a run that died before it had a job.
    store = DatasetStore(config.data_dir, config.dataset)
    fill_store(store)
    client = TrainerClient(tiny_trainer.url, TOKEN)
    dataset = client.upload_store(store)
    store.close()
    job = client.create_job(dataset["id"], "classification", epochs=20)
    common: dict[str, Any] = {"task": "classification", "backbone": None, "epochs": 20, "deploy_threshold": 0.85}
    following = TrainingRun(
        id="run-a", **common, metric="accuracy", source="upload", state="training", created="2026-11-21T10:00:00Z",
        dataset_id=dataset["id"], job_id=job["id"],
    )  # fmt: skip
    orphan = TrainingRun(
        id="run-b", **common, metric="accuracy", source="upload", state="uploading", created="2026-11-21T09:00:00Z"
    )
    history = config.data_dir / "training" / "runs.json"
    history.parent.mkdir(parents=True)
    history.write_text(json.dumps([following.as_dict(), orphan.as_dict()]))

    device = start_device(config)
    try:
        web = device.app.test_client()
        overview = web.get("/api/v1/training", headers=device.auth).get_json()
        assert overview["current"]["id"] == "run-a"
        failed = next(r for r in overview["items"] if r["id"] == "run-b")
        assert failed["state"] == "failed" and "restarted" in failed["error"]
        run = wait_run(web, device, "run-a", timeout=60)
        assert run["state"] == "installed" and run["version"], run
        installed = web.get("/api/v1/models", headers=device.auth).get_json()["items"]
        assert [m["version"] for m in installed] == [run["version"]]
    finally:
        device.agent.stop()


def test_upload_carries_tags_boxes_and_splits_to_the_trainer(tmp_path: Path, tiny_trainer: Trainer) -> None:
    from edge.config import DatasetRulesConfig
    from edge.datasets.formats import read_dataset
    from edge.datasets.model import Box
    from edge.store import DatasetStore
    from trainer.service.store import JobStore

    store = DatasetStore(tmp_path / "device", DatasetRulesConfig())
    fill_store(store, per_label=4)
    store.create_label("empty")
    first = store.list_images(page=1, page_size=1, newest_first=False)[0][0]
    store.set_annotations(first.id, ["red"], [Box("empty", 0.1, 0.2, 0.5, 0.6)])
    store.set_split([first.id], "test")
    untagged = store.add_images([("untagged.png", cv2.imencode(".png", np.zeros((20, 20, 3), np.uint8))[1].tobytes())])
    try:
        record = TrainerClient(tiny_trainer.url, TOKEN).upload_store(store)
    finally:
        store.close()
    assert record["images"] == 12 and set(record["labels"]) >= {"red", "green", "blue", "empty"}
    held = read_dataset(JobStore(tmp_path / "trainer").get_dataset(record["id"]).path, "coco")
    assert len(held.samples) == 12  # tagged images only: the untagged one stayed home
    assert untagged[0].filename == "untagged.png"
    assert not any("untagged" in s.name for s in held.samples)
    boxed = [s for s in held.samples if s.boxes]
    assert len(boxed) == 1 and boxed[0].tags == ["red"] and boxed[0].split == "test"
    box = boxed[0].boxes[0]
    assert box.label == "empty" and abs(box.x1 - 0.1) < 1e-3 and abs(box.y2 - 0.6) < 1e-3


def test_a_bundle_the_device_does_not_trust_is_refused_and_the_running_model_stays(
    tmp_path: Path, tiny_trainer: Trainer, shelf_folder: Path, bundles: Bundles
) -> None:
    # The device trusts only the test key, not the trainer's: the trained bundle must be refused.
    config = make_config(tmp_path / "device", bundles.public_key, shelf_folder, url=tiny_trainer.url, token=TOKEN)
    device = start_device(config)
    try:
        fill_store(device.agent.store)
        device.agent.models.install(bundles.cls1, activate=True)
        web = device.app.test_client()
        resp = web.post(
            "/api/v1/training", json={"task": "classification", "deploy_threshold": 0.0}, headers=device.auth
        )
        assert resp.status_code == 202
        run = wait_run(web, device, resp.get_json()["id"], timeout=60)
        assert run["state"] == "refused" and "signature" in run["error"]
        assert "still running cls-1" in run["decision"]
        listing = web.get("/api/v1/models", headers=device.auth).get_json()
        assert [m["version"] for m in listing["items"]] == ["cls-1"] and listing["active"] == "cls-1"
        assert device.agent.slot.current is not None and device.agent.slot.current.version == "cls-1"
    finally:
        device.agent.stop()


def test_deploy_threshold_decides_activation(tmp_path: Path, shelf_folder: Path) -> None:
    trainer = start_trainer(tmp_path / "trainer", "tests.web_runtime.runners:half_accuracy_runner")
    device = None
    try:
        config = make_config(tmp_path / "device", trainer.public_key(), shelf_folder, url=trainer.url, token=TOKEN)
        device = start_device(config)
        fill_store(device.agent.store)
        web = device.app.test_client()

        strict = web.post("/api/v1/training", json={"task": "classification"}, headers=device.auth)  # 0.85
        low = wait_run(web, device, strict.get_json()["id"], timeout=60)
        assert low["state"] == "installed" and low["headline"] == 0.5 and low["activated"] is False
        assert "accuracy 0.500 is below the deploy threshold 0.85" in low["decision"]
        assert web.get("/api/v1/models", headers=device.auth).get_json()["active"] is None

        lenient = web.post(
            "/api/v1/training", json={"task": "classification", "deploy_threshold": 0.5}, headers=device.auth
        )
        high = wait_run(web, device, lenient.get_json()["id"], timeout=60)
        assert high["state"] == "deployed" and high["activated"] is True
        assert web.get("/api/v1/models", headers=device.auth).get_json()["active"] == high["version"]
        answer = web.post(
            "/api/v1/predict", data=jpeg(np.full((32, 32, 3), (0, 0, 230), np.uint8)), headers=device.auth
        )
        assert answer.get_json()["model"]["version"] == high["version"]

        def active_flags() -> dict[str, bool]:
            runs = {
                r: web.get(f"/api/v1/training/{r}", headers=device.auth).get_json() for r in (low["id"], high["id"])
            }
            assert all(run["in_progress"] is False for run in runs.values())
            return {run["version"]: run["active"] for run in runs.values()}

        # `active` follows the device's active model, not the deploy decision recorded when the run ended.
        assert active_flags() == {low["version"]: False, high["version"]: True}
        status = web.get("/api/v1/status", headers=device.auth).get_json()
        assert status["model"]["version"] == high["version"]
        assert web.post(f"/api/v1/models/{low['version']}/activate", headers=device.auth).status_code == 200
        assert active_flags() == {low["version"]: True, high["version"]: False}
        items = web.get("/api/v1/training", headers=device.auth).get_json()["items"]
        assert {r["version"]: r["active"] for r in items} == {low["version"]: True, high["version"]: False}
    finally:
        if device is not None:
            device.agent.stop()
        trainer.stop()
