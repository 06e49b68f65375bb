"""Authentication, roles, CSRF protection, login rate limiting and the session secret of the web studio.

Every route requires a signed-in user unless its view is marked `@public` (login, first-run setup, static files,
token exchange), and every other view states the least role it needs with `@requires("viewer"|"labeller"|"admin")`
(a view without one is admin-only, and tests/web/test_roles.py fails on it). Browsers authenticate with the session
cookie, which carries only a random session id that `UserStore` keeps server-side (sign-out and a password change
end it), and must echo the session's CSRF token on every unsafe request (form field `csrf_token` or header
`X-CSRF-Token`); API clients send `Authorization: Bearer <token>` instead, which needs no CSRF token because
browsers never attach it on their own. Checking either only reads the disk.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from edge.config import EdgeConfig
from edge.store.users import SESSION_LIFETIME_S, User, UserStore, check_role
from edge.web.http import ApiError, is_api_request
from edge.web.services import current_services

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "web_secret_key"  # noqa: S105 - a file name, not a secret
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RATE_LIMITER_KEY = "shelfwatch.login_limiter"
MAX_TRACKED_ADDRESSES = 10_000
SESSION_ID = "sid"
ROLE_ATTR = "shelfwatch_role"

F = TypeVar("F", bound=Callable[..., Any])


def public(view: F) -> F:
    """Mark a view as reachable without signing in."""
    view.shelfwatch_public = True  # type: ignore[attr-defined]
    return view


def requires(role: str) -> Callable[[F], F]:
    """Mark a view with the least role that may call it: viewer (read), labeller (capture, tag, review), admin."""
    check_role(role)

    def mark(view: F) -> F:
        setattr(view, ROLE_ATTR, role)
        return view

    return mark


def template_page(bp: Blueprint, rule: str, template: str, *, endpoint: str = "page") -> None:
    """Register GET `rule` as a page for every signed-in role that only renders `template`: its data comes from
    the API, by the page's script."""

    @requires("viewer")
    def view() -> str:
        return render_template(template)

    view.__name__ = endpoint
    bp.add_url_rule(rule, endpoint, view, methods=["GET"])


def required_role(view: Callable[..., Any]) -> str | None:
    """The role a view was marked with (None: unmarked, which only admins may call)."""
    role = getattr(view, ROLE_ATTR, None)
    return role if isinstance(role, str) else None


def load_secret_key(config: EdgeConfig) -> str:
    """web.secret_key when configured, else a random key generated once into data_dir (mode 0600)."""
    if config.web.secret_key is not None:
        return config.web.secret_key.get_secret_value()
    path = Path(config.data_dir) / SECRET_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text(encoding="ascii").strip()
        if len(key) >= 32:
            return key
        raise RuntimeError(f"{path} is too short to be a session key; delete it to generate a new one") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    log.info("generated the web session key in %s", path)
    return key


class LoginRateLimiter:
    """Sign-in attempts per client address within a sliding minute; over the limit the address gets 429.

    An attempt is counted before its password is hashed, in one step with the check (`acquire`), so parallel
    attempts cannot all pass the check before any of them is counted; a successful sign-in is then forgiven.
    """

    def __init__(self, attempts_per_minute: int, window_seconds: float = 60.0) -> None:
        self.attempts_per_minute = attempts_per_minute
        self.window_seconds = window_seconds
        self._attempts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        attempts = self._attempts.setdefault(address, deque())
        while attempts and attempts[0] <= now - self.window_seconds:
            attempts.popleft()
        return attempts

    def acquire(self, address: str) -> int:
        """Count an attempt now unless the address is over its limit: 0 when counted, else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            if len(self._attempts) >= MAX_TRACKED_ADDRESSES:
                self._forget_quiet(now)
            attempts = self._recent(address, now)
            if len(attempts) >= self.attempts_per_minute:
                return max(1, int(attempts[0] + self.window_seconds - now) + 1)
            attempts.append(now)
            return 0

    def _forget_quiet(self, now: float) -> None:
        """Drop addresses without an attempt inside the window, so many addresses cannot grow the table forever."""
        cutoff = now - self.window_seconds
        for address in [a for a, times in self._attempts.items() if not times or times[-1] <= cutoff]:
            del self._attempts[address]

    def forgive(self, address: str) -> None:
        """Take back the newest counted attempt (it signed in)."""
        with self._lock:
            attempts = self._attempts.get(address)
            if attempts:
                attempts.pop()

    def check(self) -> None:
        """Count an attempt of the current client, or raise 429 when it is over its limit."""
        wait = self.acquire(client_address())
        if wait:
            raise ApiError(
                429, f"too many failed sign-in attempts; try again in {wait} s", headers={"Retry-After": str(wait)}
            )


def client_address() -> str:
    """The address that rate limits apply to (the socket peer; proxies are not trusted)."""
    return request.remote_addr or "unknown"


def login_limiter() -> LoginRateLimiter:
    """The app's login rate limiter."""
    limiter: LoginRateLimiter = current_app.extensions[RATE_LIMITER_KEY]
    return limiter


