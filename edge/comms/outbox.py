"""A durable, ordered queue of messages that must reach the broker (low-stock events).

A message is committed to SQLite (WAL, synchronous=FULL) before anyone tries to publish it and deleted only when
the broker acknowledged it (QoS 1 PUBACK). After a broker outage or an agent restart (SIGKILL included) the
remaining rows are sent again from the oldest, with the same payload (so the same event id), which is what makes
delivery at-least-once and in order.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from edge.sqlite_files import move_aside_advice, open_checked

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    key TEXT,
    created REAL NOT NULL DEFAULT (julianday('now'))
);
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (key);
"""


@dataclass(frozen=True)
class OutboxMessage:
    """One queued message; `pos` orders the queue."""

    pos: int
    topic: str
    payload: bytes
    key: str | None


class Outbox:
    """SQLite-backed FIFO of unacknowledged messages (thread-safe)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._acked: set[int] = set()  # acknowledged positions whose delete the disk refused (retried)
        self._db = open_checked(
            path, move_aside_advice(path, "messages in it that the broker has not acknowledged yet are not sent")
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed event survives power loss, not only a killed process.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def put(self, topic: str, payload: bytes, key: str | None = None) -> int:
        """Append a message durably; returns its position."""
        with self._lock:
            cur = self._db.execute("INSERT INTO outbox (topic, payload, key) VALUES (?, ?, ?)", (topic, payload, key))
            pos = cur.lastrowid
        assert pos is not None
        return int(pos)

    def peek(self, after_pos: int = 0, limit: int = 10) -> list[OutboxMessage]:
        """The oldest messages with position > after_pos, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT pos, topic, payload, key FROM outbox WHERE pos > ? ORDER BY pos LIMIT ?",
                (after_pos, limit + len(self._acked)),
            ).fetchall()
            acked = set(self._acked)
        return [OutboxMessage(int(r[0]), str(r[1]), bytes(r[2]), r[3]) for r in rows if int(r[0]) not in acked][:limit]

    def ack(self, pos: int) -> None:
        """The broker has the message: forget it (on a full disk the delete waits in memory and is retried)."""
        with self._lock:
            self._acked.add(pos)
            try:
                for done in sorted(self._acked):
                    self._db.execute("DELETE FROM outbox WHERE pos = ?", (done,))
                    self._acked.discard(done)
            except sqlite3.Error as err:
                # The row stays on disk; it is hidden from peek() and depth() so it is not sent again.
                log.warning("outbox: %d acknowledged message(s) could not be deleted yet: %s", len(self._acked), err)

    def has_key(self, key: str) -> bool:
        """Whether a message with this key is still queued."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM outbox WHERE key = ? LIMIT 1", (key,)).fetchone()
        return row is not None

    def depth(self) -> int:
        """How many messages wait for an acknowledgement."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            return max(0, int(row[0]) - len(self._acked))

    def close(self) -> None:
        """Close the database (pending rows stay for the next start)."""
        with self._lock:
            self._db.close()
