"""The block types, one file each; importing this package registers them all (edge.skills.registry)."""

from edge.skills.blocks import (  # noqa: F401 - imported for their @block_type registration
    classify,
    collect,
    condition,
    cooldown,
    count,
    coverage,
    detect,
    filter,
    hysteresis,
    mqtt_event,
    mqtt_state,
    snapshot,
    webhook,
    window,
    zone_score,
)
