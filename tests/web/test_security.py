"""Security findings of the web studio, each through the real app (and a real server on loopback where it matters):
revocable sessions, the login race, read-only authentication on a full disk, JSON depth, errors and their
statuses, stale frames, strict numbers and token names."""

from __future__ import annotations

import http.client
import io
import json
import logging
import sqlite3
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from edge.errors import (
    CameraError,
    ConflictError,
    EngineError,
    ImageTooLargeError,
    NotFoundError,
    ShelfwatchError,
    StoreError,
    status_for,
)
from edge.store.users import USERS_DB, UserStore, hash_password
from edge.training.client import TrainerHttpError, TrainerUnavailable, TrainerUnreachable
from edge.web import WebServer
from edge.web.http import MAX_JSON_DEPTH, json_depth
from edge.web.security import requires
from tests.helpers.disk import fill, small_filesystem
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, CAMERA_ID, SignedIn, Studio, csrf_of, jpeg_bytes, open_studio

DEEP = "[" * 100_000 + "]" * 100_000
COOKIE = "shelfwatch_session"


def _sign_in(studio: Studio, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> FlaskClient:
    client = studio.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    resp = client.post("/login", data={"csrf_token": csrf_of(page), "username": username, "password": password})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client


def _replay(studio: Studio, cookie: str) -> int:
    """The status a fresh client gets for /api/v1/auth/me with a copied session cookie."""
    thief = studio.app.test_client()
    thief.set_cookie(COOKIE, cookie)
    return thief.get("/api/v1/auth/me").status_code


# -- 7: sessions are server-side and revocable -----------------------------------------------------------------


def test_a_copied_cookie_stops_working_after_logout(studio: Studio, admin: SignedIn) -> None:
    cookie = admin.client.get_cookie(COOKIE)
    assert cookie is not None and _replay(studio, cookie.value) == 200
    assert admin.post("/logout").status_code == 302
    assert _replay(studio, cookie.value) == 401


def test_passwd_on_the_command_line_ends_sessions_and_tokens(
    studio: Studio, admin: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.cli import main

    cookie = admin.client.get_cookie(COOKIE)
    assert cookie is not None
    token = studio.app.test_client().post("/api/v1/auth/token", json={"username": ADMIN, "password": ADMIN_PASSWORD})
    bearer = {"Authorization": f"Bearer {token.json['token']}"}
    assert studio.app.test_client().get("/api/v1/auth/me", headers=bearer).status_code == 200
    monkeypatch.setattr(sys, "stdin", io.StringIO("a new long password\n"))
    args = ["users", "passwd", ADMIN, "--password-stdin", "--data-dir", str(studio.config.data_dir)]
    assert main(args) == 0
    assert _replay(studio, cookie.value) == 401
    assert studio.app.test_client().get("/api/v1/auth/me", headers=bearer).status_code == 401
    assert admin.get("/api/v1/auth/me").status_code == 401


def test_password_change_on_the_account_page(studio: Studio, admin: SignedIn) -> None:
    elsewhere = _sign_in(studio)
    token = admin.post("/api/v1/auth/tokens", json={"name": "script"}).json["token"]
    wrong = admin.post("/api/v1/auth/password", json={"current_password": "nope", "new_password": "n" * 12})
    assert wrong.status_code == 400 and "current password" in wrong.json["error"]
    resp = admin.post(
        "/api/v1/auth/password", json={"current_password": ADMIN_PASSWORD, "new_password": "the new password"}
    )
    assert resp.status_code == 200 and resp.json["tokens_revoked"] == 1
    assert elsewhere.get("/api/v1/auth/me").status_code == 401  # the other browser is signed out
    assert (
        studio.app.test_client().get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    assert admin.get("/api/v1/auth/me").status_code == 200  # the one who changed it got a fresh session
    assert studio.services.users.authenticate(ADMIN, "the new password") is not None  # type: ignore[union-attr]


def test_cookie_from_before_server_side_sessions_is_worthless(studio: Studio, admin: SignedIn) -> None:
    """The old cookie carried only the user id, signed: it must not sign anyone in any more."""
    from flask.sessions import SecureCookieSessionInterface

    serializer = SecureCookieSessionInterface().get_signing_serializer(studio.app)
    assert serializer is not None
    forged = serializer.dumps({"uid": 1, "csrf_token": "x"})
    assert _replay(studio, forged) == 401


# -- 6: the login rate limit cannot be raced -------------------------------------------------------------------


def test_parallel_wrong_passwords_cannot_race_the_limit(studio: Studio) -> None:
    """40 parallel wrong passwords on a real server: exactly `limit` are judged (401), the rest get 429."""
    studio.services.users.create_first_admin(ADMIN, ADMIN_PASSWORD)  # type: ignore[union-attr]
    limit = studio.config.web.login_attempts_per_minute
    server = WebServer(studio.app, port=0, threads=16).start()
    body = json.dumps({"username": ADMIN, "password": "wrong password"})
    start = threading.Barrier(40)

    def attempt(_: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            start.wait(timeout=30)
            conn.request("POST", "/api/v1/auth/token", body=body, headers={"Content-Type": "application/json"})
            return conn.getresponse().status
        finally:
            conn.close()

    try:
        with ThreadPoolExecutor(40) as pool:
            statuses = list(pool.map(attempt, range(40)))
    finally:
        server.stop()
    assert statuses.count(401) == limit and statuses.count(429) == 40 - limit, statuses


def test_a_successful_sign_in_does_not_use_up_the_limit(studio: Studio, admin: SignedIn) -> None:
    for _ in range(studio.config.web.login_attempts_per_minute + 2):
        resp = studio.app.test_client().post("/api/v1/auth/token", json={"username": ADMIN, "password": ADMIN_PASSWORD})
        assert resp.status_code == 201


# -- 4: authentication only reads; a full disk is 507 on writes ------------------------------------------------


def test_bearer_reads_work_on_a_full_disk_and_writes_answer_507(tmp_path: Path, shelf_folder: Path) -> None:
    with small_filesystem(tmp_path / "disk", "12m") as disk, open_studio(disk / "data", shelf_folder) as studio:
        users = studio.services.users
        assert users is not None
        user = users.create_first_admin(ADMIN, ADMIN_PASSWORD)
        used, _ = users.issue_token(user.id, "used before the disk filled")
        fresh, _ = users.issue_token(user.id, "first used on a full disk")
        client = studio.app.test_client()
        assert client.get("/api/v1/status", headers={"Authorization": f"Bearer {used}"}).status_code == 200
        filler = fill(disk)
        try:
            for token in (used, fresh):  # `fresh` has no last_used yet: its first check tries (and fails) to write
                resp = client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
                assert resp.status_code == 200, resp.get_data(as_text=True)
                assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            bearer = {"Authorization": f"Bearer {used}"}
            resp = client.put("/api/v1/training/settings", json={"deploy_threshold": 0.7}, headers=bearer)
            assert resp.status_code == 507 and "insufficient storage" in resp.json["error"]  # the dataset store
            resp = client.post("/api/v1/auth/tokens", json={"name": "x"}, headers=bearer)
            assert resp.status_code == 507 and "insufficient storage" in resp.json["error"]  # the account store
            photo = {"file": (io.BytesIO(jpeg_bytes(3)), "shelf.jpg")}
            resp = client.post("/api/v1/images", data=photo, headers=bearer)
            assert resp.status_code == 507 and "insufficient storage" in resp.json["error"]  # an image file
        finally:
            filler.unlink()
        assert (
            client.put("/api/v1/training/settings", json={"deploy_threshold": 0.7}, headers=bearer).status_code == 200
        )
        assert client.post("/api/v1/auth/tokens", json={"name": "x"}, headers=bearer).status_code == 201


# -- 9: JSON nested 100k deep is a 400, never a RecursionError -------------------------------------------------


def test_deep_json_is_400_on_every_json_route(
    studio: Studio, admin: SignedIn, caplog: pytest.LogCaptureFixture
) -> None:
    token = admin.post("/api/v1/auth/tokens", json={"name": "deep"}).json["token"]
    bearer = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    anonymous = studio.app.test_client().post(
        "/api/v1/auth/token", data=DEEP, headers={"Content-Type": "application/json"}
    )
    assert anonymous.status_code == 400 and "levels" in anonymous.json["error"]
    caplog.set_level(logging.INFO)
    for rule in studio.app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH"}):
            if rule.arguments:
                url = rule.rule.replace("<camera_id>", CAMERA_ID)
                for arg in rule.arguments - {"camera_id"}:
                    url = url.replace(f"<int:{arg}>", "999999").replace(f"<{arg}>", "x")
            else:
                url = rule.rule
            resp = studio.app.test_client().open(url, method=method, data=DEEP, headers=bearer)
            assert resp.status_code != 500, (method, url, resp.status_code)
    for url, method in [
        ("/api/v1/labels", "POST"),
        (f"/api/v1/cameras/{CAMERA_ID}/zones", "PUT"),
        ("/api/v1/training/settings", "PUT"),
        ("/api/v1/users", "POST"),
    ]:
        resp = studio.app.test_client().open(url, method=method, data=DEEP, headers=bearer)
        assert resp.status_code == 400 and f"at most {MAX_JSON_DEPTH} levels" in resp.json["error"], url
    assert not [r for r in caplog.records if r.exc_info or "Recursion" in r.getMessage()]


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "[[[[[[", "b": [1, {"c": "]]]\\"[["}]}') == 3
    assert json_depth("[]") == 1 and json_depth("3") == 0


# -- issue 9 point 5: one status per error class; unexpected errors are 500 with the traceback logged -----------


def test_status_for_each_error_class() -> None:
    import errno

    assert status_for(ShelfwatchError("bad input")) == 400
    assert status_for(NotFoundError("x")) == 404 and status_for(ConflictError("x")) == 409
    assert status_for(ImageTooLargeError("x")) == 413 and status_for(CameraError("x")) == 503
    assert status_for(StoreError("x")) == 500 and status_for(EngineError("x")) == 500
    assert status_for(RuntimeError("x")) == 500
    assert status_for(TrainerUnreachable("down")) == 503 and status_for(TrainerUnavailable("none")) == 503
    assert status_for(TrainerHttpError(500, "trainer broke")) == 502 and status_for(TrainerHttpError(404, "x")) == 400
    assert status_for(OSError(errno.ENOSPC, "No space left on device")) == 507
    assert status_for(sqlite3.OperationalError("database or disk is full")) == 507


def test_store_and_engine_failures_are_500_not_bad_request(
    tmp_path: Path, shelf_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_studio(tmp_path / "data", shelf_folder) as studio:
        failures = {"store": StoreError("the dataset store cannot be read"), "engine": EngineError("no engine")}

        def boom(kind: str) -> None:
            if kind == "bug":
                raise KeyError("a bug")
            raise failures[kind]

        studio.app.add_url_rule("/api/v1/boom/<kind>", view_func=requires("viewer")(boom))
        user = studio.services.users.create_first_admin(ADMIN, ADMIN_PASSWORD)  # type: ignore[union-attr]
        token, _ = studio.services.users.issue_token(user.id)  # type: ignore[union-attr]
        client = studio.app.test_client()
        for kind in ("store", "engine", "bug"):
            caplog.clear()
            resp = client.get(f"/api/v1/boom/{kind}", headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 500, kind
            assert [r for r in caplog.records if r.exc_info], f"{kind}: no traceback logged"
        assert "KeyError" in resp.json["error"] and "a bug" not in resp.json["error"]


# -- 11: stale frames, strict numbers, token names, hash parameters --------------------------------------------


def test_frame_of_a_camera_that_is_not_online_is_503(studio: Studio, admin: SignedIn) -> None:
    import time

    deadline = time.monotonic() + 20
    while admin.get(f"/api/v1/cameras/{CAMERA_ID}/frame.jpg").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert admin.get(f"/api/v1/cameras/{CAMERA_ID}/frame.jpg").status_code == 200
    studio.hub.stop_all()  # the capture slot still holds the last frame
    resp = admin.get(f"/api/v1/cameras/{CAMERA_ID}/frame.jpg")
    assert resp.status_code == 503 and "stopped" in resp.json["error"]


def test_deploy_threshold_must_be_a_number(admin: SignedIn) -> None:
    resp = admin.put("/api/v1/training/settings", json={"deploy_threshold": "0.5"})
    assert resp.status_code == 400 and "deploy_threshold" in resp.json["error"]
    assert admin.put("/api/v1/training/settings", json={"deploy_threshold": 0.5}).status_code == 200
    assert admin.post("/api/v1/training", json={"deploy_threshold": "0.5"}).status_code == 400


def test_token_names_with_control_characters_are_refused(studio: Studio, admin: SignedIn) -> None:
    for name in ("a\x00b", "line\nbreak"):
        resp = admin.post("/api/v1/auth/tokens", json={"name": name})
        assert resp.status_code == 400 and "control characters" in resp.json["error"]
        resp = studio.app.test_client().post(
            "/api/v1/auth/token", json={"username": ADMIN, "password": ADMIN_PASSWORD, "name": name}
        )
        assert resp.status_code == 400
    assert [t["name"] for t in admin.get("/api/v1/auth/tokens").json["items"]] == []


def test_old_scrypt_hashes_still_sign_in_and_are_upgraded(tmp_path: Path) -> None:
    import base64
    import hashlib

    users = UserStore(tmp_path)
    users.create("alice", "placeholder-pass")
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"old password", salt=salt, n=2**14, r=8, p=1, dklen=32)
    old = f"scrypt${2**14}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    with sqlite3.connect(tmp_path / USERS_DB) as db:
        db.execute("UPDATE users SET password_hash = ? WHERE username = 'alice'", (old,))
    assert users.authenticate("alice", "wrong") is None
    assert users.authenticate("alice", "old password") is not None
    with sqlite3.connect(tmp_path / USERS_DB) as db:
        (stored,) = db.execute("SELECT password_hash FROM users").fetchone()
    assert stored.startswith("$argon2id$") and users.authenticate("alice", "old password") is not None
    assert hash_password("x").startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_the_limiter_forgets_quiet_addresses() -> None:
    from edge.web.security import MAX_TRACKED_ADDRESSES, LoginRateLimiter

    limiter = LoginRateLimiter(3, window_seconds=0.05)
    for i in range(MAX_TRACKED_ADDRESSES):
        assert limiter.acquire(f"10.0.{i // 256}.{i % 256}") == 0
    import time

    time.sleep(0.1)  # every address falls out of its window
    assert limiter.acquire("192.0.2.1") == 0
    assert len(limiter._attempts) == 1