def users() -> UserStore:
    """The account store of the current app."""
    store = current_services().users
    assert store is not None  # create_app always fills it
    return store


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """403 unless the request carries the session's CSRF token (header or form field)."""
    expected = session.get(CSRF_FIELD)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sent = request.form.get(CSRF_FIELD)
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(403, "CSRF token missing or wrong: reload the page and try again")


def sign_in(user: User) -> None:
    """Start a fresh server-side session for the user (a new session id and CSRF token: a planted one is useless)."""
    sid = users().start_session(user.id)
    session.clear()
    session.permanent = True
    session[SESSION_ID] = sid
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def sign_out() -> None:
    """End the current session here and on the server (the cookie is worthless afterwards, even if kept)."""
    sid = session.get(SESSION_ID)
    if isinstance(sid, str):
        users().end_session(sid)
    session.clear()


def safe_next(target: str | None) -> str:
    """A same-site path to return to after signing in (never another host)."""
    if not target:
        return url_for("home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("home")
    return target


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _authenticate() -> Any:
    """Before every request: find the user; refuse anonymous requests to non-public views; check CSRF."""
    g.user = None
    g.auth_method = None
    g.token_id = None
    token = _bearer_token()
    if token is not None:
        found = users().user_for_token(token)
        if found is None:
            raise ApiError(401, "the bearer token is invalid or revoked", headers={"WWW-Authenticate": "Bearer"})
        g.user, g.token_id = found
        g.auth_method = "token"
    elif isinstance(session.get(SESSION_ID), str):
        g.user = users().user_for_session(session[SESSION_ID])
        if g.user is None:  # signed out, password changed, expired or the account removed
            session.clear()
        else:
            g.auth_method = "session"
    elif session.get("uid") is not None:  # a cookie from before server-side sessions: sign in again
        session.clear()

    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or request.endpoint == "static" or getattr(view, "shelfwatch_public", False):
        return None  # unknown routes fall through to 404; public views do their own CSRF checks
    if g.user is None:
        if is_api_request():
            raise ApiError(401, "sign in or send a bearer token", headers={"WWW-Authenticate": "Bearer"})
        if users().count() == 0:
            return redirect(url_for("auth.setup"))
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if g.auth_method == "session" and request.method not in SAFE_METHODS:
        check_csrf()
    needed = required_role(view)
    if needed is None:
        log.warning("view %s states no role; only admins may call it", request.endpoint)
        needed = "admin"
    if not g.user.may(needed):
        raise ApiError(403, f"your role ({g.user.role}) may not do this; it needs {needed} (ask an admin)")
    return None


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked Secure whenever the request itself came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def init_security(app: Flask, config: EdgeConfig) -> None:
    """Install the session settings, the rate limiter and the authentication hook on the app."""
    app.secret_key = load_secret_key(config)
    app.session_interface = _SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="shelfwatch_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME_S,
    )
    app.extensions[RATE_LIMITER_KEY] = LoginRateLimiter(config.web.login_attempts_per_minute)
    app.before_request(_authenticate)
    app.jinja_env.globals["csrf_token"] = csrf_token
