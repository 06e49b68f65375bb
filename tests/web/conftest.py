"""Fixtures of the web studio tests: a real store, a real folder camera of generated shelf images, the real app."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import pytest
from flask import Flask
from flask.testing import FlaskClient

from edge.cameras.capture import CameraHub
from edge.cameras.sources import open_source
from edge.cameras.synthetic import render_shelf
from edge.config import CameraConfig, EdgeConfig, WebConfig
from edge.store import DatasetStore
from edge.web import Services, create_app
from tests.helpers.store import small_dataset_rules

ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery"
CAMERA_ID = "aisle-1"


def make_shelf_images(folder: Path, count: int, *, width: int = 480, height: int = 360) -> list[Path]:
    """`count` distinct shelf photos (different products and stock levels per image) as JPEG files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        stock = [(0.15 + 0.37 * i) % 1.0, (0.9 - 0.21 * i) % 1.0, (0.5 + 0.13 * i) % 1.0, 1.0 - (0.07 * i) % 0.8]
        image = render_shelf(width, height, stock, seed=100 + i)
        path = folder / f"shelf-{i:03d}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def shelf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder camera's images, generated once per session."""
    folder = tmp_path_factory.mktemp("camera") / "shelf"
    make_shelf_images(folder, 24)
    return folder


def make_config(data_dir: Path, shelf_folder: Path, **web: Any) -> EdgeConfig:
    """An EdgeConfig built through the real model: one folder camera, small dataset minimums."""
    return EdgeConfig(
        data_dir=data_dir,
        cameras=[CameraConfig(id=CAMERA_ID, name="Aisle 1", source=str(shelf_folder), fps=10)],
        web=WebConfig(**{"login_attempts_per_minute": 3, "max_upload_mb": 2, **web}),
        dataset=small_dataset_rules(max_image_mb=1),
    )


@dataclass
class Studio:
    """The app with its parts, for tests that look behind the API."""

    app: Flask
    config: EdgeConfig
    services: Services
    store: DatasetStore
    hub: CameraHub


@contextlib.contextmanager
def open_studio(data_dir: Path, shelf_folder: Path) -> Iterator[Studio]:
    """A real app: store in data_dir, the folder camera running (slowly: most tests only need it to exist)."""
    config = make_config(data_dir, shelf_folder)
    store = DatasetStore(config.data_dir, config.dataset)
    hub = CameraHub(config.cameras, source_factory=functools.partial(open_source, rate=3))
    hub.start_all()
    services = Services(store=store, cameras=hub)
    app = create_app(config, services)
    app.config["TESTING"] = True
    try:
        yield Studio(app, config, services, store, hub)
    finally:
        hub.stop_all()
        store.close()


@pytest.fixture
def studio(tmp_path: Path, shelf_folder: Path) -> Iterator[Studio]:
    """A fresh studio per test."""
    with open_studio(tmp_path / "data", shelf_folder) as fresh:
        yield fresh


@pytest.fixture
def client(studio: Studio) -> FlaskClient:
    """An anonymous client."""
    return studio.app.test_client()


def csrf_of(html: str) -> str:
    """The CSRF token a page carries."""
    match = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "the page has no CSRF token"
    return match.group(1)


class SignedIn:
    """A client signed in through the first-run form, sending the CSRF header on unsafe calls."""

    def __init__(self, client: FlaskClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, **kw)

    def _unsafe(self, method: str, url: str, **kw: Any) -> Any:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return self.client.open(url, method=method, headers=headers, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self._unsafe("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> Any:
        return self._unsafe("PUT", url, **kw)

    def patch(self, url: str, **kw: Any) -> Any:
        return self._unsafe("PATCH", url, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self._unsafe("DELETE", url, **kw)


def create_admin(client: FlaskClient) -> SignedIn:
    """Run the first-run form and return the signed-in client."""
    page = client.get("/setup")
    assert page.status_code == 200
    resp = client.post(
        "/setup",
        data={
            "csrf_token": csrf_of(page.get_data(as_text=True)),
            "username": ADMIN,
            "password": ADMIN_PASSWORD,
            "password_repeat": ADMIN_PASSWORD,
        },
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)
    html = client.get("/library").get_data(as_text=True)
    return SignedIn(client, csrf_of(html))


@pytest.fixture
def admin(client: FlaskClient) -> SignedIn:
    """The first-run admin, signed in."""
    return create_admin(client)


def jpeg_bytes(seed: int = 0, width: int = 320, height: int = 240) -> bytes:
    """A small, valid shelf JPEG."""
    image = render_shelf(width, height, [0.3, 0.8, 0.5], seed=seed)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()
