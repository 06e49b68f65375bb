"""A running Agent with a skill's mqtt_state on a real Mosquitto: retained skill states and their Home Assistant
sensor; today's zone sensor is not announced for the skill camera."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from edge.agent import Agent, AgentOptions
from edge.config import parse_yaml_config
from edge.config.model import EdgeConfig
from tests.helpers.broker import Broker
from tests.helpers.mqtt_sub import MqttSubscriber
from tests.skills.conftest import ShelfPhotos, make_projects

SKILL = """
cameras:
  - id: aisle3
    source: {folder}
    fps: 4
    zones: [{{id: shelf-a, name: Shelf A, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}}]
    skills:
      - id: gaps
        blocks:
          - {{id: det, type: detect, project: shelf-gaps, min_score: 0.3}}
          - {{id: cov, type: coverage, input: det, label: empty_shelf}}
          - {{id: low, type: hysteresis, input: cov, on: 0.2, off: 0.1, min_frames: 2}}
          - {{id: state, type: mqtt_state, input: low}}
"""


def test_skill_states_are_retained_and_announced(tmp_path: Path, shelf_photos: ShelfPhotos) -> None:
    projects = make_projects(tmp_path / "data", tmp_path / "bundles", shelf_photos)
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copyfile(shelf_photos.gap[0], folder / "shelf.jpg")
    with Broker(tmp_path / "broker") as broker, MqttSubscriber(broker.port, ["#"]) as sub:
        raw = yaml.safe_load(SKILL.format(folder=folder))
        raw.update(
            device_id="dev1",
            data_dir=str(projects.data_dir),
            mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 5},
            model={"engine": "onnxruntime", "threads": 1, "trusted_keys": [str(projects.public_key)]},
        )
        config = parse_yaml_config(yaml.safe_dump(raw), EdgeConfig)
        agent = Agent(config, AgentOptions(web=False, stats_interval=0.5)).start()
        try:
            topic = "shelfwatch/dev1/aisle3/gaps/shelf-a/state"
            assert sub.wait_for(
                lambda _: (m := sub.latest(topic)) is not None and json.loads(m.payload)["state"] == "low_stock",
                timeout=30,
            )
            config_topic = "homeassistant/binary_sensor/dev1_aisle3_gaps_shelf-a/config"
            assert sub.wait_for(lambda _: sub.latest(config_topic) is not None, timeout=10)
            announced = json.loads(sub.latest(config_topic).payload)
            assert announced["state_topic"] == topic and announced["name"] == "Shelf A gaps"
            assert sub.wait_for(lambda _: sub.latest("shelfwatch/dev1/stats") is not None, timeout=10)
            stats = json.loads(sub.latest("shelfwatch/dev1/stats").payload)
            assert stats["cameras"]["aisle3"]["skills"]["gaps"]["status"] == "running"
        finally:
            agent.stop()
    assert sub.messages("homeassistant/binary_sensor/dev1_aisle3_shelf-a/config") == []  # no dead sensor
    assert sub.messages("shelfwatch/dev1/aisle3/shelf-a/state") == []
