"""End to end: the agent on a folder camera with a detection bundle, a real Mosquitto, mosquitto_sub listening."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from pathlib import Path

from tests.agent.conftest import ShelfCamera, device_status, edge_config, running_agent
from tests.helpers.broker import Broker
from tests.helpers.mqtt_sub import MqttSubscriber
from tests.helpers.tiny_bundle import TinyBundle

BASE = "shelfwatch/dev1"
EVENT_FIELDS = {
    "id",
    "seq",
    "type",
    "phase",
    "device",
    "camera",
    "zone",
    "label",
    "score",
    "bbox",
    "ts",
    "model",
    "snapshot",
}


def _events(sub: MqttSubscriber) -> list[dict]:
    return [m.json() for m in sub.messages(f"{BASE}/events")]


def test_agent_publishes_availability_states_and_events(
    tmp_path: Path, broker: Broker, shelf_camera: ShelfCamera, det_bundle: TinyBundle
) -> None:
    cfg = edge_config(tmp_path / "data", shelf_camera.folder, det_bundle, broker.port)
    with MqttSubscriber(broker.port, ["shelfwatch/#", "homeassistant/#"]) as sub:
        with running_agent(cfg) as agent:
            assert sub.wait_for(
                lambda _: (m := sub.latest(f"{BASE}/availability")) is not None and m.payload == "online"
            )
            assert sub.wait_for(
                lambda _: (m := sub.latest(f"{BASE}/cam1/left/state")) is not None and m.json()["state"] == "ok"
            )
            shelf_camera.show(left_empty=True)
            assert sub.wait_for(lambda _: any(e["phase"] == "start" for e in _events(sub)))
            shelf_camera.show(left_empty=False)
            assert sub.wait_for(lambda _: any(e["phase"] == "end" for e in _events(sub)))
            assert sub.wait_for(lambda _: sub.latest(f"{BASE}/stats") is not None)
            stats = sub.latest(f"{BASE}/stats").json()
            assert stats["model"] == {"name": "tiny-darkness", "version": "det-1"} and stats["uptime"] > 0
            assert set(stats["cameras"]["cam1"]) >= {"fps", "skipped_fps", "inference_ms", "capture_fps"}
            metrics = agent.metrics.render()
            for family in (
                "shelfwatch_capture_fps",
                "shelfwatch_evaluated_fps",
                "shelfwatch_frames_skipped_total",
                "shelfwatch_inference_ms_bucket",
                "shelfwatch_outbox_depth",
                "shelfwatch_events_total",
                "shelfwatch_model_info",
            ):
                assert family in metrics, family
            assert 'shelfwatch_events_total{camera="cam1",phase="start"} 1' in metrics
            status = device_status(agent)
            assert status["mqtt"]["connected"] and status["healthy"]
            assert status["cameras"][0]["zones"]["left"]["state"] == "ok"
        assert sub.wait_for(lambda _: sub.latest(f"{BASE}/availability").payload == "offline", timeout=5)

    start, end = _events(sub)[:2]
    for ev in (start, end):
        assert set(ev) == EVENT_FIELDS
        uuid.UUID(ev["id"])
        assert ev["type"] == "low_stock" and ev["device"] == "dev1" and ev["camera"] == "cam1" and ev["zone"] == "left"
        assert ev["model"] == {"name": "tiny-darkness", "version": "det-1"}
        assert ev["snapshot"] == f"/api/v1/events/{ev['id']}/snapshot.jpg"
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", ev["ts"])
        datetime.fromisoformat(ev["ts"].replace("Z", "+00:00"))
    assert (start["phase"], end["phase"]) == ("start", "end")
    assert end["seq"] > start["seq"]
    assert start["label"] == "empty" and start["score"] >= 0.6
    assert start["bbox"] is not None and len(start["bbox"]) == 4 and start["bbox"][2] <= 0.5
    assert end["score"] <= 0.4 and end["bbox"] is None

    # Retained messages as a newcomer sees them.
    with MqttSubscriber(broker.port, ["shelfwatch/#", "homeassistant/#"]) as late:
        assert late.wait_for(lambda m: len(m) >= 6, timeout=5)
        retained = {m.topic: m for m in late.messages() if m.retained}
    assert retained[f"{BASE}/availability"].payload == "offline"
    state = retained[f"{BASE}/cam1/left/state"].json()
    assert set(state) == {"state", "score", "since", "model"}
    assert state["model"]["version"] == "det-1"
    assert f"{BASE}/cam1/status" in retained
    disc = retained["homeassistant/binary_sensor/dev1_cam1_left/config"].json()
    assert disc["state_topic"] == f"{BASE}/cam1/left/state" and disc["device_class"] == "problem"
    assert disc["name"] == "Left shelf low stock"
    assert "homeassistant/binary_sensor/dev1_cam1_right/config" in retained

    # The device kept a snapshot for each event and its log lists them.
    snap_dir = tmp_path / "data" / "snapshots"
    assert (snap_dir / f"{start['id']}.jpg").is_file() and (snap_dir / f"{end['id']}.jpg").is_file()


def test_zones_edited_on_the_web_replace_the_config_ones_without_restart(
    tmp_path: Path, broker: Broker, shelf_camera: ShelfCamera, det_bundle: TinyBundle
) -> None:
    from edge.config.model import ZoneConfig

    cfg = edge_config(tmp_path / "data", shelf_camera.folder, det_bundle, broker.port)
    with MqttSubscriber(broker.port, ["shelfwatch/#", "homeassistant/#"]) as sub:
        with running_agent(cfg) as agent:
            assert sub.wait_for(lambda _: sub.latest(f"{BASE}/cam1/left/state") is not None)
            shelf_camera.show(left_empty=True)
            agent.store.set_zones("cam1", [ZoneConfig(id="shelf-a", polygon=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)])])
            assert sub.wait_for(
                lambda _: (
                    (m := sub.latest(f"{BASE}/cam1/shelf-a/state")) is not None and m.json()["state"] == "low_stock"
                )
            )
            assert sub.wait_for(
                lambda _: (
                    (m := sub.latest("homeassistant/binary_sensor/dev1_cam1_left/config")) is not None
                    and m.payload == ""
                )  # the old zone's entity is removed
            )
            assert [z.id for z in agent.pipelines["cam1"].zone_configs()] == ["shelf-a"]
