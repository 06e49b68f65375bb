"""A camera without zones is evaluated as one whole-frame zone `frame`: the real agent on a folder camera with a tiny
detector publishes its state and its events to a real Mosquitto (mosquitto_sub listening), with an annotated
snapshot, and the folder camera runs at the camera's fps."""

from __future__ import annotations

from pathlib import Path

import cv2

from edge.config import EdgeConfig
from tests.agent.conftest import ShelfCamera, config_dict, device_status, running_agent
from tests.helpers.broker import Broker
from tests.helpers.mqtt_sub import MqttSubscriber
from tests.helpers.tiny_bundle import TinyBundle

BASE = "shelfwatch/dev1"


def test_a_camera_without_zones_publishes_a_whole_frame_state_and_events(
    tmp_path: Path, broker: Broker, shelf_camera: ShelfCamera, det_bundle: TinyBundle
) -> None:
    raw = config_dict(tmp_path / "data", shelf_camera.folder, det_bundle, broker.port, fps=4)
    raw["cameras"][0]["zones"] = []
    cfg = EdgeConfig.model_validate(raw)
    with MqttSubscriber(broker.port, ["shelfwatch/#"]) as sub:
        with running_agent(cfg) as agent:
            assert sub.wait_for(
                lambda _: (m := sub.latest(f"{BASE}/cam1/frame/state")) is not None and m.json()["state"] == "ok"
            )
            shelf_camera.show(left_empty=True)
            assert sub.wait_for(lambda _: any(m.json()["zone"] == "frame" for m in sub.messages(f"{BASE}/events")))
            event = next(m.json() for m in sub.messages(f"{BASE}/events") if m.json()["zone"] == "frame")
            assert event["phase"] == "start" and event["camera"] == "cam1"
            snapshot = agent.events.snapshot_path(event["id"])
            assert snapshot is not None
            image = cv2.imread(str(snapshot))
            b, g, r = (int(v) for v in image[1, image.shape[1] // 2])
            assert r > 150 and g < 110 and b < 110, "the whole-frame zone is outlined in red on the snapshot"
            status = device_status(agent)
            (camera,) = status["cameras"]
            assert set(camera["zones"]) == {"frame"}
            # The folder camera delivers at the camera's fps (4), not the folder default of 5 frames/s.
            capture = agent.cameras.require("cam1")
            assert capture._source is not None and capture._source.frame_interval == 0.25
