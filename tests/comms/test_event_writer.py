"""The event writer works on its own thread: the pipeline's submit returns before the snapshot is drawn or anything
is committed; events keep their order under a burst; what was committed before a SIGKILL all reaches the outbox
after the restart, in order (real SQLite files, a real killed process)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.comms.outbox import Outbox
from edge.events import Event, EventDraft, EventLog, EventWriter, Snapshot, SnapshotStore
from edge.pipeline.zone_scoring import annotate_snapshot, event_snapshot
from tests.helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
POLYGON = ((0.1, 0.1), (0.6, 0.1), (0.6, 0.8), (0.1, 0.8))
BOX = (0.2, 0.2, 0.4, 0.5)


def draft(camera: str, n: int) -> EventDraft:
    phase = "start" if n % 2 == 0 else "end"
    return EventDraft(phase, camera, f"z{n % 3}", "empty", 0.9, BOX, f"2026-12-03T07:00:00.{n:03d}Z", "m", "1")


def frame(value: int = 90) -> np.ndarray:
    image = np.full((72, 128, 3), value, dtype=np.uint8)
    image.flags.writeable = False  # as a capture publishes its frames
    return image


def to_outbox(outbox: Outbox) -> Any:
    def publish(event: Event) -> None:  # what the MQTT communicator's publish_durable does
        outbox.put("events", event.to_json().encode(), key=event.id)

    return publish


def in_seq_order(db: Path) -> list[tuple[str, str, str]]:
    """(id, camera, ts) of every committed event, by seq (read-only, as another process would)."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [(str(a), str(b), str(c)) for a, b, c in con.execute("SELECT id, camera, ts FROM events ORDER BY seq")]
    except sqlite3.OperationalError:  # the table is not there yet
        return []
    finally:
        con.close()


def each_camera_in_order(rows: list[tuple[str, str, str]]) -> bool:
    by_camera: dict[str, list[str]] = {}
    for _, camera, ts in rows:
        by_camera.setdefault(camera, []).append(ts)
    return all(stamps == sorted(stamps) for stamps in by_camera.values())


class GatedLog(EventLog):
    """A real event log whose commits wait for a gate, and which notes the thread that commits."""

    def __init__(self, path: Path, gate: threading.Event) -> None:
        super().__init__(path, "dev1")
        self.gate = gate
        self.threads: list[str] = []

    def record(self, draft: EventDraft) -> Event:
        self.threads.append(threading.current_thread().name)
        assert self.gate.wait(10), "the gate never opened"
        return super().record(draft)


def test_submit_returns_before_the_commit_and_the_snapshot_is_drawn_on_the_writer_thread(tmp_path: Path) -> None:
    gate = threading.Event()
    log = GatedLog(tmp_path / "events.db", gate)
    outbox = Outbox(tmp_path / "outbox.db")
    drawn_on: list[str] = []

    def render(image: np.ndarray) -> np.ndarray:
        drawn_on.append(threading.current_thread().name)
        return annotate_snapshot(image, POLYGON, "low_stock", BOX)

    writer = EventWriter(log, to_outbox(outbox), SnapshotStore(tmp_path / "snaps", 10))
    try:
        writer.submit(draft("cam", 0), Snapshot(frame(), render))
        # Returned while the commit still waits at the gate: nothing is in the log, the outbox or the snapshots yet.
        assert log.count() == 0 and outbox.depth() == 0 and drawn_on == []
        assert writer.unwritten == 1 and writer.written == 0
        gate.set()
        assert writer.flush(timeout=10) == 0
        assert log.count() == 1 and outbox.depth() == 1 and writer.written == 1
        assert log.threads == ["event-writer"] and drawn_on == ["event-writer"]
        assert threading.current_thread().name not in log.threads
        event = log.list()[0]
        jpeg = cv2.imread(str(log_snapshot(tmp_path, event.id)))
        assert jpeg is not None and jpeg.shape == (72, 128, 3)
        assert log.unqueued() == []
    finally:
        writer.stop()
        log.close()
        outbox.close()


def log_snapshot(tmp_path: Path, event_id: str) -> Path:
    path = SnapshotStore(tmp_path / "snaps", 10).path(event_id)
    assert path is not None, "no snapshot"
    return path


