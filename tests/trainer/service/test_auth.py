"""Bearer tokens: missing, wrong or absent configuration refuse with 401; the comparison is constant-time."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.trainer.service.conftest import AUTH, TOKEN, make_app
from trainer.service import http as app_module
from trainer.service.app import SCHEDULER_KEY


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "longer", "basic-scheme", "empty"],
)
def test_bad_or_missing_token_is_401(client: FlaskClient, headers: dict[str, str]) -> None:
    for method, url in [("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("POST", "/v1/datasets"), ("GET", "/v1/datasets")]:
        resp = client.open(url, method=method, headers=headers, json={})
        assert resp.status_code == 401, (method, url)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in resp.get_json()["error"]


def test_right_token_is_accepted_and_health_is_open(client: FlaskClient) -> None:
    assert client.get("/v1/jobs", headers=AUTH).get_json() == {"items": []}
    health = client.get("/v1/health")
    assert health.status_code == 200 and health.get_json()["status"] == "ok"


def test_no_token_configured_refuses_everything_with_a_clear_message(tmp_path: Path) -> None:
    app = make_app(tmp_path / "t", server={"tokens": []})
    try:
        client = app.test_client()
        for headers in ({}, AUTH, {"Authorization": "Bearer "}):
            resp = client.get("/v1/jobs", headers=headers)
            assert resp.status_code == 401
            assert "no API token configured" in resp.get_json()["error"]
    finally:
        app.extensions[SCHEDULER_KEY].stop()


def test_tokens_are_compared_with_hmac_compare_digest_against_every_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(app_module.hmac, "compare_digest", recording)
    app = make_app(tmp_path / "t", server={"tokens": ["first-token", TOKEN, "third-token"]})
    try:
        client = app.test_client()
        assert client.get("/v1/jobs", headers=AUTH).status_code == 200
        # every configured token is compared, even after the match (no early exit that timing could reveal)
        assert [b for _, b in calls] == [b"first-token", TOKEN.encode(), b"third-token"]
        calls.clear()
        assert client.get("/v1/jobs", headers={"Authorization": "Bearer first-tokex"}).status_code == 401
        assert len(calls) == 3
    finally:
        app.extensions[SCHEDULER_KEY].stop()


def test_token_from_environment_placeholder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINER_TOKEN", "from-env-token")
    app = make_app(tmp_path / "t", server={"tokens": ["${TRAINER_TOKEN}"]})
    try:
        client = app.test_client()
        assert client.get("/v1/jobs", headers={"Authorization": "Bearer from-env-token"}).status_code == 200
        assert client.get("/v1/jobs", headers={"Authorization": "Bearer ${TRAINER_TOKEN}"}).status_code == 401
    finally:
        app.extensions[SCHEDULER_KEY].stop()
