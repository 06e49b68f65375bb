"""Web studio accounts and API tokens in their own SQLite file (`<data_dir>/users.sqlite3`).

Passwords are hashed with scrypt (a memory-hard KDF from the standard library) under a random per-user salt and
verified in constant time. API tokens are random strings shown once; only their SHA-256 is stored, so a copy of
the database does not hand out working tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.errors import ConflictError, NotFoundError, ShelfwatchError

log = logging.getLogger(__name__)

USERS_DB = "users.sqlite3"
TOKEN_PREFIX = "sw_"  # noqa: S105 - a marker that makes tokens recognisable, not a secret
MIN_PASSWORD_LENGTH = 8
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

# scrypt cost: n=2**14, r=8 takes ~50 ms and 16 MiB per hash on a small CPU; slow enough to make offline
# guessing expensive, fast enough for a login form.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_LEN = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_sha256 TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    last_used REAL,
    revoked REAL
);
"""


class AuthError(ShelfwatchError):
    """A user name, password or token is unacceptable."""


@dataclass(frozen=True)
class User:
    """An account of the web studio."""

    id: int
    username: str
    is_admin: bool
    created: float

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (never includes the hash)."""
        return asdict(self)


@dataclass(frozen=True)
class ApiToken:
    """Metadata of an API token (the token itself is never stored)."""

    id: int
    user_id: int
    name: str
    created: float
    last_used: float | None
    revoked: float | None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def hash_password(password: str) -> str:
    """An scrypt hash string `scrypt$n$r$p$salt$hash` with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_SCRYPT_LEN
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored scrypt hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# A fixed hash to verify against when the user does not exist, so that a login for an unknown name costs the
# same time as one for a known name (no user enumeration by timing).
_DUMMY_HASH = hash_password("shelfwatch-no-such-user")


class UserStore:
    """Accounts and API tokens, one SQLite file, safe to share between request threads."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / USERS_DB
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short connection per call: requests run on many threads and these calls are rare.
        with self._lock:
            db = sqlite3.connect(self.path, timeout=10)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys = ON")
            try:
                with db:
                    yield db
            finally:
                db.close()

    def count(self) -> int:
        """How many accounts exist (0 means the studio shows 'create the admin')."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def create(self, username: str, password: str, *, is_admin: bool = False) -> User:
        """Create an account; the name must be new and the password at least MIN_PASSWORD_LENGTH characters."""
        return self._insert(username, password, is_admin=is_admin, only_if_empty=False)

    def create_first_admin(self, username: str, password: str) -> User:
        """Create the admin only while no account exists (the first-run page); ConflictError afterwards."""
        return self._insert(username, password, is_admin=True, only_if_empty=True)

    def _insert(self, username: str, password: str, *, is_admin: bool, only_if_empty: bool) -> User:
        if not _USERNAME.match(username):
            raise AuthError(
                f"user name {username!r} must be 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter "
                "or digit"
            )
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AuthError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
        password_hash = hash_password(password)
        created = time.time()
        # The emptiness check and the insert are one statement, so two first-run forms cannot both win.
        guard = " WHERE NOT EXISTS (SELECT 1 FROM users)" if only_if_empty else ""
        try:
            with self._connect() as db:
                cur = db.execute(
                    "INSERT INTO users (username, password_hash, is_admin, created) SELECT ?, ?, ?, ?" + guard,
                    (username, password_hash, int(is_admin), created),
                )
                if cur.rowcount == 0:
                    raise ConflictError("an admin already exists; sign in instead")
                user_id = int(cur.lastrowid or 0)
        except sqlite3.IntegrityError as err:
            raise ConflictError(f"user {username!r} already exists") from err
        log.info("created user %s (admin=%s)", username, is_admin)
        return User(user_id, username, is_admin, created)

    def get(self, user_id: int) -> User | None:
        """The account with this id, or None."""
        with self._connect() as db:
            row = db.execute("SELECT id, username, is_admin, created FROM users WHERE id = ?", (user_id,)).fetchone()
        return _user(row) if row else None

    def all(self) -> list[User]:
        """Every account, by name."""
        with self._connect() as db:
            rows = db.execute("SELECT id, username, is_admin, created FROM users ORDER BY username").fetchall()
        return [_user(r) for r in rows]

    def authenticate(self, username: str, password: str) -> User | None:
        """The account when the name and password match, else None (same cost either way)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT id, username, is_admin, created, password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        if row is None:
            verify_password(password, _DUMMY_HASH)
            return None
        return _user(row) if verify_password(password, row["password_hash"]) else None

    def set_password(self, username: str, password: str) -> None:
        """Replace an account's password."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AuthError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
        with self._connect() as db:
            cur = db.execute(
                "UPDATE users SET password_hash = ? WHERE username = ?", (hash_password(password), username)
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"no user {username!r}")

    def issue_token(self, user_id: int, name: str = "") -> tuple[str, ApiToken]:
        """A new random API token for the user: the token (shown once) and its stored metadata."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = time.time()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO api_tokens (user_id, token_sha256, name, created) VALUES (?, ?, ?, ?)",
                (user_id, token_digest(token), name[:100], created),
            )
            token_id = int(cur.lastrowid or 0)
        return token, ApiToken(token_id, user_id, name[:100], created, None, None)

    def user_for_token(self, token: str) -> tuple[User, int] | None:
        """The account and token id a valid, unrevoked token belongs to, else None."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        digest = token_digest(token)
        with self._connect() as db:
            row = db.execute(
                "SELECT t.id AS token_id, t.token_sha256, u.id, u.username, u.is_admin, u.created "
                "FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_sha256 = ? AND t.revoked IS NULL",
                (digest,),
            ).fetchone()
            # The lookup is by digest; comparing again in constant time keeps the check itself timing-safe.
            if row is None or not hmac.compare_digest(row["token_sha256"], digest):
                return None
            db.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (time.time(), row["token_id"]))
        return _user(row), int(row["token_id"])

    def list_tokens(self, user_id: int) -> list[ApiToken]:
        """The user's tokens (revoked ones included, newest first)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, user_id, name, created, last_used, revoked FROM api_tokens WHERE user_id = ? "
                "ORDER BY created DESC, id DESC",
                (user_id,),
            ).fetchall()
        return [ApiToken(**dict(r)) for r in rows]

    def revoke_token(self, token_id: int, user_id: int) -> None:
        """Revoke one of the user's tokens; NotFoundError when it is not theirs or does not exist."""
        with self._connect() as db:
            cur = db.execute(
                "UPDATE api_tokens SET revoked = ? WHERE id = ? AND user_id = ? AND revoked IS NULL",
                (time.time(), token_id, user_id),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"no active token {token_id}")


def _user(row: sqlite3.Row) -> User:
    return User(int(row["id"]), str(row["username"]), bool(row["is_admin"]), float(row["created"]))
