"""The logic, time and sink blocks on their own: real files for snapshot/collect, a real broker for mqtt_state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.comms.mqtt import MqttCommunicator
from edge.comms.outbox import Outbox
from edge.config.model import MqttConfig
from edge.pipeline.zone_scoring import Zone
from edge.skills.config import SKILLS_ADAPTER
from edge.skills.context import BuildContext
from edge.skills.inbox import Inbox
from edge.skills.registry import build_block
from edge.skills.values import Frame, Item
from tests.helpers.broker import Broker
from tests.helpers.mqtt_sub import MqttSubscriber
from tests.helpers.waiting import wait_until

LEFT = Zone("left", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)), ())
RIGHT = Zone("right", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)), ())
IMAGE = np.full((48, 64, 3), 200, dtype=np.uint8)


def block(spec: dict, ctx: BuildContext | None = None):
    """One block built from its YAML-like spec, inside a skill that gives it an input."""
    blocks = [{"id": "src", "type": "detect", "project": "p"}]
    if spec.get("input", "src") == "src" and spec["type"] != "detect":
        spec = {"input": "src", **spec}
    skill = SKILLS_ADAPTER.validate_python([{"id": "s", "blocks": [*blocks, spec]}])[0]
    return build_block(skill.blocks[1], ctx or BuildContext(camera="cam", skill="s"))


def frame(now: float) -> Frame:
    return Frame(image=IMAGE, zones=[LEFT, RIGHT], now=now, ts=f"t{now}")


BOXES = [
    Item(zone="left", label="gap", score=0.9, bbox=(0.0, 0.0, 0.5, 0.5)),
    Item(zone="left", label="gap", score=0.4, bbox=(0.0, 0.5, 0.1, 0.6)),
    Item(zone="right", label="bottle", score=0.8, bbox=(0.6, 0.1, 0.9, 0.9)),
]


def test_filter_count_and_coverage() -> None:
    kept = block({"id": "f", "type": "filter", "labels": ["gap"], "min_score": 0.5}).run(BOXES, frame(0))
    assert kept == [BOXES[0]]
    assert block({"id": "f", "type": "filter", "zones": ["right"]}).run(BOXES, frame(0)) == [BOXES[2]]
    assert block({"id": "f", "type": "filter", "min_area": 0.1}).run(BOXES, frame(0)) == [BOXES[0], BOXES[2]]
    counts = block({"id": "c", "type": "count", "label": "gap"}).run(BOXES, frame(0))
    assert [(i.zone, i.value) for i in counts] == [("left", 2.0), ("right", 0.0)]
    cov = block({"id": "v", "type": "coverage", "label": "gap"}).run(BOXES, frame(0))
    assert cov[0].value == pytest.approx(0.5 + 0.02, abs=0.03) and cov[1].value == 0.0


def test_hysteresis_window_and_cooldown_over_time() -> None:
    low = block({"id": "h", "type": "hysteresis", True: 0.5, False: 0.2, "min_frames": 2})  # YAML's on/off
    phases = []
    for n, value in enumerate([0.9, 0.9, 0.9, 0.1, 0.1]):
        out = low.run([Item(zone="left", value=value)], frame(n))
        phases.append((out[0].state, out[0].phase))
        assert out[1].state in ("unknown", "ok")  # no item for the right zone counts as 0
    assert phases == [
        ("unknown", None), ("low_stock", "start"), ("low_stock", None), ("low_stock", None), ("ok", "end"),
    ]  # fmt: skip

    win = block({"id": "w", "type": "window", "seconds": 2, "agg": "mean"})
    means = [win.run([Item(zone="left", value=v)], frame(t))[0].value for t, v in enumerate([1.0, 0.0, 0.5, 0.5])]
    assert means == [1.0, 0.5, 0.5, pytest.approx(1 / 3)]  # t=3 keeps 1..3
    counting = block({"id": "w", "type": "window", "seconds": 10, "agg": "count"})
    assert [counting.run([Item(zone="left")] if t % 2 == 0 else [], frame(t))[0].value for t in range(4)] == [
        1, 1, 2, 2,
    ]  # fmt: skip

    cool = block({"id": "c", "type": "cooldown", "seconds": 5})
    passed = [len(cool.run([Item(zone="left"), Item(zone="right")], frame(t))) for t in (0, 1, 4, 5, 6)]
    assert passed == [2, 0, 0, 2, 0]


def test_snapshot_keeps_its_retention_and_collect_is_rate_limited(tmp_path: Path) -> None:
    ctx = BuildContext(camera="cam", skill="s", data_dir=tmp_path, inbox=Inbox(tmp_path / "inbox"))
    snap = block({"id": "shot", "type": "snapshot", "retention": 3}, ctx)
    for t in range(5):
        snap.run([Item(zone="left", bbox=(0.1, 0.1, 0.4, 0.4))], frame(t))
    files = sorted((tmp_path / "skills" / "snapshots" / "cam" / "s" / "shot").glob("*.jpg"))
    assert len(files) == 3 and files[-1].name.endswith("-000005-left.jpg")

    collect = block({"id": "review", "type": "collect", "seconds": 10, "reason": "unsure gap"}, ctx)
    for t in (0, 3, 9, 10, 25):
        collect.run([Item(zone="left", score=0.5)], frame(t))
    collect.run([], frame(40))  # nothing fired: nothing collected
    listed = ctx.inbox.list()
    assert len(listed) == 3  # t = 0, 10, 25
    assert listed[0]["reason"] == "unsure gap" and listed[0]["skill"] == "s" and listed[0]["items"][0]["zone"] == "left"
    assert (tmp_path / "inbox" / listed[0]["image"]).is_file()


def test_mqtt_state_publishes_retained_states_on_change(tmp_path: Path) -> None:
    with Broker(tmp_path / "broker") as broker:
        outbox = Outbox(tmp_path / "outbox.db")
        comms = MqttCommunicator(MqttConfig(host="127.0.0.1", port=broker.port, discovery=False), "dev1", outbox)
        comms.start()
        try:
            assert wait_until(lambda: comms.connected, timeout=10)
            state = block({"id": "st", "type": "mqtt_state"}, BuildContext(camera="cam", skill="s", comms=comms))
            for t, s in enumerate(["ok", "ok", "low_stock"]):
                state.run([Item(zone="left", state=s, score=0.7, value=0.7)], frame(t))
            # The broker may not have the last publish yet when a subscriber first connects (it then hands over the
            # retained "ok", and the live "low_stock" that follows arrives without the retained flag, as MQTT says):
            # subscribe afresh until the retained state a new subscriber gets is the last change's, bounded in time.
            topic = "shelfwatch/dev1/cam/s/left/state"
            payload: dict[str, object] = {}
            for _ in range(10):
                with MqttSubscriber(broker.port, ["shelfwatch/dev1/cam/s/#"]) as sub:
                    assert sub.wait_for(lambda msgs: any(m.retained for m in msgs), timeout=10)
                    retained = [m for m in sub.messages(topic) if m.retained]
                    assert retained, "the state topic's first message to a new subscriber is not retained"
                    payload = json.loads(retained[-1].payload)
                if payload["state"] == "low_stock":
                    break
            assert payload["state"] == "low_stock" and payload["skill"] == "s" and payload["block"] == "st"
        finally:
            comms.stop(flush_timeout=1)
            outbox.close()


def test_a_skills_mqtt_state_is_announced_to_home_assistant_on_its_own_topic() -> None:
    from edge.comms.base import ZoneRef
    from edge.comms.discovery import discovery_payload, discovery_topic

    ref = ZoneRef("cam", "left", "Left", skill="gaps")
    assert discovery_topic("homeassistant", "dev1", ref) == "homeassistant/binary_sensor/dev1_cam_gaps_left/config"
    payload = discovery_payload("shelfwatch", "dev1", ref)
    assert payload["state_topic"] == "shelfwatch/dev1/cam/gaps/left/state"
    assert payload["unique_id"] == "shelfwatch_dev1_cam_gaps_left" and payload["name"] == "Left gaps"
    today = discovery_payload("shelfwatch", "dev1", ZoneRef("cam", "left", "Left"))
    assert today["state_topic"] == "shelfwatch/dev1/cam/left/state" and today["name"] == "Left low stock"
