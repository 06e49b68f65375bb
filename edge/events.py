"""Low-stock events: the device's own log of them (SQLite) and their JPEG snapshots (with retention).

The event log assigns each event its `seq` (per device, monotonic across restarts: SQLite AUTOINCREMENT never
reuses a number) and its `id` (uuid4, the identity subscribers de-duplicate on). The payload stored here is the
exact JSON that goes out over MQTT. The web's events route lists events with `EventLog.list()` and serves
`SnapshotStore.path(id)` at the event's `snapshot` path.

Crash safety: an event is first committed here with `queued = 0`, then handed to the durable outbox, then marked
`queued = 1`. On start the agent re-queues every `queued = 0` event, so a kill between the two commits loses nothing
(at worst the event is sent twice with the same id). `EventWriter` does all of that on its own thread, in order;
the pipelines only queue their events (and the frame for the snapshot, drawn and encoded there).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
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
    """One low-stock event as published: `payload` is the JSON object of docs/MQTT.md."""

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
    type: str = "low_stock"  # a skill's mqtt_event/webhook block sets its own
    extra: dict[str, Any] | None = None  # a skill event's `skill` and `trace`, added to the payload


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
                    "type": draft.type,
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
                for key, value in (draft.extra or {}).items():
                    payload.setdefault(key, value)
                self._db.execute("UPDATE events SET payload = ? WHERE seq = ?", (json.dumps(payload), seq))
                self._db.execute("COMMIT")
            except BaseException:
                # On a full disk SQLite may already have rolled back (or fail to): never leave a transaction open,
                # or every later BEGIN fails and the log stays dead after space returns.
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
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


# Errors of a write the disk refused (full, read-only, I/O): the event waits in memory and is written later.
STORAGE_ERRORS = (OSError, sqlite3.Error)

# Queued events that keep their frame for the snapshot (each a reference to the capture's read-only frame, no copy:
# 2.7 MB at 720p, events of one frame share it); an event queued beyond this many is written without a snapshot.
MAX_SNAPSHOTS_WAITING = 16


@dataclass(frozen=True)
class Snapshot:
    """An event's picture, drawn and encoded later on the event writer's thread: `render(frame)` (the annotation,
    edge.pipeline.zone_scoring.event_snapshot) or the frame itself. The frame must not change meanwhile: a
    capture's frames are read-only (edge.cameras.capture), and event_snapshot draws at once on any other."""

    frame: np.ndarray
    render: Callable[[np.ndarray], np.ndarray] | None = None

    def image(self) -> np.ndarray:
        """The picture to encode."""
        return self.frame if self.render is None else self.render(self.frame)


SnapshotImage = np.ndarray | Snapshot


