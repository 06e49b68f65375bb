"""The trainer's dataset pull reaches only the configured devices (server.pull_sources), follows no redirect and
never echoes what a server answered: a token holder cannot use it to read loopback services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.http_stub import StubServer
from tests.trainer.service.conftest import AUTH, make_app
from trainer.service.app import SCHEDULER_KEY
from trainer.service.datasets import pull_allowed

SECRET = "internal-admin-password-4242"


class Server(StubServer):
    """A loopback HTTP server answering every GET with (status, headers, body); it counts what it was asked."""

    def __init__(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(lambda path: (status, headers or {}, body.encode()))


@pytest.fixture
def secret_service() -> Iterator[Server]:
    server = Server(200, f'{{"items": [], "password": "{SECRET}"}}')
    yield server
    server.stop()


def pull(tmp_path: Path, url: str, allowed: list[str]) -> Any:
    app = make_app(tmp_path / "trainer", server={"pull_sources": allowed})
    try:
        client = app.test_client()
        return client.post("/v1/datasets", headers=AUTH, json={"source": {"url": f"{url}/api/v1", "token": "t"}})
    finally:
        app.extensions[SCHEDULER_KEY].stop(terminate=True)


def test_a_loopback_service_not_on_the_list_is_never_contacted(tmp_path: Path, secret_service: Server) -> None:
    resp = pull(tmp_path, secret_service.url, allowed=["http://device.example:8080"])
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert "is not allowed" in error and "server.pull_sources" in error
    assert secret_service.requests == []


def test_an_error_answer_is_never_echoed(tmp_path: Path) -> None:
    server = Server(403, f"<html>{SECRET}</html>")
    try:
        resp = pull(tmp_path, server.url, allowed=[server.url])
    finally:
        server.stop()
    assert resp.status_code == 400 and "answered 403" in resp.get_json()["error"]
    assert SECRET not in resp.get_data(as_text=True)
    assert server.requests  # it was allowed, so it was asked


def test_a_redirect_to_another_address_is_not_followed(tmp_path: Path, secret_service: Server) -> None:
    redirector = Server(302, "", {"Location": f"{secret_service.url}/api/v1/labels"})
    try:
        resp = pull(tmp_path, redirector.url, allowed=[redirector.url])
    finally:
        redirector.stop()
    assert resp.status_code == 400 and "302" in resp.get_json()["error"]
    assert secret_service.requests == []
    assert SECRET not in resp.get_data(as_text=True)


def test_origins_match_scheme_host_and_port() -> None:
    allowed = ["http://device:8080", "https://fleet.example", "http://10.0.0.5:*"]
    assert pull_allowed("http://device:8080/api/v1", allowed)
    assert pull_allowed("http://DEVICE:8080/api/v1", allowed)
    assert not pull_allowed("http://device:8081/api/v1", allowed)
    assert not pull_allowed("https://device:8080/api/v1", allowed)
    assert pull_allowed("https://fleet.example/api/v1", allowed)  # 443 implied on both sides
    assert not pull_allowed("https://fleet.example:8443/api/v1", allowed)
    assert pull_allowed("http://10.0.0.5:9000/api/v1", allowed)
    assert not pull_allowed("http://127.0.0.1:8080/api/v1", allowed)
    assert not pull_allowed("http://device:8080/api/v1", [])
