"""Web studio accounts, their roles, sign-in sessions and API tokens in one SQLite file (`<data_dir>/users.sqlite3`).

Passwords are hashed with Argon2id (argon2-cffi, OWASP's parameters: 19 MiB, 2 passes, 1 lane) and verified in
constant time; hashes of an older scheme (scrypt, N=2^14) are still accepted and replaced at the next successful
sign-in. At most HASH_CONCURRENCY hashes run at once, so parallel sign-ins cannot take the device's memory.

Sessions live here, not in the cookie: the cookie carries a random session id, the file keeps its SHA-256, so a
session can be ended (sign-out, password change, account removed) and a copy of the file hands out nothing. API
tokens work the same way (random, shown once, only the SHA-256 stored). Checking a session or a token only reads:
`last_used` of a token is written at most once a minute and only when the disk allows, so a full disk does not lock
anyone out. The file is created mode 0600 (and an older, wider file is narrowed at start).

Roles: `admin` (everything: models, deployment, training, zones, users), `labeller` (capture, tag, review: the
dataset) and `viewer` (read only). Accounts made before roles existed become admins when they were admins and
labellers otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from edge.attributes import attributes
from edge.errors import ConflictError, NotFoundError, ShelfwatchError

log = logging.getLogger(__name__)

USERS_DB = "users.sqlite3"
TOKEN_PREFIX = "sw_"  # noqa: S105 - a marker that makes tokens recognisable, not a secret
MIN_PASSWORD_LENGTH = 8
MAX_TOKEN_NAME = 100
SESSION_LIFETIME_S = 7 * 24 * 3600
LAST_USED_RESOLUTION_S = 60.0  # a token's last_used is rewritten at most this often
HASH_CONCURRENCY = 2
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Role = Literal["viewer", "labeller", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "labeller", "admin")  # each role may do everything the ones before it may
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}

# OWASP Password Storage Cheat Sheet (2025), Argon2id: m=19 MiB, t=2, p=1.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16)
_HASH_SLOTS = threading.BoundedSemaphore(HASH_CONCURRENCY)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    role TEXT NOT NULL DEFAULT 'viewer'
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
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sid_sha256 TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
"""


class AuthError(ShelfwatchError):
    """A user name, password, role or token is unacceptable."""


def role_allows(role: str, needed: str) -> bool:
    """Whether an account of `role` may do what needs `needed` (admin > labeller > viewer)."""
    return _RANK.get(role, -1) >= _RANK[needed]


def check_role(role: str) -> Role:
    """`role` when it is one of ROLES, else AuthError naming them."""
    if role not in _RANK:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return cast(Role, role)


