"""The trainer's JSON routes refuse a 100k-deep document with 400 (it raised RecursionError with a traceback), and
errors answer with the status their class carries: one status_for shared with the device."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from edge.errors import StoreError
from tests.trainer.service.conftest import AUTH

DEEP = "[" * 100_000 + "]" * 100_000


def test_deep_json_is_400_on_the_trainers_json_routes(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    headers = {**AUTH, "Content-Type": "application/json"}
    for url in ("/v1/jobs", "/v1/datasets"):
        resp = client.post(url, data=DEEP, headers=headers)
        assert resp.status_code == 400 and "at most 64 levels" in resp.get_json()["error"], url
    assert not [r for r in caplog.records if r.exc_info or "Recursion" in r.getMessage()]


def test_unexpected_errors_are_500_with_the_traceback_logged(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    def store_down() -> None:
        raise StoreError("trainer.db cannot be read")

    def bug() -> None:
        raise KeyError("secret detail")

    app.add_url_rule("/v1/test-store-down", view_func=store_down)
    app.add_url_rule("/v1/test-bug", view_func=bug)
    client = app.test_client()
    resp = client.get("/v1/test-store-down", headers=AUTH)
    assert resp.status_code == 500 and "cannot be read" in resp.get_json()["error"]
    caplog.clear()
    resp = client.get("/v1/test-bug", headers=AUTH)
    assert resp.status_code == 500 and "KeyError" in resp.get_json()["error"]
    assert "secret detail" not in resp.get_json()["error"]
    assert [r for r in caplog.records if r.exc_info]
