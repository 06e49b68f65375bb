"""Home Assistant discovery payloads."""

from __future__ import annotations

import json

from edge.comms.base import ZoneRef
from edge.comms.discovery import discovery_payload, discovery_topic


def test_topic_and_payload() -> None:
    zone = ZoneRef("cam1", "top-shelf", "Top shelf")
    assert discovery_topic("homeassistant", "dev1", zone) == "homeassistant/binary_sensor/dev1_cam1_top-shelf/config"
    p = discovery_payload("shelfwatch", "dev1", zone)
    json.dumps(p)  # must serialise
    assert p["state_topic"] == "shelfwatch/dev1/cam1/top-shelf/state"
    assert p["json_attributes_topic"] == p["state_topic"]
    assert p["unique_id"] == "shelfwatch_dev1_cam1_top-shelf"
    assert p["device_class"] == "problem" and p["name"] == "Top shelf low stock"
    assert [a["topic"] for a in p["availability"]] == ["shelfwatch/dev1/availability", "shelfwatch/dev1/cam1/status"]
    assert p["availability_mode"] == "all"
    assert p["device"]["identifiers"] == ["shelfwatch_dev1"]


def test_value_template_maps_states() -> None:
    # Render the Jinja template the way Home Assistant would, with a tiny evaluator for its three branches.
    template = discovery_payload("shelfwatch", "dev1", ZoneRef("c", "z", "Z"))["value_template"]
    assert "low_stock" in template and "ON" in template and "OFF" in template and "None" in template
    try:
        import jinja2
    except ImportError:  # flask brings jinja2; keep the test meaningful if it ever does not
        return
    render = jinja2.Environment(autoescape=True).from_string(template).render
    assert render(value_json={"state": "low_stock"}) == "ON"
    assert render(value_json={"state": "ok"}) == "OFF"
    assert render(value_json={"state": "unknown"}) == "None"
