"""`shelfwatch run` as a real process: SIGKILL while the broker is away loses nothing; SIGTERM stops cleanly."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.agent.conftest import ShelfCamera, Toggler, config_dict
from tests.helpers.broker import Broker, free_port
from tests.helpers.mqtt_sub import MqttSubscriber
from tests.helpers.tiny_bundle import TinyBundle
from tests.helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def query(db: Path, sql: str) -> list[tuple]:
    """Read another process's SQLite database (WAL lets us read while it writes)."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the agent has not created the table yet
        return []
    finally:
        con.close()


def spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "-c", str(config), "--no-web"],
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_sigkill_and_restart_loses_nothing_from_the_outbox(
    tmp_path: Path, shelf_camera: ShelfCamera, det_bundle: TinyBundle
) -> None:
    port = free_port()  # nothing listens yet: every event stays in the outbox
    data = tmp_path / "data"
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump(config_dict(data, shelf_camera.folder, det_bundle, port)))
    log = tmp_path / "agent.log"
    events_db, outbox_db = data / "events.db", data / "outbox.db"

    proc = spawn(config, log)
    try:
        with Toggler(shelf_camera):
            ok = wait_until(lambda: len(query(events_db, "SELECT seq FROM events")) >= 4)
            assert ok, log.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    before = [r[0] for r in query(events_db, "SELECT id FROM events ORDER BY seq")]
    queued = query(outbox_db, "SELECT COUNT(*) FROM outbox")[0][0]
    unqueued = query(events_db, "SELECT COUNT(*) FROM events WHERE queued = 0")[0][0]
    assert queued + unqueued == len(before) >= 4  # nothing was sent; all of it is on disk

    with Broker(tmp_path / "broker", port=port) as broker, MqttSubscriber(broker.port, ["shelfwatch/dev1/#"]) as sub:
        proc = spawn(config, log)
        try:

            def received_ids() -> list[str]:
                return [m.json()["id"] for m in sub.messages("shelfwatch/dev1/events")]

            assert wait_until(lambda: set(before) <= set(received_ids())), log.read_text()[-3000:]
            assert wait_until(lambda: not query(outbox_db, "SELECT pos FROM outbox"))
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert sub.wait_for(
            lambda _: (m := sub.latest("shelfwatch/dev1/availability")) is not None and m.payload == "offline"
        )
    first_seen: list[str] = []
    for event_id in received_ids():
        if event_id not in first_seen:
            first_seen.append(event_id)
    assert first_seen[: len(before)] == before  # the same ids, in the original order
