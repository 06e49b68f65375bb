"""/metrics of a running device, scraped over a real server and read with prometheus_client's own parser."""

from __future__ import annotations

import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from edge.web.server import WebServer
from tests.web_runtime.conftest import CAMERA_ID, Device
from tests.web_runtime.test_runtime_api import install

# The names dashboards were built on before the registry moved to prometheus_client.
EXPECTED = {
    "shelfwatch_frames_evaluated": "counter",
    "shelfwatch_frames_skipped": "counter",
    "shelfwatch_pipeline_errors": "counter",
    "shelfwatch_watchdog_trips": "counter",
    "shelfwatch_inference_ms": "histogram",
    "shelfwatch_capture_fps": "gauge",
    "shelfwatch_evaluated_fps": "gauge",
    "shelfwatch_outbox_depth": "gauge",
    "shelfwatch_model_info": "gauge",
    "shelfwatch_camera_frames": "counter",
    "shelfwatch_camera_dropped_frames": "counter",
    "shelfwatch_camera_online": "gauge",
    "shelfwatch_models_installed": "gauge",
}


def _scrape(url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=20) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode("utf-8")
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metrics_parse_with_prometheus_client(device: Device, bundles: object) -> None:
    client = device.app.test_client()
    install(client, device, bundles.det1_tar)  # type: ignore[attr-defined]
    server = WebServer(device.app).start()
    try:
        deadline = time.monotonic() + 60
        families = _scrape(server.url, device.token)
        while time.monotonic() < deadline:
            evaluated = [
                s for s in families["shelfwatch_frames_evaluated"].samples if s.labels.get("camera") == CAMERA_ID
            ]  # type: ignore[attr-defined]
            if evaluated and evaluated[0].value > 0:
                break
            time.sleep(0.5)
            families = _scrape(server.url, device.token)
    finally:
        server.stop()
    kinds = {name: family.type for name, family in families.items()}  # type: ignore[attr-defined]
    assert {name: kinds.get(name) for name in EXPECTED} == EXPECTED
    assert evaluated and evaluated[0].name == "shelfwatch_frames_evaluated_total" and evaluated[0].value > 0
    info = families["shelfwatch_model_info"].samples  # type: ignore[attr-defined]
    assert [s.labels["version"] for s in info] == ["det-1"]
    buckets = [s for s in families["shelfwatch_inference_ms"].samples if s.name.endswith("_bucket")]  # type: ignore[attr-defined]
    assert buckets and buckets[-1].labels["le"] == "+Inf" and buckets[-1].value > 0
