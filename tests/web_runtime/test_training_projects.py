"""Training and model routes per project, against the real trainer service (tiny runner: a real signed bundle).

A run trains the named project's dataset (upload and pull), its model version is tagged with the project, named
after it (`<project> v1 · <date>`, manifest `name` = the project's name), listed only under `?project=`, and
activated or rolled back only there; the deploy threshold is the project's, by default its task's. Routes without
`project` keep working on the default project.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from flask.testing import FlaskClient

from edge.store import DatasetStore
from edge.web.server import WebServer
from tests.web_runtime.conftest import (
    COLOURS,
    PER_LABEL,
    TOKEN,
    Bundles,
    Device,
    Trainer,
    fill_store,
    make_config,
    running_trainer,
    start_device,
)
from tests.web_runtime.test_training import wait_run


def fill_project(store: DatasetStore, project: int, per_label: int = 6) -> None:
    """Coloured blocks tagged with their colour, in `project` (whose labels exist)."""
    rng = np.random.default_rng(5)
    for name, bgr in COLOURS.items():
        batch = []
        for i in range(per_label):
            image = rng.integers(0, 90, (48, 56, 3)).astype(np.uint8)
            cv2.rectangle(image, (4 + i, 4), (30 + i, 28), bgr, -1)
            batch.append((f"p-{name}-{i}.png", cv2.imencode(".png", image)[1].tobytes()))
        for record in store.add_images(batch, project=project):
            store.set_annotations(record.id, [name], [], project=project)


def _get(web: FlaskClient, dev: Device, path: str) -> Any:
    resp = web.get(path, headers=dev.auth)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


@pytest.fixture
def trainer(tmp_path: Path) -> Iterator[Trainer]:
    """The trainer service with a runner whose bundles report accuracy 0.5 (so threshold 0 deploys them)."""
    with running_trainer(tmp_path / "trainer", "tests.web_runtime.runners:half_accuracy_runner") as trainer:
        yield trainer


def test_a_project_trains_its_own_dataset_and_owns_its_model_versions(
    tmp_path: Path, trainer: Trainer, shelf_folder: Path
) -> None:
    config = make_config(tmp_path / "device", trainer.public_key(), shelf_folder, url=trainer.url, token=TOKEN)
    dev = start_device(config)
    server = None
    try:
        store = dev.agent.store
        fill_store(store)  # the default project: ready too, with other images
        web = dev.app.test_client()
        created = web.post(
            "/api/v1/projects",
            json={"name": "Shelf rows", "task": "classification", "labels": [{"name": n} for n in COLOURS]},
            headers=dev.auth,
        )
        assert created.status_code == 201, created.get_json()
        pid = created.get_json()["id"]
        fill_project(store, pid)
        detector = web.post("/api/v1/projects", json={"name": "Boxes", "task": "detection"}, headers=dev.auth)
        det = detector.get_json()["id"]

        # Deploy thresholds: per project, by default its task's (0.85 classification, 0.50 detection mAP).
        assert _get(web, dev, f"/api/v1/training/settings?project={pid}")["deploy_threshold"] == 0.85
        assert _get(web, dev, f"/api/v1/training/settings?project={det}")["deploy_threshold"] == 0.5
        assert _get(web, dev, "/api/v1/training?project=Boxes")["deploy_threshold"] == 0.5
        put = web.put("/api/v1/training/settings?project=Boxes", json={"deploy_threshold": 0.3}, headers=dev.auth)
        assert put.status_code == 200 and put.get_json() == {"deploy_threshold": 0.3, "default": 0.5}
        assert _get(web, dev, f"/api/v1/training/settings?project={det}")["deploy_threshold"] == 0.3
        assert _get(web, dev, f"/api/v1/training/settings?project={pid}")["deploy_threshold"] == 0.85

        # Upload: the project in the JSON body.
        resp = web.post(
            "/api/v1/training",
            json={"project": pid, "task": "auto", "epochs": 2, "deploy_threshold": 0.0},
            headers=dev.auth,
        )
        assert resp.status_code == 202, resp.get_json()
        run = wait_run(web, dev, resp.get_json()["id"], timeout=60)
        assert run["state"] == "deployed", run
        assert run["project"] == pid and run["project_name"] == "Shelf rows" and run["task"] == "classification"
        assert run["display_name"].startswith("Shelf rows v1 · 20")
        version = run["version"]

        # What the trainer trained on: this project's 18 images, not the default project's.
        from trainer.service.store import JobStore

        dataset = JobStore(tmp_path / "trainer").get_dataset(run["dataset_id"])
        assert dataset.images == 3 * 6

        # The runs and models of the project, and only there.
        assert [r["id"] for r in _get(web, dev, f"/api/v1/training?project={pid}")["items"]] == [run["id"]]
        assert _get(web, dev, "/api/v1/training")["items"] == []
        listing = _get(web, dev, f"/api/v1/models?project={pid}")
        (row,) = listing["items"]
        assert row["version"] == version and row["project"] == pid and row["number"] == 1
        assert row["name"] == "Shelf rows"  # the signed manifest's name is the project's
        assert row["display_name"] == run["display_name"] and listing["active_name"] == run["display_name"]
        assert _get(web, dev, "/api/v1/models")["items"] == []
        assert _get(web, dev, "/api/v1/models")["active"] == version  # the device runs one model

        # Pull: the trainer pulls the project's pages (`?project=` on its URLs), the version is v2.
        server = WebServer(dev.app).start()
        resp = web.post(
            f"/api/v1/training?project={pid}",
            json={"task": "classification", "source": "pull", "device_url": server.url, "deploy_threshold": 0.0},
            headers=dev.auth,
        )
        assert resp.status_code == 202, resp.get_json()
        pulled = wait_run(web, dev, resp.get_json()["id"], timeout=60)
        assert pulled["state"] == "deployed", pulled
        assert JobStore(tmp_path / "trainer").get_dataset(pulled["dataset_id"]).images == 3 * 6
        assert pulled["display_name"].startswith("Shelf rows v2 · ")
        numbers = [m["number"] for m in _get(web, dev, f"/api/v1/models?project={pid}")["items"]]
        assert numbers == [2, 1]

        # The full report as a page: a way back, the version's name, no path of the trainer's machine.
        page = web.get(f"/models/{version}/report", headers=dev.auth)
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "Shelf rows v1" in html and 'href="/models"' in html and str(tmp_path) not in html
        raw = _get(web, dev, f"/api/v1/models/{version}/report")
        assert str(tmp_path) not in json.dumps(raw)
        # The Train page offers the backbones the trainer can train with its weights, its default first.
        offered = _get(web, dev, "/api/v1/training/backbones")
        assert offered["known"] is True and offered["usable"][0] == offered["default"]

        # Activate and rollback are the project's: another project's version is a 409 and changes nothing.
        wrong = web.post(f"/api/v1/models/{version}/activate?project=Boxes", headers=dev.auth)
        assert wrong.status_code == 409 and "Shelf rows" in wrong.get_json()["error"]
        assert web.post("/api/v1/models/rollback", headers=dev.auth).status_code == 409  # default project's view
        assert _get(web, dev, "/api/v1/models")["active"] == pulled["version"]
        back = web.post("/api/v1/models/rollback", json={"project": pid}, headers=dev.auth)
        assert back.status_code == 200 and back.get_json()["active"] == version

        # Unknown project: 404 on every route.
        for method, path in [
            ("get", "/api/v1/training?project=nope"),
            ("get", "/api/v1/models?project=nope"),
            ("post", "/api/v1/models/rollback?project=999"),
        ]:
            assert getattr(web, method)(path, headers=dev.auth).status_code == 404, path
        assert web.post("/api/v1/training", json={"project": "nope"}, headers=dev.auth).status_code == 404

        # Without `project`, training still trains the default project (the images of fill_store).
        resp = web.post("/api/v1/training", json={"task": "classification", "epochs": 2}, headers=dev.auth)
        default_run = wait_run(web, dev, resp.get_json()["id"], timeout=60)
        assert default_run["project"] == 1
        assert JobStore(tmp_path / "trainer").get_dataset(default_run["dataset_id"]).images == 3 * PER_LABEL
        assert [m["version"] for m in _get(web, dev, "/api/v1/models")["items"]] == [default_run["version"]]
    finally:
        if server is not None:
            server.stop()
        dev.agent.stop()


def test_versions_installed_before_projects_belong_to_the_default_project(tmp_path: Path, bundles: Bundles) -> None:
    from edge.model_repository import ModelRepository

    repo = ModelRepository(tmp_path / "models", [str(bundles.public_key)])
    repo.install(bundles.cls1)  # no project: the CLI, the fleet, or a device from before projects
    (row,) = repo.list_versions(project=1)
    assert row["project"] == 1 and row["number"] == 1
    assert repo.list_versions(project=2) == []
    book = json.loads((tmp_path / "models" / "versions.json").read_text())
    assert book["versions"]["cls-1"] == {"project": 1, "number": 1}
    # The tag lives beside the signed files: the installed bundle still verifies after a restart.
    assert not (tmp_path / "models" / "cls-1" / "versions.json").exists()
    again = ModelRepository(tmp_path / "models", [str(bundles.public_key)])
    assert [r["status"] for r in again.list_versions()] == ["ok"]
    repo.install(bundles.cls2, project=2)
    assert [(r["version"], r["project"], r["number"]) for r in repo.list_versions()] == [
        ("cls-2", 2, 1),
        ("cls-1", 1, 1),
    ]


def test_reports_lose_the_trainers_absolute_paths() -> None:
    from edge.web.model_versions import strip_paths

    report = {
        "base": {"weights": "/srv/trainer/weights/efficientnet-lite0-57934424.pth", "backbone": "efficientnet_lite0"},
        "warnings": ["tiny test set"],
        "files": ["C:\\trainer\\data\\x.onnx", "model.onnx"],
    }
    assert strip_paths(report) == {
        "base": {"weights": "efficientnet-lite0-57934424.pth", "backbone": "efficientnet_lite0"},
        "warnings": ["tiny test set"],
        "files": ["x.onnx", "model.onnx"],
    }
