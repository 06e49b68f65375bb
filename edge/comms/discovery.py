"""Home Assistant MQTT discovery payloads: one binary_sensor (device class `problem`) per zone."""

from __future__ import annotations

from typing import Any

from edge import __version__
from edge.comms.base import ZoneRef

# unknown -> "None" makes Home Assistant show the sensor as unknown rather than guessing off.
_VALUE_TEMPLATE = (
    "{% if value_json.state == 'low_stock' %}ON{% elif value_json.state == 'ok' %}OFF{% else %}None{% endif %}"
)


def discovery_topic(discovery_prefix: str, device: str, zone: ZoneRef) -> str:
    """`homeassistant/binary_sensor/<device>_<camera>_<zone>/config`."""
    return f"{discovery_prefix}/binary_sensor/{device}_{zone.camera}_{zone.zone}/config"


def discovery_payload(topic_prefix: str, device: str, zone: ZoneRef) -> dict[str, Any]:
    """The retained config message that makes Home Assistant create the zone's low-stock sensor."""
    base = f"{topic_prefix}/{device}"
    state_topic = f"{base}/{zone.camera}/{zone.zone}/state"
    return {
        "name": f"{zone.name} low stock",
        "unique_id": f"shelfwatch_{device}_{zone.camera}_{zone.zone}",
        "object_id": f"shelfwatch_{device}_{zone.camera}_{zone.zone}",
        "device_class": "problem",
        "state_topic": state_topic,
        "value_template": _VALUE_TEMPLATE,
        "payload_on": "ON",
        "payload_off": "OFF",
        "json_attributes_topic": state_topic,
        "availability": [
            {"topic": f"{base}/availability"},
            {"topic": f"{base}/{zone.camera}/status"},
        ],
        "availability_mode": "all",
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
        "device": {
            "identifiers": [f"shelfwatch_{device}"],
            "name": f"Shelfwatch {device}",
            "manufacturer": "Shelfwatch",
            "model": "edge agent",
            "sw_version": __version__,
        },
    }
