"""The store's SQLite connection: opening (WAL, foreign keys, migrations), short transactions, chunked `IN`.

Thread safety: one connection shared by every thread behind a re-entrant lock. The device's write rate is a few
images a second at most, so serialising calls costs nothing measurable and keeps transactions trivially correct.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from edge.errors import StoreError
from edge.sqlite_files import damaged, quick_check
from edge.store.schema import migrate
from edge.timestamps import utc_now_iso

T = TypeVar("T")

# SQLite limits the number of bound parameters in one statement (999 in older builds).
IN_CHUNK = 500


now = utc_now_iso  # the timestamp the store writes into rows: UTC, seconds, `Z`


def in_chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[tuple[list[T], str]]:
    """(chunk, "?,?,...") pairs covering `values`, for `... WHERE x IN ({marks})` with bound parameters."""
    for start in range(0, len(values), size):
        chunk = list(values[start : start + size])
        yield chunk, ",".join("?" * len(chunk))


class StoreConnection:
    """One SQLite file opened for the store, with the schema brought up to date."""

    def __init__(self, db_path: Path, damage_advice: str = "restore it from a backup") -> None:
        self.path = Path(db_path)
        self.lock = threading.RLock()
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the dataset store in {self.path.parent}: {err}") from err
        try:
            quick_check(conn, self.path, damage_advice)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            migrate(conn, str(self.path))
        except sqlite3.DatabaseError as err:
            conn.close()
            raise damaged(self.path, str(err), damage_advice) from err
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    def close(self) -> None:
        """Close the database; further transactions raise StoreError."""
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextlib.contextmanager
    def tx(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction; IMMEDIATE for writes so the SQLite write lock is taken up front."""
        with self.lock:
            conn = self._conn
            if conn is None:
                raise StoreError("the dataset store is closed")
            if conn.in_transaction:  # re-entered from inside another call: join its transaction
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