@dataclass(eq=False)
class _Unwritten:
    draft: EventDraft
    image: SnapshotImage | None = None  # None when queued while the disk refused writes or beyond max_snapshots
    event: Event | None = None  # numbered and logged, not yet in the outbox
    queued_at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class EventWriter:
    """Records events in the log and hands them to the durable outbox on its own thread, in order.

    `submit` queues the event and returns: the pipeline thread that raised it never waits for the snapshot's JPEG,
    the SQLite commits or the outbox (the writer thread `event-writer` does them, oldest first). An event is
    *written* once the event log committed it (`queued = 0`, synchronous=FULL): from then on nothing loses it, a
    SIGKILL included (the outbox has it, or the next start re-queues it: EventLog.unqueued). Before that it lives
    only in this writer's memory, and nothing outside the process has seen it yet (MQTT, webhooks and the web read
    it from the outbox and the log after that commit); `flush()` waits until everything queued is written.

    Invariants: events reach the log and the outbox in the order they were submitted (one writer thread, FIFO;
    a camera's events come from its one pipeline thread, so a camera's and a zone's events keep their order);
    `submit` never raises for a storage error and never blocks on a write; at most `max_unwritten` events wait in
    memory (beyond that the oldest is dropped, logged and counted); at most `max_snapshots` of them keep a frame
    for their snapshot (beyond, and while the disk refuses writes, an event is queued without one: counted in
    `snapshots_skipped`); when the disk refuses a write the writer retries with exponential backoff
    (`retry_min_seconds` doubling to `retry_max_seconds`) and newer events wait behind the backlog. `problem`
    says what is wrong while anything waits (pipelines show it in their status).
    """

    event_log: EventLog
    publish: Callable[[Event], None]
    snapshots: SnapshotStore | None = None
    _: KW_ONLY
    on_problem: Callable[[str | None, int], None] | None = None
    max_unwritten: int = 1000
    max_snapshots: int = MAX_SNAPSHOTS_WAITING
    retry_min_seconds: float = 0.5
    retry_max_seconds: float = 30.0
    problem: str | None = field(default=None, init=False)
    dropped: int = field(default=0, init=False)
    write_errors: int = field(default=0, init=False)
    written: int = field(default=0, init=False)  # events committed to the log by this writer
    snapshots_skipped: int = field(default=0, init=False)
    _backlog: deque[_Unwritten] = field(default_factory=deque, init=False)
    # The backlog, the retry state and the writer thread's progress; the writer waits on it for work.
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _retry_at: float = field(default=0.0, init=False)
    _backoff: float = field(default=0.0, init=False)
    _passes: int = field(default=0, init=False)  # write passes the writer thread finished
    _thread: threading.Thread | None = field(default=None, init=False)
    _stopped: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._backoff = self.retry_min_seconds

    @property
    def unwritten(self) -> int:
        """Events waiting in memory (for the writer thread, or for the disk)."""
        with self._cond:
            return len(self._backlog)

    def submit(self, draft: EventDraft, image: SnapshotImage | None = None) -> None:
        """Queue one event for the writer thread (in order) and return at once."""
        with self._cond:
            if image is not None and (
                self.problem is not None or sum(1 for u in self._backlog if u.image is not None) >= self.max_snapshots
            ):
                self.snapshots_skipped += 1
                if self.problem is None:
                    log.warning(
                        "event %s %s/%s of %s is queued without its snapshot: %d snapshots already wait",
                        draft.phase, draft.camera, draft.zone, draft.ts, self.max_snapshots,
                    )  # fmt: skip
                image = None
            self._backlog.append(_Unwritten(draft, image))
            if len(self._backlog) > self.max_unwritten:
                lost = self._backlog.popleft()
                self.dropped += 1
                log.error(
                    "event %s %s/%s of %s dropped: %d events already wait for the disk",
                    lost.draft.phase, lost.draft.camera, lost.draft.zone, lost.draft.ts, self.max_unwritten,
                )  # fmt: skip
            self._wake()

    def requeue(self, events: list[Event]) -> None:
        """Events the log holds but the outbox never got (a crash in between): queue them first, in order, and
        wait until they are written (or the disk refused them)."""
        with self._cond:
            for event in reversed(events):
                self._backlog.appendleft(_Unwritten(_draft_of(event), event=event))
        self.flush()

    def flush(self, timeout: float | None = None) -> int:
        """Write everything queued now (also during a retry's backoff) and wait until it is written, the disk
        refused it, or `timeout` passed; how many events still wait (tests, shutdown, start-up)."""
        with self._cond:
            if not self._backlog or self._stopped:
                return len(self._backlog)
            self._retry_at = 0.0  # try now
            target = self._passes + 1  # a pass running now goes on until the backlog is empty or the disk refuses
            self._wake()
            self._cond.wait_for(lambda: self._passes >= target or not self._backlog or self._stopped, timeout)
            return len(self._backlog)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the writer thread (what still waits is lost with the process; the log says how many). A graceful
        stop calls `flush()` before this (the agent does)."""
        with self._cond:
            self._stopped = True
            thread = self._thread
            left = len(self._backlog)
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if left:
            log.error("%d event(s) could not be written before stopping (storage: %s)", left, self.problem)

    def _wake(self) -> None:
        """Under the lock: tell the writer thread (started on first use) that there is work."""
        if self._stopped:
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _run(self) -> None:
        """The writer thread: a pass over the backlog whenever there is one, after the backoff when the disk refused."""
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    if self._backlog:
                        delay = self._retry_at - time.monotonic() if self.problem is not None else 0.0
                        if delay <= 0:
                            break
                        self._cond.wait(delay)
                    else:
                        self._cond.wait()
            try:
                self._write_all()
            finally:
                with self._cond:
                    self._passes += 1
                    self._cond.notify_all()

    def _write_all(self) -> bool:
        """Write from the oldest until done or the disk refuses; True when it refused."""
        while True:
            with self._cond:
                if not self._backlog or self._stopped:
                    break
                item = self._backlog[0]
            try:
                if item.event is None:
                    item.event = self.event_log.record(item.draft)
                    with self._cond:
                        self.written += 1
                    if item.image is not None and self.snapshots is not None:
                        self._save_snapshot(item.event, item.image)
                item.image = None
                self.publish(item.event)
            except STORAGE_ERRORS as err:
                self._failed(err)
                return True
            with contextlib.suppress(*STORAGE_ERRORS):
                # Best effort: an event left unmarked is queued again at the next start (same id).
                self.event_log.mark_queued(item.event.id)
            with self._cond:
                with contextlib.suppress(ValueError):  # gone only if dropped as the oldest meanwhile
                    self._backlog.remove(item)
        self._recovered()
        return False

    def _save_snapshot(self, event: Event, image: SnapshotImage) -> None:
        assert self.snapshots is not None
        try:
            picture = image.image() if isinstance(image, Snapshot) else image
            self.snapshots.save(event.id, picture)
        except STORAGE_ERRORS as err:  # the event matters more than its picture
            log.error("snapshot of event %s could not be written: %s", event.id, err)
        except Exception:
            log.exception("snapshot of event %s could not be drawn", event.id)

    def _failed(self, err: Exception) -> None:
        with self._cond:
            self.write_errors += 1
            first = self.problem is None
            self._retry_at = time.monotonic() + self._backoff
            delay = self._backoff
            self._backoff = min(self._backoff * 2, self.retry_max_seconds)
            waiting = len(self._backlog)
            self.problem = f"events cannot be stored ({err}); {waiting} wait in memory, retrying"
        if first:
            log.error("%s (next try in %.1f s)", self.problem, delay)
        if self.on_problem is not None:
            self.on_problem(self.problem, waiting)

    def _recovered(self) -> None:
        with self._cond:
            was = self.problem
            self.problem = None
            self._backoff = self.retry_min_seconds
            self._retry_at = 0.0
        if was is not None:
            log.warning("events are stored again; the backlog is written")
            if self.on_problem is not None:
                self.on_problem(None, 0)


def _draft_of(event: Event) -> EventDraft:
    """The draft an already-logged event came from (for the backlog's bookkeeping)."""
    p = event.payload
    model = p.get("model") or {}
    bbox = p.get("bbox")
    return EventDraft(
        phase=str(p.get("phase")),
        camera=str(p.get("camera")),
        zone=str(p.get("zone")),
        label=p.get("label"),
        score=float(p.get("score") or 0.0),
        bbox=tuple(bbox) if isinstance(bbox, list) and len(bbox) == 4 else None,  # type: ignore[arg-type]
        ts=str(p.get("ts")),
        model_name=model.get("name"),
        model_version=model.get("version"),
    )
