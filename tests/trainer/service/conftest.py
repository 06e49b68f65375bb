"""Fixtures of the trainer service tests: a real app over a real SQLite store in tmp_path, real worker processes."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.trainer.helpers import coloured_dataset
from trainer.config import TrainerConfig
from trainer.service.app import SCHEDULER_KEY, create_app

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TINY_RUNNER = "tests.trainer.service.runners:tiny_runner"


def make_config(data_dir: Path, **overrides: Any) -> TrainerConfig:
    """A TrainerConfig through the real model: one token, random-init defaults, two torch threads."""
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        # The pull tests' devices listen on loopback ports (tests of the refusal configure their own list).
        "server": {"tokens": [TOKEN], "max_archive_mb": 5, "max_image_mb": 1, "pull_sources": ["http://127.0.0.1:*"]},
        "training": {"weights": None, "threads": 2},
        "workers": 1,
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            raw[key] = {**raw.get(key, {}), **value}
        else:
            raw[key] = value
    return TrainerConfig.model_validate(raw)


def zip_folder(folder: Path, prefix: str = "") -> bytes:
    """The folder's files as a zip (names relative to folder, under prefix)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return buf.getvalue()


@pytest.fixture(scope="session")
def colour_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A folder-per-class dataset (red/green/blue, 12 images each) as a zip."""
    root = tmp_path_factory.mktemp("colours") / "data"
    coloured_dataset(root, per_label=12)
    return zip_folder(root, "colours/")


def make_app(data_dir: Path, runner: str | None = TINY_RUNNER, **overrides: Any) -> Flask:
    """The real app over data_dir with the given runner."""
    app = create_app(make_config(data_dir, **overrides), runner=runner)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """The app with the tiny runner; its scheduler and workers stop at the end."""
    application = make_app(tmp_path / "trainer")
    try:
        yield application
    finally:
        application.extensions[SCHEDULER_KEY].stop(terminate=True)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def upload(client: FlaskClient, data: bytes, **query: str) -> Any:
    """POST an archive as the raw body."""
    return client.post("/v1/datasets", data=data, headers=AUTH, content_type="application/zip", query_string=query)


def wait_for_state(
    client: FlaskClient,
    job_id: str,
    states: set[str],
    timeout: float = 120.0,
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Poll the job until it is in one of `states` (and `until(job)` holds): a wait, not a timing assertion."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
        if job["state"] in states and (until is None or until(job)):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {states}: last {job}")
