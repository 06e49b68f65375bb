"""Roles route by route: every view of the studio states its role, and a role below it gets 403 on every method.

The route list is the app's own url_map, so a new route without `@requires(...)` (or `@public`) fails here.
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.routing import Rule
from werkzeug.routing.converters import NumberConverter

from edge.store.users import ROLES, USERS_DB, UserStore, role_allows
from edge.web.security import required_role
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, SignedIn, Studio, csrf_of, open_studio

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
# Views whose permitted call would answer an endless stream or revoke the caller's own token: only their
# refusals are called here.
NOT_CALLED_WHEN_ALLOWED = {"cameras.stream", "auth.revoke_current_token"}


def _rules(app: Any) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if r.endpoint != "static"]


def _url(rule: Rule) -> str:
    # Ids and names that exist nowhere: a permitted call must not revoke the caller's own token (id 1, 2, 3).
    values = {arg: (999999 if isinstance(rule._converters[arg], NumberConverter) else "x") for arg in rule.arguments}
    path = rule.rule
    for arg, value in values.items():
        path = path.replace(f"<int:{arg}>", str(value)).replace(f"<{arg}>", str(value))
    return path


@pytest.fixture(scope="module")
def roles_studio(
    tmp_path_factory: pytest.TempPathFactory, shelf_folder: Path
) -> Iterator[tuple[Studio, dict[str, str]]]:
    """One studio with one account per role and a bearer token for each."""
    with open_studio(tmp_path_factory.mktemp("roles") / "data", shelf_folder) as studio:
        users = studio.services.users
        assert users is not None
        tokens = {}
        for role in ROLES:
            user = users.create(f"{role}-user", ADMIN_PASSWORD, role=role)
            tokens[role], _ = users.issue_token(user.id, f"{role} test")
        yield studio, tokens


def test_every_route_states_a_role(roles_studio: tuple[Studio, dict[str, str]]) -> None:
    studio, _ = roles_studio
    unmarked = []
    for rule in _rules(studio.app):
        view = studio.app.view_functions[rule.endpoint]
        if not getattr(view, "shelfwatch_public", False) and required_role(view) is None:
            unmarked.append(rule.rule)
    assert unmarked == [], f"routes without @requires(role) or @public: {unmarked}"


def _cases(app: Any) -> list[tuple[str, str, str, str]]:
    cases = []
    for rule in _rules(app):
        view = app.view_functions[rule.endpoint]
        needed = required_role(view)
        if needed is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            cases.append((rule.endpoint, method, _url(rule), needed))
    return cases


def test_each_role_is_refused_exactly_where_it_lacks_the_right(roles_studio: tuple[Studio, dict[str, str]]) -> None:
    studio, tokens = roles_studio
    client = studio.app.test_client()
    cases = _cases(studio.app)
    assert len(cases) > 60  # the whole studio, not a handful
    wrong = []
    for endpoint, method, url, needed in cases:
        for role in ROLES:
            allowed = role_allows(role, needed)
            if allowed and (endpoint in NOT_CALLED_WHEN_ALLOWED or role != needed):
                continue  # a permitted call is made once, by the least role that may make it
            resp = client.open(url, method=method, json={}, headers={"Authorization": f"Bearer {tokens[role]}"})
            refused = resp.status_code == 403
            if refused == allowed:
                wrong.append(f"{role} {method} {url} -> {resp.status_code} (needs {needed})")
    assert wrong == []


def test_the_findings_routes_are_admin_only(roles_studio: tuple[Studio, dict[str, str]]) -> None:
    """A labeller activated and rolled back models and set the deploy threshold to 0.0: now 403, nothing changed."""
    studio, tokens = roles_studio
    client = studio.app.test_client()
    labeller = {"Authorization": f"Bearer {tokens['labeller']}"}
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    for method, url, body in [
        ("POST", "/api/v1/models/1.0.0/activate", None),
        ("POST", "/api/v1/models/rollback", None),
        ("PUT", "/api/v1/training/settings", {"deploy_threshold": 0.0}),
        ("PUT", "/api/v1/cameras/aisle-1/zones", {"zones": []}),
        ("POST", "/api/v1/users", {"username": "mallory", "password": "x" * 10, "role": "admin"}),
    ]:
        resp = client.open(url, method=method, json=body, headers=labeller)
        assert resp.status_code == 403 and "needs admin" in resp.json["error"], url
    assert client.get("/api/v1/training/settings", headers=labeller).json["deploy_threshold"] != 0.0
    # The labeller does capture, tag and review; the viewer only looks.
    assert client.post("/api/v1/labels", json={"name": "low_stock"}, headers=labeller).status_code == 201
    assert client.post("/api/v1/labels", json={"name": "gap"}, headers=viewer).status_code == 403
    assert client.get("/api/v1/labels", headers=viewer).status_code == 200


def test_admin_manages_users_on_the_users_page(studio: Studio, admin: SignedIn) -> None:
    assert "Add user" in admin.get("/users").text
    resp = admin.post("/api/v1/users", json={"username": "lab", "password": "lab-password", "role": "labeller"})
    assert resp.status_code == 201 and resp.json["role"] == "labeller"
    assert admin.post("/api/v1/users", json={"username": "x", "password": "p" * 9, "role": "root"}).status_code == 400
    assert admin.patch("/api/v1/users/lab", json={"role": "viewer"}).json["role"] == "viewer"
    # The last admin can neither be demoted nor removed.
    assert admin.patch(f"/api/v1/users/{ADMIN}", json={"role": "viewer"}).status_code == 409
    assert admin.delete(f"/api/v1/users/{ADMIN}").status_code == 409
    listed = {u["username"]: u["role"] for u in admin.get("/api/v1/users").json["items"]}
    assert listed == {ADMIN: "admin", "lab": "viewer"}
    # A viewer signed in through the form gets 403 on the page and the API.
    other = studio.app.test_client()
    page = other.get("/login").get_data(as_text=True)
    other.post("/login", data={"csrf_token": csrf_of(page), "username": "lab", "password": "lab-password"})
    assert other.get("/api/v1/auth/me").json["user"]["role"] == "viewer"
    assert other.get("/users").status_code == 403 and other.get("/api/v1/users").status_code == 403
    assert admin.delete("/api/v1/users/lab").status_code == 200
    assert other.get("/api/v1/auth/me").status_code == 401  # the removed account's session is gone with it


def test_accounts_from_before_roles_migrate(tmp_path: Path) -> None:
    """An old users.sqlite3 (is_admin only, mode 0644): admins stay admins, the others become labellers."""
    path = tmp_path / USERS_DB
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE COLLATE NOCASE, "
            "password_hash TEXT NOT NULL, is_admin INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);"
            "CREATE TABLE api_tokens (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, token_sha256 TEXT NOT NULL "
            "UNIQUE, name TEXT NOT NULL DEFAULT '', created REAL NOT NULL, last_used REAL, revoked REAL);"
            "INSERT INTO users VALUES (1, 'root', 'x', 1, 0), (2, 'helper', 'x', 0, 0);"
        )
    path.chmod(0o644)
    store = UserStore(tmp_path)
    assert {u.username: u.role for u in store.all()} == {"root": "admin", "helper": "labeller"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_new_users_file_is_private(tmp_path: Path) -> None:
    UserStore(tmp_path / "fresh")
    assert stat.S_IMODE((tmp_path / "fresh" / USERS_DB).stat().st_mode) == 0o600


def test_cli_sets_roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import json
    import sys

    from edge.cli import main

    data = str(tmp_path / "data")

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        rc = main(list(args))
        out, err = capsys.readouterr()
        return rc, out, err

    assert run("users", "add", "boss", "--password-stdin", "--data-dir", data, stdin="boss-password\n")[0] == 0
    rc, out, _ = run(
        "users", "add", "lab", "--role", "labeller", "--password-stdin", "--data-dir", data, "--json", stdin="p" * 9
    )
    assert rc == 0 and json.loads(out)["created"]["role"] == "labeller"
    rc, _, err = run("users", "add", "x", "--role", "root", "--password-stdin", "--data-dir", data, stdin="p" * 9)
    assert rc != 0 and "root" in err
    assert run("users", "role", "lab", "viewer", "--data-dir", data)[0] == 0
    rc, out, _ = run("users", "list", "--data-dir", data, "--json")
    assert [(u["username"], u["role"]) for u in json.loads(out)["users"]] == [("boss", "admin"), ("lab", "viewer")]


def test_signed_in_page_without_the_role_is_an_html_403(studio: Studio, client: FlaskClient) -> None:
    users = studio.services.users
    assert users is not None
    users.create_first_admin(ADMIN, ADMIN_PASSWORD)
    users.create("watcher", ADMIN_PASSWORD, role="viewer")
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"csrf_token": csrf_of(page), "username": "watcher", "password": ADMIN_PASSWORD})
    resp = client.get("/users")
    assert resp.status_code == 403 and resp.mimetype == "text/html" and "needs admin" in resp.get_data(as_text=True)
    assert client.get("/account").status_code == 200
