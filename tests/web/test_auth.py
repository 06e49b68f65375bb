"""Accounts, sessions, CSRF, rate limiting and bearer tokens, through the real app and the real user store."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from edge.store.users import USERS_DB, UserStore, hash_password, verify_password
from edge.web import Services, create_app
from edge.web.security import SECRET_KEY_FILE
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, SignedIn, Studio, create_admin, csrf_of, make_config


def test_first_visit_asks_for_the_admin_and_there_is_no_default_login(client: FlaskClient) -> None:
    resp = client.get("/library")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/setup")
    assert "Create the admin" in client.get("/setup").get_data(as_text=True)
    assert client.get("/login").headers["Location"].endswith("/setup")
    resp = client.post("/api/v1/auth/token", json={"username": "admin", "password": "admin"})
    assert resp.status_code == 401


def test_setup_creates_a_hashed_admin_once(studio: Studio, client: FlaskClient) -> None:
    signed_in = create_admin(client)
    assert signed_in.get("/api/v1/auth/me").json["user"]["username"] == ADMIN
    with sqlite3.connect(Path(studio.config.data_dir) / USERS_DB) as db:
        (stored,) = db.execute("SELECT password_hash FROM users").fetchone()
    assert ADMIN_PASSWORD not in stored and stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(ADMIN_PASSWORD, stored) and not verify_password("wrong password", stored)
    # Once an account exists the setup page only points to the login.
    assert client.get("/setup").status_code == 302
    other = studio.app.test_client()
    page = other.get("/login").get_data(as_text=True)
    resp = other.post("/setup", data={"csrf_token": csrf_of(page), "username": "evil", "password": "x" * 10})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")
    assert [u.username for u in studio.services.users.all()] == [ADMIN]  # type: ignore[union-attr]


def test_setup_form_rejects_bad_input_and_stores_nothing(studio: Studio, client: FlaskClient) -> None:
    token = csrf_of(client.get("/setup").get_data(as_text=True))
    short = client.post("/setup", data={"csrf_token": token, "username": "a", "password": "x", "password_repeat": "x"})
    assert short.status_code == 400 and "at least 8 characters" in short.get_data(as_text=True)
    differ = {"csrf_token": token, "username": "a", "password": "x" * 9, "password_repeat": "y" * 9}
    assert client.post("/setup", data=differ).status_code == 400
    no_csrf = {"username": "a", "password": "x" * 9, "password_repeat": "x" * 9}
    assert client.post("/setup", data=no_csrf).status_code == 403
    assert studio.services.users.count() == 0  # type: ignore[union-attr]


def test_hashes_are_salted() -> None:
    assert hash_password("same password") != hash_password("same password")


def test_session_cookie_flags(studio: Studio, client: FlaskClient) -> None:
    resp = client.get("/setup")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = studio.app.test_client().get("/setup", base_url="https://localhost")
    assert "Secure" in secure.headers["Set-Cookie"]


def test_login_logout_and_next(studio: Studio, admin: SignedIn) -> None:
    other = studio.app.test_client()
    resp = other.get("/review")
    assert resp.status_code == 302 and "/login?next=/review" in resp.headers["Location"]
    page = other.get("/login?next=/review").get_data(as_text=True)
    resp = other.post(
        "/login", data={"csrf_token": csrf_of(page), "username": ADMIN, "password": ADMIN_PASSWORD, "next": "/review"}
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/review"
    assert other.get("/review").status_code == 200
    # An open redirect is refused: the next URL must stay on this site.
    page = other.get("/login").get_data(as_text=True)
    token = csrf_of(other.get("/review").get_data(as_text=True))
    assert other.post("/logout", data={"csrf_token": token}).status_code == 302
    assert other.get("/review").status_code == 302
    page = other.get("/login").get_data(as_text=True)
    resp = other.post(
        "/login",
        data={"csrf_token": csrf_of(page), "username": ADMIN, "password": ADMIN_PASSWORD, "next": "//evil.example/"},
    )
    assert resp.headers["Location"] == "/"


def test_wrong_password_then_rate_limit_429(studio: Studio, admin: SignedIn) -> None:
    other = studio.app.test_client()
    page = other.get("/login").get_data(as_text=True)
    bad = {"csrf_token": csrf_of(page), "username": ADMIN, "password": "not the password"}
    for _ in range(studio.config.web.login_attempts_per_minute):
        resp = other.post("/login", data=bad)
        assert resp.status_code == 401 and "Wrong user name or password" in resp.get_data(as_text=True)
    # Over the limit even the right password is refused for now: the limiter acts before the check.
    good = {**bad, "password": ADMIN_PASSWORD}
    assert other.post("/login", data=good).status_code == 429
    api = other.post("/api/v1/auth/token", json={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert api.status_code == 429 and "Retry-After" in api.headers and "too many" in api.json["error"]
    # Another client address is not affected.
    elsewhere = studio.app.test_client()
    resp = elsewhere.post(
        "/api/v1/auth/token",
        json={"username": ADMIN, "password": ADMIN_PASSWORD},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert resp.status_code == 201


def test_login_without_csrf_is_refused(studio: Studio, admin: SignedIn) -> None:
    other = studio.app.test_client()
    other.get("/login")
    resp = other.post("/login", data={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert resp.status_code == 403


def test_token_auth_works_and_wrong_or_revoked_tokens_fail(studio: Studio, admin: SignedIn) -> None:
    api = studio.app.test_client()
    resp = api.post("/api/v1/auth/token", json={"username": ADMIN, "password": ADMIN_PASSWORD, "name": "ci"})
    assert resp.status_code == 201
    token = resp.json["token"]
    auth = {"Authorization": f"Bearer {token}"}
    me = api.get("/api/v1/auth/me", headers=auth)
    assert me.status_code == 200 and me.json["auth"] == "token"
    # Token calls need no CSRF token (browsers never send bearer headers on their own).
    assert api.post("/api/v1/labels", json={"name": "low_stock"}, headers=auth).status_code == 201
    assert api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert api.get("/api/v1/auth/me", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    with sqlite3.connect(Path(studio.config.data_dir) / USERS_DB) as db:
        stored = [r[0] for r in db.execute("SELECT token_sha256 FROM api_tokens")]
    assert token not in stored and len(stored) == 1 and len(stored[0]) == 64
    listed = api.get("/api/v1/auth/tokens", headers=auth).json["items"]
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    assert api.delete("/api/v1/auth/token", headers=auth).status_code == 200
    assert api.get("/api/v1/auth/me", headers=auth).status_code == 401


def test_token_revocation_by_id_from_the_session(studio: Studio, admin: SignedIn) -> None:
    api = studio.app.test_client()
    token = api.post("/api/v1/auth/token", json={"username": ADMIN, "password": ADMIN_PASSWORD}).json
    assert admin.delete(f"/api/v1/auth/tokens/{token['id']}").status_code == 200
    assert api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token['token']}"}).status_code == 401
    assert admin.delete(f"/api/v1/auth/tokens/{token['id']}").status_code == 404
    assert admin.delete("/api/v1/auth/tokens/999").status_code == 404


def test_token_endpoint_bad_input(client: FlaskClient, admin: SignedIn) -> None:
    assert client.post("/api/v1/auth/token", data="{nope", content_type="application/json").status_code == 400
    assert client.post("/api/v1/auth/token", json={"username": ADMIN}).status_code == 400
    assert client.post("/api/v1/auth/token", json=["x"]).status_code == 400


def test_secret_key_generated_once_with_mode_0600(studio: Studio, shelf_folder: Path) -> None:
    path = Path(studio.config.data_dir) / SECRET_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text()
    again = create_app(studio.config, Services(store=studio.store))
    assert path.read_text() == key and again.secret_key == studio.app.secret_key


def test_configured_secret_key_is_used(tmp_path: Path, shelf_folder: Path) -> None:
    from edge.store import DatasetStore

    config = make_config(tmp_path / "d", shelf_folder, secret_key="k" * 40)
    with DatasetStore(config.data_dir) as store:
        app = create_app(config, Services(store=store))
    assert app.secret_key == "k" * 40 and not (tmp_path / "d" / SECRET_KEY_FILE).exists()


def test_user_store_rules(tmp_path: Path) -> None:
    users = UserStore(tmp_path)
    users.create("alice", "x" * 8)
    from edge.errors import ConflictError, NotFoundError
    from edge.store.users import AuthError

    with pytest.raises(ConflictError):
        users.create("ALICE", "y" * 8)
    with pytest.raises(AuthError):
        users.create("bad name/..", "y" * 8)
    with pytest.raises(ConflictError):
        users.create_first_admin("bob", "y" * 8)
    assert users.authenticate("alice", "x" * 8) is not None
    assert users.authenticate("nobody", "x" * 8) is None
    users.set_password("alice", "z" * 8)
    assert users.authenticate("alice", "x" * 8) is None and users.authenticate("alice", "z" * 8) is not None
    with pytest.raises(NotFoundError):
        users.set_password("nobody", "z" * 8)


def test_account_page_creates_and_revokes_tokens(studio: Studio, admin: SignedIn) -> None:
    assert "API tokens" in admin.get("/account").text
    resp = admin.post("/api/v1/auth/tokens", json={"name": "dashboard"})
    assert resp.status_code == 201 and resp.json["token"].startswith("sw_")
    api = studio.app.test_client()
    auth = {"Authorization": f"Bearer {resp.json['token']}"}
    assert api.get("/api/v1/auth/me", headers=auth).status_code == 200
    assert admin.post("/api/v1/auth/tokens", json={"name": ""}).status_code == 400
    assert admin.client.post("/api/v1/auth/tokens", json={"name": "x"}).status_code == 403  # no CSRF header
    assert admin.delete(f"/api/v1/auth/tokens/{resp.json['id']}").status_code == 200
    assert api.get("/api/v1/auth/me", headers=auth).status_code == 401
    listed = admin.get("/api/v1/auth/tokens").json["items"]
    assert [(t["name"], t["revoked"] is not None) for t in listed] == [("dashboard", True)]
