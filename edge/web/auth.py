"""Sign-in pages (first-run admin, login, logout) and the API token endpoints."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, g, jsonify, redirect, render_template, request, url_for
from pydantic import BaseModel, Field

from edge.errors import ShelfwatchError
from edge.web.http import ApiError, read_model
from edge.web.security import (
    check_csrf,
    client_address,
    login_limiter,
    public,
    requires,
    safe_next,
    sign_in,
    sign_out,
    template_page,
    users,
)

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)


class TokenRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    name: str = Field("", max_length=100, description="What the token is for, shown in the token list.")


@bp.route("/setup", methods=["GET", "POST"])
@public
def setup() -> Any:
    """First run: create the admin account (only while no account exists)."""
    if users().count() > 0:
        return redirect(url_for("auth.login"))
    error = None
    username = ""
    if request.method == "POST":
        check_csrf()
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        if password != request.form.get("password_repeat", ""):
            error = "The two passwords differ."
        else:
            try:
                user = users().create_first_admin(username, password)
            except ShelfwatchError as err:
                error = str(err)
            else:
                sign_in(user)
                from edge.web.projects import first_run_target

                # The guided first run: the admin's next stop is the project form (when the device is empty).
                return redirect(first_run_target(user) or url_for("home"))
    status = 400 if error else 200
    return render_template("setup.html", error=error, username=username), status


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    """Sign in with a user name and password (failures are rate-limited per client address)."""
    if users().count() == 0:
        return redirect(url_for("auth.setup"))
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET" and g.user is not None:
        return redirect(next_url)
    error = None
    status = 200
    username = ""
    if request.method == "POST":
        check_csrf()
        limiter = login_limiter()
        wait = limiter.acquire(client_address())  # counted before the hash runs, so parallel tries cannot race it
        username = request.form.get("username", "").strip()
        if wait:
            error = f"Too many failed attempts. Try again in {wait} seconds."
            status = 429
        else:
            user = users().authenticate(username, request.form.get("password", ""))
            if user is not None:
                limiter.forgive(client_address())
                sign_in(user)
                log.info("user %s signed in from %s", user.username, client_address())
                return redirect(next_url)
            log.warning("failed sign-in for %r from %s", username, client_address())
            error = "Wrong user name or password."
            status = 401
    return render_template("login.html", error=error, username=username, next_url=next_url), status


@bp.post("/logout")
@requires("viewer")
def logout() -> Response:
    """End the session (server-side: the cookie does not work afterwards)."""
    sign_out()
    return redirect(url_for("auth.login"))  # type: ignore[return-value]


@bp.post("/api/v1/auth/token")
@public
def issue_token() -> Any:
    """Exchange a user name and password for a bearer token (shown once; only its hash is kept)."""
    body = read_model(TokenRequest)
    limiter = login_limiter()
    limiter.check()  # counts this attempt before the hash runs
    user = users().authenticate(body.username, body.password)
    if user is None:
        raise ApiError(401, "wrong user name or password")
    limiter.forgive(client_address())
    token, meta = users().issue_token(user.id, body.name or f"issued to {client_address()}")
    return jsonify({"token": token, "id": meta.id, "username": user.username}), 201


@bp.get("/api/v1/auth/me")
@requires("viewer")
def me() -> Any:
    """Who the request is authenticated as, and how."""
    return jsonify({"user": g.user.as_dict(), "auth": g.auth_method})


class NewTokenBody(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the token is for.")


# The signed-in user's page: API tokens (create, revoke).
template_page(bp, "/account", "account.html", endpoint="account")


@bp.post("/api/v1/auth/tokens")
@requires("viewer")
def create_token() -> Any:
    """Issue a token for the signed-in user: {"name"} -> 201 {"token", "id"} (the token is shown only here)."""
    body = read_model(NewTokenBody)
    token, meta = users().issue_token(g.user.id, body.name)
    return jsonify({"token": token, "id": meta.id, "name": meta.name}), 201


@bp.get("/api/v1/auth/tokens")
@requires("viewer")
def list_tokens() -> Any:
    """The caller's API tokens (metadata only)."""
    return jsonify({"items": [t.as_dict() for t in users().list_tokens(g.user.id)]})


@bp.delete("/api/v1/auth/tokens/<int:token_id>")
@requires("viewer")
def revoke_token(token_id: int) -> Any:
    """Revoke one of the caller's tokens."""
    users().revoke_token(token_id, g.user.id)
    return jsonify({"revoked": token_id})


@bp.delete("/api/v1/auth/token")
@requires("viewer")
def revoke_current_token() -> Any:
    """Revoke the bearer token this request was made with."""
    if g.token_id is None:
        raise ApiError(400, "this request was not made with a bearer token")
    users().revoke_token(g.token_id, g.user.id)
    return jsonify({"revoked": g.token_id})


class PasswordBody(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


@bp.post("/api/v1/auth/password")
@requires("viewer")
def change_password() -> Any:
    """Change the signed-in user's password: every session and API token of the account ends; this browser gets a
    fresh session. {"current_password", "new_password"} -> {"changed", "sessions_ended", "tokens_revoked"}."""
    body = read_model(PasswordBody)
    limiter = login_limiter()
    limiter.check()  # the current password is a guess like any other
    if users().authenticate(g.user.username, body.current_password) is None:
        raise ApiError(400, "the current password is wrong")
    limiter.forgive(client_address())
    tokens = sum(1 for t in users().list_tokens(g.user.id) if t.revoked is None)
    user = users().set_password(g.user.username, body.new_password)
    if g.auth_method == "session":
        sign_in(user)  # the old session ended with the others; the one who changed it stays signed in
    log.info("user %s changed their password from %s", user.username, client_address())
    return jsonify({"changed": user.username, "tokens_revoked": tokens})
