"""`shelfwatch demo` end to end: embedded broker, synthetic camera, web studio, retained MQTT state."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt

from tests.helpers.broker import free_port, wait_port


def test_demo_runs_with_embedded_broker(tmp_path: Path) -> None:
    web_port, mqtt_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "demo", "--data-dir", str(tmp_path / "demo"), "--port", str(web_port),
         "--mqtt-port", str(mqtt_port), "--seconds", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    try:
        wait_port(web_port, timeout=30)
        wait_port(mqtt_port, timeout=5)
        # The web studio answers and, with no user yet, offers the first-run admin setup.
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=10) as resp:
            page = resp.read().decode()
        assert "admin" in page.lower()

        got: dict[str, bytes] = {}
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-test")
        client.on_message = lambda c, u, m: got.__setitem__(m.topic, m.payload)
        client.connect("127.0.0.1", mqtt_port)
        client.subscribe("shelfwatch/demo/#", qos=1)
        client.loop_start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            got.get("shelfwatch/demo/availability") == b"online"
            and got.get("shelfwatch/demo/shelf/status") == b"online"
        ):
            time.sleep(0.1)
        client.loop_stop()
        client.disconnect()
        assert got.get("shelfwatch/demo/availability") == b"online"
        assert got.get("shelfwatch/demo/shelf/status") == b"online"
        assert (tmp_path / "demo" / "shelfwatch.db").is_file()
        assert (tmp_path / "demo" / "keys" / "signing.pub").is_file()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert f"http://127.0.0.1:{web_port}/" in out
    assert "shelfwatch/demo/events" in out
    # torch is installed where the tests run, so the demo started its own trainer and the Train button can work.
    assert "a local trainer service at http://127.0.0.1:" in out
    trainer_cfg = (tmp_path / "demo" / "trainer" / "trainer.yaml").read_text()
    assert "${SHELFWATCH_DEMO_TRAINER_TOKEN}" in trainer_cfg  # the token never lands on disk
