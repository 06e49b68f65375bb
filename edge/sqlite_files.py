"""Opening a SQLite file that must be healthy (dataset store, event log, outbox): damage is refused at start with the
file named and what to do.

`PRAGMA quick_check` reads every page (not the cross-checks of indexes against tables that integrity_check also
does), so a corrupt header or page is found at start instead of as a 500 on the first request that touches it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.errors import StoreError

# quick_check stops after this many problems; the first few are enough to tell the user what is wrong.
_MAX_PROBLEMS = 5


def damaged(path: Path, detail: str, advice: str) -> StoreError:
    """The error that refuses a damaged database file."""
    return StoreError(f"{path} is not a usable SQLite database, it is damaged ({detail}); {advice}")


def quick_check(conn: sqlite3.Connection, path: Path, advice: str) -> None:
    """StoreError naming `path` and `advice` unless SQLite's quick_check finds the database sound."""
    try:
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA quick_check({_MAX_PROBLEMS})").fetchall()]
    except sqlite3.DatabaseError as err:
        raise damaged(path, str(err), advice) from err
    if rows != ["ok"]:
        # One line for the log and the CLI: SQLite may put several problems into one row.
        detail = "; ".join(line.strip() for row in rows for line in row.splitlines() if line.strip())
        raise damaged(path, detail[:500], advice)


def open_checked(path: Path, advice: str, *, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection (autocommit, usable from any thread) to a database that passed quick_check.

    Damage, whether a file that is not SQLite at all or a corrupt page, raises StoreError naming the file and
    saying what to do (`advice`) instead of a traceback from the first statement that meets it.
    """
    try:
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=timeout)
    except sqlite3.Error as err:
        raise StoreError(f"cannot open {path}: {err}") from err
    try:
        quick_check(conn, path, advice)
    except BaseException:
        conn.close()
        raise
    return conn


def move_aside_advice(path: Path, consequence: str) -> str:
    """Advice for a file the device can do without: move it aside and restart, saying what that costs."""
    return f"stop shelfwatch, move it aside (mv {path} {path}.damaged) and start again; {consequence}"
