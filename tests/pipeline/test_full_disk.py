"""Fault test: data_dir on a real small filesystem (a tmpfs mounted here) that fills up while events are made.

The pipeline must keep evaluating, report the trouble (status, /metrics, MQTT stats), keep the events it cannot
write in memory, and once space is freed every event reaches a real `mosquitto_sub`, in order.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from edge.events import EventLog
from tests.agent.conftest import ShelfCamera, Toggler, device_status, edge_config, running_agent
from tests.helpers.broker import Broker
from tests.helpers.disk import fill, small_filesystem
from tests.helpers.mqtt_sub import MqttSubscriber
from tests.helpers.tiny_bundle import TinyBundle
from tests.helpers.waiting import wait_until as wait

BASE = "shelfwatch/dev1"


def test_a_full_data_dir_keeps_the_pipeline_evaluating_and_loses_no_event(
    tmp_path: Path, broker: Broker, shelf_camera: ShelfCamera, det_bundle: TinyBundle
) -> None:
    with (
        small_filesystem(tmp_path / "data", "24m") as data_dir,
        MqttSubscriber(broker.port, [f"{BASE}/events", f"{BASE}/stats"]) as sub,
    ):
        cfg = edge_config(data_dir, shelf_camera.folder, det_bundle, broker.port)
        with running_agent(cfg) as agent:

            def pipeline() -> dict:
                return device_status(agent)["cameras"][0]["pipeline"]

            def events_received() -> list[dict]:
                return [m.json() for m in sub.messages(f"{BASE}/events")]

            with Toggler(shelf_camera, period=0.6):
                assert wait(lambda: len(events_received()) >= 2)  # events flow before the disk fills
                filler = fill(data_dir)
                # The disk is full: events are kept in memory, the pipeline says why and goes on evaluating.
                assert wait(lambda: pipeline()["status"] == "degraded"), pipeline()
                assert wait(lambda: agent.reporter.writer.unwritten >= 3)
                status = pipeline()
                assert "events cannot be stored" in status["last_error"]
                assert "No space left" in status["last_error"] or "full" in status["last_error"]
                evaluated = status["evaluated"]
                assert wait(lambda: pipeline()["evaluated"] >= evaluated + 10)  # still evaluating
                assert agent.metrics.value("shelfwatch_events_unwritten") >= 3
                assert (agent.metrics.value("shelfwatch_event_write_errors_total") or 0) >= 1

                def stats_degraded() -> bool:
                    stats = sub.latest(f"{BASE}/stats")
                    return stats is not None and stats.json()["cameras"]["cam1"]["status"] == "degraded"

                assert wait(stats_degraded)
                held = agent.reporter.writer.unwritten
                filler.unlink()  # space returns
                assert wait(lambda: agent.reporter.writer.unwritten == 0)
                assert wait(lambda: pipeline()["status"] == "running")
            assert wait(lambda: agent.comms.pending() == 0)
        log = EventLog(data_dir / "events.db", "dev1")
        logged = [e.payload for e in reversed(log.list(limit=1000))]
        log.close()
        assert wait(lambda: len({e["id"] for e in events_received()}) >= len(logged))
    first_seen: dict[str, dict] = {}
    for ev in events_received():
        first_seen.setdefault(ev["id"], ev)
    assert list(first_seen) == [e["id"] for e in logged], json.dumps(
        {"logged": [e["seq"] for e in logged], "received": [e["seq"] for e in first_seen.values()]}
    )
    seqs = [e["seq"] for e in first_seen.values()]
    assert seqs == sorted(seqs) and len(seqs) >= 2 + held
    phases = [e["phase"] for e in logged]
    assert all(a != b for a, b in itertools.pairwise(phases))  # start, end, start...: none lost
