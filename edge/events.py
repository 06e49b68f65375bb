"""Low-stock events: the device's own log of them (SQLite) and their JPEG snapshots (with retention).

The event log assigns each event its `seq` (per device, monotonic across restarts: SQLite AUTOINCREMENT never
reuses a number) and its `id` (uuid4, the identity subscribers de-duplicate on). The payload stored here is the
exact JSON that goes out over MQTT. The web's events route lists events with `EventLog.list()` and serves
`SnapshotStore.path(id)` at the event's `snapshot` path.

Crash safety: an event is first committed here with `queued = 0`, then handed to the durable outbox, then marked
`queued = 1`. On start the agent re-queues every `queued = 0` event, so a kill between the two commits loses nothing
(at worst the event is sent twice with the same id).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.event_seq import SeqHighWaterMark
from edge.sqlite_files import move_aside_advice, open_checked

log = logging.getLogger(__name__)

SNAPSHOT_PATH = "/api/v1/events/{id}/snapshot.jpg"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    camera TEXT NOT NULL,
    zone TEXT NOT NULL,
    phase TEXT NOT NULL,
    payload TEXT NOT NULL,
    queued INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_camera ON events (camera, seq);
CREATE INDEX IF NOT EXISTS events_unqueued ON events (queued) WHERE queued = 0;
"""


@dataclass(frozen=True)
class Event:
    """One low-stock event as published: `payload` is the DESIGN.md JSON object."""

    seq: int
    id: str
    payload: dict[str, Any]

    def to_json(self) -> str:
        """The MQTT payload text."""
        return json.dumps(self.payload, separators=(",", ":"))


@dataclass(frozen=True)
class EventDraft:
    """What the pipeline knows about an event before the log numbers it."""

    phase: str
    camera: str
    zone: str
    label: str | None
    score: float
    bbox: tuple[float, float, float, float] | None
    ts: str
    model_name: str | None
    model_version: str | None


class EventLog:
    """SQLite log of every event (WAL; thread-safe); numbering, listing, and the crash-recovery re-queue list."""

    def __init__(self, path: Path, device_id: str, max_events: int = 100_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.device_id = device_id
        self.max_events = max_events
        self.snapshots: SnapshotStore | None = None  # set by the agent; the web serves snapshot_path()
        self._lock = threading.Lock()
        # Damage is refused at start naming the file; a lost log continues numbering after the seq mark beside it.
        self._db = open_checked(
            path, move_aside_advice(path, "the event log then starts empty and seq continues after the last one")
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._seq_mark = SeqHighWaterMark(path.with_name(f"{path.name}.seq"))
        self._continue_seq()

    def _continue_seq(self) -> None:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        if row is None and self._seq_mark.reserved > 0:
            # A new or emptied log beside a mark: AUTOINCREMENT continues after the sqlite_sequence entry.
            self._db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (self._seq_mark.reserved,))
            log.warning("%s is new or empty: event seq continues after %s", self.path, self._seq_mark.reserved)
        elif row is not None:
            self._seq_mark.cover(int(row[0]))  # a log from before the mark existed

    def record(self, draft: EventDraft) -> Event:
        """Number the event, build its payload and commit it (queued = 0)."""
        event_id = str(uuid.uuid4())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO events (id, ts, camera, zone, phase, payload) VALUES (?, ?, ?, ?, ?, '{}')",
                    (event_id, draft.ts, draft.camera, draft.zone, draft.phase),
                )
                seq = int(cur.lastrowid or 0)
                self._seq_mark.cover(seq)
                payload = {
                    "id": event_id,
                    "seq": seq,
                    "type": "low_stock",
                    "phase": draft.phase,
                    "device": self.device_id,
                    "camera": draft.camera,
                    "zone": draft.zone,
                    "label": draft.label,
                    "score": round(float(draft.score), 4),
                    "bbox": list(draft.bbox) if draft.bbox is not None else None,
                    "ts": draft.ts,
                    "model": {"name": draft.model_name, "version": draft.model_version},
                    "snapshot": SNAPSHOT_PATH.format(id=event_id),
                }
                self._db.execute("UPDATE events SET payload = ? WHERE seq = ?", (json.dumps(payload), seq))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if seq % 1000 == 0:
                self._db.execute("DELETE FROM events WHERE seq <= ?", (seq - self.max_events,))
        return Event(seq, event_id, payload)

    def mark_queued(self, event_id: str) -> None:
        """The outbox holds the event now."""
        with self._lock:
            self._db.execute("UPDATE events SET queued = 1 WHERE id = ?", (event_id,))

    def unqueued(self) -> list[Event]:
        """Events committed here but not yet handed to the outbox (a crash in between), oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, id, payload FROM events WHERE queued = 0 ORDER BY seq").fetchall()
        return [Event(int(r[0]), str(r[1]), json.loads(r[2])) for r in rows]

    def get(self, event_id: str) -> Event | None:
        """One event by id."""
        with self._lock:
            row = self._db.execute("SELECT seq, id, payload FROM events WHERE id = ?", (event_id,)).fetchone()
        return Event(int(row[0]), str(row[1]), json.loads(row[2])) if row else None

    def list(self, camera: str | None = None, limit: int = 50, before_seq: int | None = None) -> list[Event]:
        """Newest first; `before_seq` pages backwards."""
        sql = "SELECT seq, id, payload FROM events WHERE 1 = 1"
        args: list[Any] = []
        if camera is not None:
            sql += " AND camera = ?"
            args.append(camera)
        if before_seq is not None:
            sql += " AND seq < ?"
            args.append(before_seq)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(max(1, min(int(limit), 1000)))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Event(int(r[0]), str(r[1]), json.loads(r[2])) for r in rows]

    def snapshot_path(self, event_id: str) -> Path | None:
        """The JPEG of an event, or None (no snapshot store, never taken, or pruned by retention)."""
        return self.snapshots.path(event_id) if self.snapshots is not None else None

    def count(self) -> int:
        """Events in the log."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class SnapshotStore:
    """One JPEG per event under `<data_dir>/snapshots`, newest `retention` kept."""

    def __init__(self, directory: Path, retention: int, quality: int = 85) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.retention = retention
        self.quality = quality
        self._lock = threading.Lock()

    def path(self, event_id: str) -> Path | None:
        """The snapshot file of an event, or None (never taken, or pruned by retention)."""
        try:
            uuid.UUID(event_id)  # ids are uuids: anything else could be a path trick
        except ValueError:
            return None
        p = self.directory / f"{event_id}.jpg"
        return p if p.is_file() else None

    def save(self, event_id: str, image_bgr: np.ndarray) -> Path | None:
        """Write the frame as JPEG (atomic rename), then drop the oldest beyond retention."""
        if self.retention <= 0:
            return None
        ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            log.warning("snapshot of event %s could not be encoded", event_id)
            return None
        final = self.directory / f"{event_id}.jpg"
        tmp = final.with_suffix(".jpg.tmp")
        tmp.write_bytes(buf.tobytes())
        tmp.replace(final)
        self._prune()
        return final

    def _prune(self) -> None:
        with self._lock:
            files = sorted(self.directory.glob("*.jpg"), key=lambda p: p.stat().st_mtime_ns)
            for old in files[: max(0, len(files) - self.retention)]:
                old.unlink(missing_ok=True)
