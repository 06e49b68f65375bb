"""The durable outbox: order, acknowledgement, persistence across reopen (a restart)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from edge.comms.outbox import Outbox


def test_fifo_order_and_ack(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "outbox.db")
    positions = [ob.put("t/events", f"m{i}".encode(), key=f"k{i}") for i in range(5)]
    assert positions == sorted(positions)
    assert [m.payload for m in ob.peek(limit=3)] == [b"m0", b"m1", b"m2"]
    assert [m.payload for m in ob.peek(after_pos=positions[2], limit=10)] == [b"m3", b"m4"]
    ob.ack(positions[1])
    assert [m.key for m in ob.peek(limit=10)] == ["k0", "k2", "k3", "k4"]
    assert ob.depth() == 4 and ob.has_key("k0") and not ob.has_key("k1")
    ob.close()


def test_rows_survive_reopen_and_positions_never_repeat(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    ob = Outbox(path)
    first = ob.put("t", b"a", "a")
    last = ob.put("t", b"b", "b")
    ob.ack(last)
    ob.close()
    again = Outbox(path)
    assert [m.payload for m in again.peek()] == [b"a"]
    # AUTOINCREMENT: a new message sorts after everything ever queued, even after deletes.
    assert again.put("t", b"c", "c") > last > first
    again.close()


def test_put_is_durable_against_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    code = (
        "import os, sys; from pathlib import Path; from edge.comms.outbox import Outbox; "
        f"ob = Outbox(Path({str(path)!r})); [ob.put('t', str(i).encode(), str(i)) for i in range(20)]; "
        "os.kill(os.getpid(), 9)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], check=False)
    assert proc.returncode == -9
    ob = Outbox(path)
    assert [m.payload for m in ob.peek(limit=100)] == [str(i).encode() for i in range(20)]
    ob.close()


def test_wal_mode(tmp_path: Path) -> None:
    Outbox(tmp_path / "o.db").close()
    mode = sqlite3.connect(tmp_path / "o.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_acks_the_full_disk_refuses_are_kept_and_deleted_once_space_returns(tmp_path: Path) -> None:
    from tests.helpers.disk import fill, small_filesystem

    with small_filesystem(tmp_path / "disk", "2m") as disk:
        box = Outbox(disk / "outbox.db")
        try:
            positions = [box.put("t", f"m{i}".encode()) for i in range(5)]
            filler = fill(disk)
            for pos in positions[:3]:
                box.ack(pos)  # may be refused by the disk: never raises, never re-sends
            assert box.depth() == 2
            assert [m.payload for m in box.peek()] == [b"m3", b"m4"]
            filler.unlink()
            box.ack(positions[3])
            assert box.depth() == 1 and [m.payload for m in box.peek()] == [b"m4"]
        finally:
            box.close()
        reopened = Outbox(disk / "outbox.db")  # the refused deletes reached the file once space returned
        try:
            assert [m.payload for m in reopened.peek()] == [b"m4"]
        finally:
            reopened.close()
