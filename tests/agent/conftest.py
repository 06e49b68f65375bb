"""Agent test fixtures: a folder camera whose picture the test controls, a tiny detection bundle, configs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.agent import Agent, AgentOptions
from edge.config.model import EdgeConfig
from tests.helpers.tiny_bundle import TinyBundle, make_detection_bundle
from tests.helpers.toggling import PeriodicToggler

# The tiny detector's fixed boxes cover the left and right halves; these zones match them.
LEFT = [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]
RIGHT = [(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]


def shelf_image(left_empty: bool, right_empty: bool, width: int = 64, height: int = 48) -> np.ndarray:
    """Bright = stocked, black = empty, per half (the tiny detector scores darkness as label 'empty')."""
    image = np.full((height, width, 3), 230, dtype=np.uint8)
    if left_empty:
        image[:, : width // 2] = 0
    if right_empty:
        image[:, width // 2 :] = 0
    return image


@dataclass
class ShelfCamera:
    """A one-image folder the agent reads as a camera; `show()` atomically replaces the picture."""

    folder: Path

    def show(self, left_empty: bool, right_empty: bool = False) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder.parent / "next.png"
        cv2.imwrite(str(tmp), shelf_image(left_empty, right_empty))
        os.replace(tmp, self.folder / "shelf.png")


class Toggler(PeriodicToggler):
    """Flips the left half of the shelf between empty and stocked every `period` seconds (makes events)."""

    def __init__(self, camera: ShelfCamera, period: float = 0.8) -> None:
        super().__init__(period)
        self.camera = camera

    def step(self, n: int) -> None:
        self.camera.show(left_empty=n % 2 == 0)


@pytest.fixture
def shelf_camera(tmp_path: Path) -> ShelfCamera:
    cam = ShelfCamera(tmp_path / "camera")
    cam.show(left_empty=False)
    return cam


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def det_bundle(tmp_path_factory: pytest.TempPathFactory, keys_dir: Path) -> TinyBundle:
    out = tmp_path_factory.mktemp("bundles")
    return make_detection_bundle(out, version="det-1", key_dir=keys_dir, openvino=False)


def config_dict(
    data_dir: Path,
    camera_folder: Path,
    bundle: TinyBundle | None,
    mqtt_port: int | None,
    *,
    fps: float = 10.0,
    min_frames: int = 2,
    **extra: Any,
) -> dict[str, Any]:
    """The edge.yaml content for one folder camera with two zones (left and right halves)."""
    raw: dict[str, Any] = {
        "device_id": "dev1",
        "data_dir": str(data_dir),
        "cameras": [
            {
                "id": "cam1",
                "source": str(camera_folder),
                "fps": fps,
                "reconnect_max_seconds": 1.0,
                "zones": [{"id": "left", "name": "Left shelf", "polygon": LEFT}, {"id": "right", "polygon": RIGHT}],
            }
        ],
        "model": {
            "bundle": str(bundle.bundle_dir) if bundle else None,
            "engine": "onnxruntime",
            "threads": 1,
            "trusted_keys": [str(bundle.public_key)] if bundle else [],
        },
        "events": {"on_threshold": 0.6, "off_threshold": 0.4, "min_frames": min_frames, "snapshot_retention": 50},
        "mqtt": {"enabled": mqtt_port is not None, "host": "127.0.0.1", "port": mqtt_port or 1883, "keepalive": 5},
    }
    raw.update(extra)
    return raw


def edge_config(*args: Any, **kwargs: Any) -> EdgeConfig:
    """config_dict() validated through the real config model."""
    return EdgeConfig.model_validate(config_dict(*args, **kwargs))


def device_status(agent: Agent) -> dict[str, Any]:
    """What `/api/v1/status` shows for this agent (the shape lives with the route that serves it)."""
    from edge.web.status import device_status as status_of

    return status_of(agent.config, agent.web_services())


@contextmanager
def running_agent(cfg: EdgeConfig) -> Iterator[Agent]:
    """The agent (no web server, MQTT stats every 0.5 s) started for the with block and stopped after it."""
    agent = Agent(cfg, AgentOptions(web=False, stats_interval=0.5)).start()
    try:
        yield agent
    finally:
        agent.stop()
