"""Event log numbering and crash re-queue; snapshot retention and safe paths."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from edge.comms.base import NullCommunicator
from edge.events import EventDraft, EventLog, SnapshotStore
from edge.pipeline.reporter import Reporter


def draft(phase: str = "start", zone: str = "z1") -> EventDraft:
    return EventDraft(phase, "cam1", zone, "empty", 0.9, (0.1, 0.2, 0.3, 0.4), "2026-11-21T10:00:00.000Z", "m", "v1")


def test_seq_is_monotonic_across_reopen(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db", "dev1")
    a, b = log.record(draft()), log.record(draft("end"))
    log.close()
    log = EventLog(tmp_path / "events.db", "dev1")
    c = log.record(draft())
    assert a.seq < b.seq < c.seq
    assert a.payload["seq"] == a.seq and a.payload["device"] == "dev1" and a.payload["bbox"] == [0.1, 0.2, 0.3, 0.4]
    assert [e.id for e in log.list()] == [c.id, b.id, a.id]
    assert [e.id for e in log.list(before_seq=c.seq, limit=1)] == [b.id]
    assert log.get(b.id) is not None and log.get(b.id).payload["phase"] == "end"  # type: ignore[union-attr]
    log.close()


class Recording(NullCommunicator):
    def __init__(self) -> None:
        self.durable: list[tuple[str, str]] = []

    def publish_durable(self, topic: str, payload: str, key: str) -> None:
        self.durable.append((topic, key))


def test_events_recorded_but_not_queued_are_requeued_in_order(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db", "dev1")
    first, second = log.record(draft()), log.record(draft("end"))  # a crash before they reached the outbox
    comms = Recording()
    reporter = Reporter(comms, log, SnapshotStore(tmp_path / "snaps", 5))
    assert reporter.requeue_unqueued() == 2
    assert comms.durable == [("events", first.id), ("events", second.id)]
    assert log.unqueued() == [] and reporter.requeue_unqueued() == 0
    log.close()


def test_snapshot_retention_and_paths(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snaps", retention=3)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    for i, event_id in enumerate(ids):
        image[:] = i * 40
        store.save(event_id, image)
    kept = [i for i in ids if store.path(i) is not None]
    assert kept == ids[2:]  # the oldest two were pruned
    assert store.path("../../etc/passwd") is None and store.path("not-a-uuid") is None
    assert store.path(ids[-1]).read_bytes()[:2] == b"\xff\xd8"  # type: ignore[union-attr]
    assert SnapshotStore(tmp_path / "none", retention=0).save(ids[0], image) is None
