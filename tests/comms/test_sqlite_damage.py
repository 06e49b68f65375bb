"""A damaged or lost events.db / outbox.db: refused naming the file; seq stays monotonic across a lost event log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.comms.outbox import Outbox
from edge.errors import StoreError
from edge.events import EventDraft, EventLog

REPO = Path(__file__).resolve().parents[2]
NOT_SQLITE = b"SQLite format 2\x00" + b"\x00garbage" * 512


def draft(phase: str = "start") -> EventDraft:
    return EventDraft(phase, "cam1", "z1", "empty", 0.9, None, "2026-11-21T10:00:00.000Z", "m", "v1")


def lose(db: Path, how: str) -> None:
    for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        extra.unlink(missing_ok=True)
    if how == "truncated":
        db.write_bytes(b"")
    else:
        db.unlink()


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_seq_stays_monotonic_when_the_event_log_is_lost(tmp_path: Path, how: str) -> None:
    db = tmp_path / "events.db"
    log = EventLog(db, "dev1")
    before = [log.record(draft()).seq for _ in range(3)]
    log.close()
    lose(db, how)
    log = EventLog(db, "dev1")
    after = log.record(draft()).seq
    log.close()
    assert after > max(before)
    log = EventLog(db, "dev1")  # and the next restart carries on from there, no jump back
    assert log.record(draft()).seq == after + 1
    log.close()


def test_a_log_from_before_the_mark_existed_is_covered_at_start(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    log = EventLog(db, "dev1")
    last = [log.record(draft()).seq for _ in range(2)][-1]
    log.close()
    (tmp_path / "events.db.seq").unlink()  # as a data_dir written by an older shelfwatch
    EventLog(db, "dev1").close()
    lose(db, "deleted")
    log = EventLog(db, "dev1")
    assert log.record(draft()).seq > last
    log.close()


@pytest.mark.parametrize("make", [EventLog, Outbox], ids=["events", "outbox"])
def test_a_corrupt_header_is_refused_naming_the_file(tmp_path: Path, make: type) -> None:
    db = tmp_path / ("events.db" if make is EventLog else "outbox.db")
    db.write_bytes(NOT_SQLITE)
    with pytest.raises(StoreError) as err:
        make(db, "dev1") if make is EventLog else make(db)
    assert str(db) in str(err.value) and "move it aside" in str(err.value)


def test_the_agent_refuses_a_corrupt_outbox_with_one_line_naming_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "outbox.db").write_bytes(NOT_SQLITE)
    camera = tmp_path / "camera"
    camera.mkdir()
    config = {
        "device_id": "dev1",
        "data_dir": str(data),
        "cameras": [{"id": "cam1", "source": str(camera), "fps": 1}],
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": 1},
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "run", "-c", str(path), "--no-web"],
        cwd=REPO,
        capture_output=True,
        timeout=120,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    assert f"error: {data / 'outbox.db'}" in err and "move it aside" in err
