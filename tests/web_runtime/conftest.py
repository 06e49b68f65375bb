"""Fixtures of the runtime web tests: a real agent (store, model repository, event log, metrics, a folder camera),
the real web app over it, an API token, and tiny signed bundles (onnx.helper graphs, real onnxruntime/OpenVINO)."""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from edge.agent import Agent, AgentOptions
from edge.bundle import pack_bundle
from edge.cameras.sources import open_source
from edge.cameras.synthetic import render_shelf
from edge.config import CameraConfig, EdgeConfig
from edge.config.model import ModelConfig, MqttConfig, TrainerClientConfig
from edge.training.client import TrainerClient
from edge.web import Services
from edge.web import create_app as create_web_app
from edge.web.server import WebServer
from tests.helpers.store import small_dataset_rules
from tests.helpers.tiny_bundle import make_classification_bundle, make_detection_bundle
from trainer.config import TrainerConfig
from trainer.service.app import SCHEDULER_KEY, create_app

CAMERA_ID = "aisle-1"
ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery"


@dataclass
class Bundles:
    """Tiny signed bundles (directories and .tar.gz) sharing one trusted key, plus one signed by a stranger."""

    public_key: Path
    cls1: Path
    cls2: Path
    det1: Path
    cls1_tar: Path
    cls2_tar: Path
    det1_tar: Path
    stranger_tar: Path


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    """Built once per session (ONNX + OpenVINO IR each)."""
    root = tmp_path_factory.mktemp("bundles")
    keys = root / "keys"
    cls1 = make_classification_bundle(root, version="cls-1", key_dir=keys, openvino=False)
    cls2 = make_classification_bundle(root, version="cls-2", key_dir=keys, openvino=False)
    det1 = make_detection_bundle(root, version="det-1", key_dir=keys, openvino=False)
    stranger = make_classification_bundle(
        root / "other", version="cls-evil", key_dir=root / "other-keys", openvino=False
    )
    tars = {}
    for name, built in (("cls1", cls1), ("cls2", cls2), ("det1", det1), ("stranger", stranger)):
        tars[name] = pack_bundle(built.bundle_dir, root / f"{name}.tar.gz")
    return Bundles(
        cls1.public_key,
        cls1.bundle_dir,
        cls2.bundle_dir,
        det1.bundle_dir,
        tars["cls1"],
        tars["cls2"],
        tars["det1"],
        tars["stranger"],
    )


@pytest.fixture(scope="session")
def shelf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder camera's images."""
    folder = tmp_path_factory.mktemp("camera") / "shelf"
    folder.mkdir(parents=True)
    for i in range(4):
        image = render_shelf(320, 240, [0.2 + 0.2 * i, 0.9, 0.5, 0.1], seed=7 + i)
        cv2.imwrite(str(folder / f"shelf-{i}.jpg"), image)
    return folder


def make_config(data_dir: Path, trusted_key: str | Path, shelf_folder: Path, **trainer: Any) -> EdgeConfig:
    """A device config through the real model: one slow folder camera, MQTT off, the test key trusted."""
    return EdgeConfig(
        data_dir=data_dir,
        cameras=[CameraConfig(id=CAMERA_ID, name="Aisle 1", source=str(shelf_folder), fps=2)],
        mqtt=MqttConfig(enabled=False),
        model=ModelConfig(trusted_keys=[str(trusted_key)], engine="onnxruntime", threads=1),
        trainer=TrainerClientConfig(**trainer),
        dataset=small_dataset_rules(max_image_mb=2),
    )


@dataclass
class Device:
    """The running agent, its web app, and a client that sends a bearer token."""

    agent: Agent
    app: Flask
    config: EdgeConfig
    services: Services
    token: str

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of the admin's API token."""
        return {"Authorization": f"Bearer {self.token}"}

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.agent.stop()


