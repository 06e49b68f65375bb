"""Home Assistant MQTT discovery payloads: one binary_sensor (device class `problem`) per zone."""

from __future__ import annotations

from typing import Any

from edge import __version__
from edge.comms.base import ZoneRef

# unknown -> "None" makes Home Assistant show the sensor as unknown rather than guessing off.
_VALUE_TEMPLATE = (
    "{% if value_json.state == 'low_stock' %}ON{% elif value_json.state == 'ok' %}OFF{% else %}None{% endif %}"
)


def _key(zone: ZoneRef) -> str:
    """`<camera>_<zone>`, or `<camera>_<skill>_<zone>` for a skill's state."""
    return f"{zone.camera}_{zone.skill}_{zone.zone}" if zone.skill else f"{zone.camera}_{zone.zone}"


def state_topic_of(zone: ZoneRef) -> str:
    """The device-relative state topic: `<camera>/<zone>/state`, or `<camera>/<skill>/<zone>/state`."""
    return f"{zone.camera}/{zone.skill}/{zone.zone}/state" if zone.skill else f"{zone.camera}/{zone.zone}/state"


def discovery_topic(discovery_prefix: str, device: str, zone: ZoneRef) -> str:
    """`homeassistant/binary_sensor/<device>_<camera>_<zone>/config` (a skill's: `<device>_<camera>_<skill>_<zone>`)."""
    return f"{discovery_prefix}/binary_sensor/{device}_{_key(zone)}/config"


def discovery_payload(topic_prefix: str, device: str, zone: ZoneRef) -> dict[str, Any]:
    """The retained config message that makes Home Assistant create the zone's low-stock sensor."""
    base = f"{topic_prefix}/{device}"
    state_topic = f"{base}/{state_topic_of(zone)}"
    return {
        "name": f"{zone.name} {zone.skill}" if zone.skill else f"{zone.name} low stock",
        "unique_id": f"shelfwatch_{device}_{_key(zone)}",
        "object_id": f"shelfwatch_{device}_{_key(zone)}",
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