def test_event_snapshot_defers_only_read_only_frames() -> None:
    captured = frame()
    later = event_snapshot(captured, POLYGON, "low_stock", BOX)
    assert isinstance(later, Snapshot) and later.frame is captured  # no copy on the pipeline thread
    assert np.array_equal(later.image(), annotate_snapshot(captured, POLYGON, "low_stock", BOX))
    writable = np.full((72, 128, 3), 90, dtype=np.uint8)
    now = event_snapshot(writable, POLYGON, "low_stock", BOX)  # it could change before the writer draws it
    assert isinstance(now, np.ndarray) and np.array_equal(now, annotate_snapshot(writable, POLYGON, "low_stock", BOX))
    assert now is not writable


def test_a_burst_of_several_cameras_is_written_in_order_with_bounded_snapshots(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db", "dev1")
    outbox = Outbox(tmp_path / "outbox.db")
    snaps = SnapshotStore(tmp_path / "snaps", 1000)
    writer = EventWriter(log, to_outbox(outbox), snaps, max_snapshots=4)
    cameras, per_camera = 4, 40
    start = threading.Barrier(cameras)

    def camera(c: int) -> None:  # a camera's pipeline thread, raising events as fast as it can
        start.wait()
        for n in range(per_camera):
            writer.submit(draft(f"cam{c}", n), event_snapshot(frame(c * 40), POLYGON, "low_stock", BOX))

    threads = [threading.Thread(target=camera, args=(c,)) for c in range(cameras)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert writer.flush(timeout=60) == 0
        rows = in_seq_order(tmp_path / "events.db")
        assert len(rows) == cameras * per_camera and writer.dropped == 0
        assert each_camera_in_order(rows)
        assert [m.key for m in outbox.peek(limit=1000)] == [r[0] for r in rows]  # the outbox in seq order
        assert log.unqueued() == []
        kept = sorted(p.stem for p in (tmp_path / "snaps").glob("*.jpg"))
        assert len(kept) + writer.snapshots_skipped == cameras * per_camera  # at most 4 frames waited at a time
        assert kept and set(kept) <= {r[0] for r in rows}
    finally:
        writer.stop()
        log.close()
        outbox.close()


CHILD = """
import sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from edge.comms.outbox import Outbox
from edge.events import EventLog, EventWriter, SnapshotStore
from tests.comms.test_event_writer import POLYGON, BOX, draft, frame, to_outbox
from edge.pipeline.zone_scoring import event_snapshot
data = Path(sys.argv[1])
log, outbox = EventLog(data / "events.db", "dev1"), Outbox(data / "outbox.db")
writer = EventWriter(log, to_outbox(outbox), SnapshotStore(data / "snaps", 1000))
def camera(c):
    for n in range(120):
        writer.submit(draft(f"cam{c}", n), event_snapshot(frame(c * 40), POLYGON, "low_stock", BOX))
threads = [threading.Thread(target=camera, args=(c,)) for c in range(3)]
for t in threads: t.start()
for t in threads: t.join()
print("submitted", flush=True)
time.sleep(600)
"""


def test_every_event_committed_before_a_sigkill_reaches_the_outbox_in_order_after_the_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(REPO)], cwd=REPO)
    try:
        assert wait_until(lambda: len(in_seq_order(data / "events.db")) >= 40, timeout=60)
        proc.send_signal(signal.SIGKILL)  # mid-burst: the writer was committing events one after another
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    committed = in_seq_order(data / "events.db")  # "written": what the event log committed before the kill
    assert len(committed) >= 40 and each_camera_in_order(committed)

    log, outbox = EventLog(data / "events.db", "dev1"), Outbox(data / "outbox.db")
    writer = EventWriter(log, to_outbox(outbox))
    try:
        writer.requeue(log.unqueued())  # what the agent's start does
        keys = [str(m.key) for m in outbox.peek(limit=10_000)]
        first_seen = list(dict.fromkeys(keys))
        assert first_seen == [r[0] for r in committed]  # every committed event, in seq order
        assert len(keys) - len(first_seen) <= 1  # at most the one killed between its outbox put and its mark
        assert log.unqueued() == []
    finally:
        writer.stop()
        log.close()
        outbox.close()