@dataclass(frozen=True)
class User:
    """An account of the web studio."""

    id: int
    username: str
    role: Role
    created: float

    @property
    def is_admin(self) -> bool:
        """Whether the account is an admin."""
        return self.role == "admin"

    def may(self, needed: str) -> bool:
        """Whether this account's role allows what needs `needed`."""
        return role_allows(self.role, needed)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (never includes the hash)."""
        return attributes(self, "id", "username", "role", "is_admin", "created")


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


def _account(db: sqlite3.Connection, username: str) -> sqlite3.Row:
    """The account's row (id, username, role, created) by name; NotFoundError when there is none."""
    row: sqlite3.Row | None = db.execute(
        "SELECT id, username, role, created FROM users WHERE username = ?", (username,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no user {username!r}")
    return row


def hash_password(password: str) -> str:
    """An Argon2id hash string (PHC format, `$argon2id$v=19$m=...`) with a fresh random salt."""
    with _HASH_SLOTS:
        return _HASHER.hash(password)


def _verify_scrypt(password: str, stored: str) -> bool:
    """The scheme before Argon2id: `scrypt$n$r$p$salt$hash`."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt" or int(n) > 2**20:
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (Argon2id, or the older scrypt form)."""
    with _HASH_SLOTS:
        if stored.startswith("scrypt$"):
            return _verify_scrypt(password, stored)
        try:
            return bool(_HASHER.verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash is of an older scheme or weaker parameters than hash_password makes today."""
    if not stored.startswith("$argon2"):
        return True
    try:
        return bool(_HASHER.check_needs_rehash(stored))
    except InvalidHashError:
        return True


def token_digest(token: str) -> str:
    """The SHA-256 hex digest under which a token or session id is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_dummy_hash: str | None = None


def _dummy() -> str:
    """A fixed hash to verify against for unknown names, so a login costs the same time either way."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password("shelfwatch-no-such-user")
    return _dummy_hash


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


class UserStore:
    """Accounts, sessions and API tokens, one SQLite file, safe to share between request threads."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / USERS_DB
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        _create_private(self.path)
        with self._connect() as db:  # writes only when the file is new or older (a full disk still starts)
            if all(_has_table(db, t) for t in ("users", "api_tokens", "sessions")) and _has_column(db, "role"):
                return
            if _has_table(db, "users") and not _has_column(db, "role"):
                # Before roles: admins stay admins; the others could do everything an admin could but were not
                # meant to be admins, so they become labellers.
                db.execute("ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'viewer'")
                db.execute("UPDATE users SET role = CASE WHEN is_admin THEN 'admin' ELSE 'labeller' END")
                log.info("%s: accounts migrated to roles (admins stay admins, the others are labellers)", self.path)
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short connection per call: requests run on many threads and these calls are short.
        with self._lock:
            db = sqlite3.connect(self.path, timeout=10)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys = ON")
            try:
                with db:
                    yield db
            finally:
                db.close()

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        """The rows of one read in a connection of its own."""
        with self._connect() as db:
            return db.execute(sql, params).fetchall()

    def _row(self, sql: str, params: tuple[object, ...]) -> sqlite3.Row | None:
        """The first row of one read in a connection of its own, or None."""
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    # -- accounts --------------------------------------------------------------------------------------------------

    def count(self) -> int:
        """How many accounts exist (0 means the studio shows 'create the admin')."""
        return int(self._rows("SELECT COUNT(*) FROM users")[0][0])

    def create(self, username: str, password: str, *, is_admin: bool = False, role: str | None = None) -> User:
        """Create an account of `role` (default viewer; `is_admin=True` means admin); the name must be new."""
        chosen = check_role(role) if role is not None else ("admin" if is_admin else "viewer")
        return self._insert(username, password, role=chosen, only_if_empty=False)

    def create_first_admin(self, username: str, password: str) -> User:
        """Create the admin only while no account exists (the first-run page); ConflictError afterwards."""
        return self._insert(username, password, role="admin", only_if_empty=True)

    def _insert(self, username: str, password: str, *, role: Role, only_if_empty: bool) -> User:
        if not _USERNAME.match(username):
            raise AuthError(
                f"user name {username!r} must be 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter "
                "or digit"
            )
        _check_password(password)
        password_hash = hash_password(password)
        created = time.time()
        # The emptiness check and the insert are one statement, so two first-run forms cannot both win.
        guard = " WHERE NOT EXISTS (SELECT 1 FROM users)" if only_if_empty else ""
        try:
            with self._connect() as db:
                cur = db.execute(
                    "INSERT INTO users (username, password_hash, is_admin, created, role) SELECT ?, ?, ?, ?, ?" + guard,
                    (username, password_hash, int(role == "admin"), created, role),
                )
                if cur.rowcount == 0:
                    raise ConflictError("an admin already exists; sign in instead")
                user_id = int(cur.lastrowid or 0)
        except sqlite3.IntegrityError as err:
            raise ConflictError(f"user {username!r} already exists") from err
        log.info("created user %s (role %s)", username, role)
        return User(user_id, username, role, created)

    def get(self, user_id: int) -> User | None:
        """The account with this id, or None."""
        row = self._row("SELECT id, username, role, created FROM users WHERE id = ?", (user_id,))
        return _user(row) if row else None

    def by_name(self, username: str) -> User:
        """The account with this name; NotFoundError otherwise."""
        with self._connect() as db:
            row = _account(db, username)
        return _user(row)

    def all(self) -> list[User]:
        """Every account, by name."""
        return [_user(r) for r in self._rows("SELECT id, username, role, created FROM users ORDER BY username")]

    def authenticate(self, username: str, password: str) -> User | None:
        """The account when the name and password match, else None (same cost either way).

        A hash of an older scheme is replaced by an Argon2id hash of the same password (best effort: a full disk
        leaves the old, still valid hash in place).
        """
        row = self._row("SELECT id, username, role, created, password_hash FROM users WHERE username = ?", (username,))
        if row is None:
            verify_password(password, _dummy())
            return None
        stored = str(row["password_hash"])
        if not verify_password(password, stored):
            return None
        if needs_rehash(stored):
            try:
                with self._connect() as db:
                    db.execute(
                        "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                        (hash_password(password), row["id"], stored),
                    )
                log.info("password hash of %s upgraded to Argon2id", row["username"])
            except sqlite3.Error as err:
                log.warning("could not upgrade the password hash of %s: %s", row["username"], err)
        return _user(row)

    def set_password(self, username: str, password: str) -> User:
        """Replace an account's password and end every session and API token it had (they may be someone else's)."""
        _check_password(password)
        new_hash = hash_password(password)
        now = time.time()
        with self._connect() as db:
            row = _account(db, username)
            db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (new_hash, row["id"]))
            sessions = db.execute("DELETE FROM sessions WHERE user_id = ?", (row["id"],)).rowcount
            tokens = db.execute(
                "UPDATE api_tokens SET revoked = ? WHERE user_id = ? AND revoked IS NULL", (now, row["id"])
            ).rowcount
        log.info("password of %s changed: %d session(s) ended, %d token(s) revoked", username, sessions, tokens)
        return _user(row)

    def set_role(self, username: str, role: str) -> User:
        """Give an account another role; the last admin cannot stop being one (ConflictError)."""
        chosen = check_role(role)
        with self._connect() as db:
            row = _account(db, username)
            if row["role"] == "admin" and chosen != "admin" and _admins(db) <= 1:
                raise ConflictError(f"{username} is the only admin; make another admin first")
            db.execute(
                "UPDATE users SET role = ?, is_admin = ? WHERE id = ?", (chosen, int(chosen == "admin"), row["id"])
            )
        log.info("role of %s is now %s", username, chosen)
        return User(int(row["id"]), str(row["username"]), chosen, float(row["created"]))

    def delete(self, username: str) -> None:
        """Remove an account with its sessions and tokens; the last admin cannot be removed (ConflictError)."""
        with self._connect() as db:
            row = _account(db, username)
            if row["role"] == "admin" and _admins(db) <= 1:
                raise ConflictError(f"{username} is the only admin and cannot be removed")
            db.execute("DELETE FROM users WHERE id = ?", (row["id"],))
        log.info("removed user %s", username)

    # -- sessions --------------------------------------------------------------------------------------------------

    def start_session(self, user_id: int, lifetime_s: float = SESSION_LIFETIME_S) -> str:
        """A new session id for the user (kept server-side as its SHA-256; expired sessions are purged)."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self._connect() as db:
            db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            db.execute(
                "INSERT INTO sessions (user_id, sid_sha256, created, expires) VALUES (?, ?, ?, ?)",
                (user_id, token_digest(sid), now, now + lifetime_s),
            )
        return sid

    def user_for_session(self, sid: str) -> User | None:
        """The account of a live session, else None (read only)."""
        digest = token_digest(sid)
        row = self._row(
            "SELECT s.sid_sha256, u.id, u.username, u.role, u.created FROM sessions s "
            "JOIN users u ON u.id = s.user_id WHERE s.sid_sha256 = ? AND s.expires > ?",
            (digest, time.time()),
        )
        if row is None or not hmac.compare_digest(row["sid_sha256"], digest):
            return None
        return _user(row)

    def end_session(self, sid: str) -> bool:
        """End one session (sign-out); whether it existed."""
        with self._connect() as db:
            return db.execute("DELETE FROM sessions WHERE sid_sha256 = ?", (token_digest(sid),)).rowcount > 0

    def session_count(self, user_id: int) -> int:
        """Live sessions of the user."""
        return int(
            self._rows("SELECT COUNT(*) FROM sessions WHERE user_id = ? AND expires > ?", (user_id, time.time()))[0][0]
        )

    # -- API tokens ------------------------------------------------------------------------------------------------

    def issue_token(self, user_id: int, name: str = "") -> tuple[str, ApiToken]:
        """A new random API token for the user: the token (shown once) and its stored metadata."""
        if _CONTROL.search(name):
            raise AuthError("the token name must not contain control characters (NUL, newline, ...)")
        if len(name) > MAX_TOKEN_NAME:
            raise AuthError(f"the token name must have at most {MAX_TOKEN_NAME} characters")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = time.time()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO api_tokens (user_id, token_sha256, name, created) VALUES (?, ?, ?, ?)",
                (user_id, token_digest(token), name, created),
            )
            token_id = int(cur.lastrowid or 0)
        return token, ApiToken(token_id, user_id, name, created, None, None)

    def user_for_token(self, token: str) -> tuple[User, int] | None:
        """The account and token id a valid, unrevoked token belongs to, else None.

        Only reads, except that last_used is refreshed when it is over LAST_USED_RESOLUTION_S old, and only if the
        disk takes the write (a failed write is logged and forgotten).
        """
        if not token.startswith(TOKEN_PREFIX):
            return None
        digest = token_digest(token)
        row = self._row(
            "SELECT t.id AS token_id, t.token_sha256, t.last_used, u.id, u.username, u.role, u.created "
            "FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_sha256 = ? AND t.revoked IS NULL",
            (digest,),
        )
        # The lookup is by digest; comparing again in constant time keeps the check itself timing-safe.
        if row is None or not hmac.compare_digest(row["token_sha256"], digest):
            return None
        now = time.time()
        if row["last_used"] is None or now - float(row["last_used"]) >= LAST_USED_RESOLUTION_S:
            try:
                with self._connect() as db:
                    db.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (now, row["token_id"]))
            except sqlite3.Error as err:
                log.debug("last_used of token %s not recorded: %s", row["token_id"], err)
        return _user(row), int(row["token_id"])

    def list_tokens(self, user_id: int) -> list[ApiToken]:
        """The user's tokens (revoked ones included, newest first)."""
        rows = self._rows(
            "SELECT id, user_id, name, created, last_used, revoked FROM api_tokens WHERE user_id = ? "
            "ORDER BY created DESC, id DESC",
            (user_id,),
        )
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
    return User(int(row["id"]), str(row["username"]), check_role(str(row["role"])), float(row["created"]))


def _admins(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0])


def _has_table(db: sqlite3.Connection, table: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None


def _has_column(db: sqlite3.Connection, column: str) -> bool:
    return any(r["name"] == column for r in db.execute("PRAGMA table_info(users)"))


def _create_private(path: Path) -> None:
    """Create the file mode 0600 (SQLite gives its journal the same mode), or narrow an existing one to 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            log.info("narrowed %s to mode 0600", path)
    else:
        os.close(fd)
