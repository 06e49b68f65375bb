"""The product's whole loop, as staff would run it on the demo: capture, tag, train, deploy, low-stock events.

Real parts end to end: the demo process (synthetic shelf camera, web studio, embedded MQTT broker, a local trainer
service in its own process), the REST API a browser uses, real training from the shared ImageNet weights, the
bundle verified and activated on the device, and low-stock events received by an independent MQTT subscriber.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edge.cameras.synthetic import SyntheticShelf
from tests.helpers.broker import free_port
from tests.helpers.demo_api import capture_and_tag, signed_in, start_demo

PERIOD = 16.0  # seconds of one deplete/restock cycle: short, so 20 captures see full and empty rows
WEIGHTS = "weights/squeezenet1_1_torchvision/squeezenet1_1_imagenet_norm_fp32.npz"
EVENT_FIELDS = {"id", "seq", "type", "phase", "device", "camera", "zone", "label", "score", "bbox", "ts", "model",
                "snapshot"}  # fmt: skip


@pytest.mark.slow
def test_capture_tag_train_deploy_and_publish(tmp_path: Path, shared_dir: Path) -> None:
    data = tmp_path / "demo"
    web, mq = free_port(), free_port()
    proc = start_demo(
        data, web, mq, "--period", str(PERIOD), "--weights", str(shared_dir / WEIGHTS), "--seconds", "600",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    events: list[dict[str, Any]] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="loop-test")
    sub.on_message = lambda c, u, m: events.append(json.loads(m.payload)) if m.topic.endswith("/events") else None
    try:
        api = signed_in(web, timeout=60)
        api("POST", "/api/v1/labels", {"name": "low_stock", "description": "a shelf area with little or no stock"})
        api("POST", "/api/v1/labels", {"name": "none", "description": "stocked"})
        zones = api("GET", "/api/v1/cameras/shelf/zones")["zones"]
        assert len(zones) == 4

        # Capture and tag as a person looking at each frame would: a box around every shelf row that is mostly
        # empty, the `none` tag on frames with none; keep capturing until the review page says ready.
        shelf = SyntheticShelf(1280, 720, 4, PERIOD, 0)
        summary: dict[str, Any] = {"ready": False}
        for n in range(48):
            capture_and_tag(api, shelf, zones)
            if n >= 15:
                summary = api("GET", "/api/v1/dataset/summary?task=classification")
                if summary["ready"]:
                    break
            time.sleep(PERIOD / 12)
        assert summary["ready"], summary["problems"]

        run = api("POST", "/api/v1/training", {"task": "classification", "deploy_threshold": 0.7})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            run = api("GET", f"/api/v1/training/{run['id']}")
            if run["state"] in ("deployed", "installed", "failed", "refused", "cancelled"):
                break
            time.sleep(2)
        assert run["state"] == "deployed", run
        assert run["metrics"]["accuracy"] >= 0.7
        status = api("GET", "/api/v1/status")
        assert status["model"]["version"] == run["version"]

        sub.connect("127.0.0.1", mq)
        sub.subscribe("shelfwatch/demo/events", qos=1)
        sub.loop_start()
        deadline = time.monotonic() + 2 * PERIOD
        while time.monotonic() < deadline and not any(e["phase"] == "start" for e in events):
            time.sleep(0.5)
    finally:
        sub.loop_stop()
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    starts = [e for e in events if e["phase"] == "start"]
    assert starts, f"no low-stock event within {2 * PERIOD}s; agent log tail: {err[-1500:]}"
    event = starts[0]
    assert set(event) >= EVENT_FIELDS
    assert event["type"] == "low_stock" and event["camera"] == "shelf" and event["label"] == "low_stock"
    assert event["zone"] in {z["id"] for z in zones}
    assert event["model"]["version"] == run["version"]