def start_device(config: EdgeConfig) -> Device:
    """Start a real agent without its own web server and build the studio app over its parts."""
    agent = Agent(
        config,
        AgentOptions(web=False, stats_interval=3600, source_factory=functools.partial(open_source, rate=2)),
    )
    agent.start()
    services = agent.web_services()
    if config.trainer.url:
        # As the agent does when it serves the web itself; polling the trainer faster keeps the tests short.
        from edge.web.training import build_runner

        services.trainer = build_runner(config, agent.store, agent.models)
        services.trainer.poll_seconds = 0.3
    agent.services = services  # as when the agent serves the web itself: its stop() stops the training runner
    app = create_web_app(config, services)
    app.config["TESTING"] = True
    assert services.users is not None
    admin = services.users.create_first_admin(ADMIN, ADMIN_PASSWORD)
    token, _ = services.users.issue_token(admin.id, "tests")
    return Device(agent, app, config, services, token)


@pytest.fixture
def device(tmp_path: Path, bundles: Bundles, shelf_folder: Path) -> Iterator[Device]:
    """A running device with no model installed."""
    dev = start_device(make_config(tmp_path / "data", bundles.public_key, shelf_folder))
    try:
        yield dev
    finally:
        dev.agent.stop()


@pytest.fixture
def client(device: Device) -> FlaskClient:
    """A test client of the device's app."""
    return device.app.test_client()


def jpeg(image: np.ndarray) -> bytes:
    """The image as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def upload_file(data: bytes, name: str) -> dict[str, Any]:
    """A multipart body with `file`."""
    return {"file": (io.BytesIO(data), name)}


# ------------------------------------------------------------------------------------------------ trainer service

TOKEN = "trainer-token-0123456789"
TINY_RUNNER = "tests.trainer.service.runners:tiny_runner"
COLOURS = {"red": (40, 40, 210), "green": (40, 190, 40), "blue": (210, 70, 40)}
PER_LABEL = 12


@dataclass
class Trainer:
    """A running trainer service."""

    app: Flask
    server: WebServer

    @property
    def url(self) -> str:
        return self.server.url

    def public_key(self) -> str:
        """The trainer's signing key (base64 raw), for the device's trusted keys."""
        client = TrainerClient(self.url, TOKEN)
        key = client._json("GET", "/v1/signing-key")["public_key"]
        assert base64.b64decode(key)
        return str(key)

    def stop(self) -> None:
        """Stop the HTTP server and the job scheduler (terminating a running job)."""
        self.server.stop()
        self.app.extensions[SCHEDULER_KEY].stop(terminate=True)


def start_trainer(data_dir: Path, runner: str | None) -> Trainer:
    config = TrainerConfig.model_validate(
        {
            "data_dir": str(data_dir),
            # The device pulled from listens on a loopback port (trainer.yaml server.pull_sources).
            "server": {
                "tokens": [TOKEN],
                "max_archive_mb": 20,
                "max_image_mb": 2,
                "pull_sources": ["http://127.0.0.1:*"],
            },
            "training": {"weights": None, "threads": 2},
            "workers": 1,
        }
    )
    app = create_app(config, runner=runner)
    return Trainer(app, WebServer(app).start())


@contextmanager
def running_trainer(data_dir: Path, runner: str | None) -> Iterator[Trainer]:
    """start_trainer() for the length of a with block (a fixture's body)."""
    trainer = start_trainer(data_dir, runner)
    try:
        yield trainer
    finally:
        trainer.stop()


@pytest.fixture
def tiny_trainer(tmp_path: Path) -> Iterator[Trainer]:
    """The trainer service with the tiny runner."""
    with running_trainer(tmp_path / "trainer", TINY_RUNNER) as trainer:
        yield trainer


def fill_store(store: Any, per_label: int = PER_LABEL) -> None:
    """Coloured blocks on dark noise, tagged with their colour."""
    rng = np.random.default_rng(3)
    for name in COLOURS:
        store.create_label(name)
    for name, bgr in COLOURS.items():
        batch = []
        for i in range(per_label):
            image = rng.integers(0, 90, (48, 56, 3)).astype(np.uint8)
            x, y = int(rng.integers(0, 28)), int(rng.integers(0, 24))
            cv2.rectangle(image, (x, y), (x + 28, y + 24), bgr, -1)
            batch.append((f"{name}-{i}.png", cv2.imencode(".png", image)[1].tobytes()))
        for record in store.add_images(batch):
            store.set_annotations(record.id, [name], [])
