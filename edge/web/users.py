"""User management for admins: the /users page and /api/v1/users (list, add with a role, change role or password,
remove). Setting another user's password ends that user's sessions and API tokens, as `shelfwatch users passwd`
does. The last admin can be neither demoted nor removed (409)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, g, jsonify, render_template
from pydantic import BaseModel, ConfigDict, Field

from edge.store.users import ROLES, Role
from edge.web.http import ApiError, read_model
from edge.web.security import requires, sign_out, users

log = logging.getLogger(__name__)

bp = Blueprint("users", __name__)


class NewUserBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Role = "viewer"


class UserChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Role | None = None
    password: str | None = Field(None, min_length=1, max_length=1024)


@bp.get("/users")
@requires("admin")
def page() -> str:
    """The admins' page: accounts with their roles; add, change role, set password, remove."""
    return render_template("users.html", roles=ROLES)


@bp.get("/api/v1/users")
@requires("admin")
def list_users() -> Any:
    """Every account: {"items": [{id, username, role, is_admin, created}], "roles": [...]}."""
    return jsonify({"items": [u.as_dict() for u in users().all()], "roles": list(ROLES)})


@bp.post("/api/v1/users")
@requires("admin")
def add_user() -> Any:
    """{"username", "password", "role"} -> 201 the new account."""
    body = read_model(NewUserBody)
    user = users().create(body.username, body.password, role=body.role)
    log.info("%s added user %s (%s)", g.user.username, user.username, user.role)
    return jsonify(user.as_dict()), 201


@bp.patch("/api/v1/users/<username>")
@requires("admin")
def change_user(username: str) -> Any:
    """{"role"} and/or {"password"} (a new password ends the account's sessions and tokens) -> the account."""
    body = read_model(UserChangeBody)
    if body.role is None and body.password is None:
        raise ApiError(400, "send role and/or password")
    user = users().by_name(username)
    if body.role is not None:
        user = users().set_role(username, body.role)
    if body.password is not None:
        users().set_password(username, body.password)
        if user.id == g.user.id and g.auth_method == "session":
            sign_out()
    log.info("%s changed user %s", g.user.username, username)
    return jsonify(user.as_dict())


@bp.delete("/api/v1/users/<username>")
@requires("admin")
def remove_user(username: str) -> Any:
    """Remove an account with its sessions and tokens."""
    users().delete(username)
    log.info("%s removed user %s", g.user.username, username)
    return jsonify({"removed": username})
