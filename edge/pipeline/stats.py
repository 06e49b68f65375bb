"""The periodic MQTT `stats` message (docs/MQTT.md): what each camera's pipeline achieves, the model, the outbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.comms.base import Communicator, to_json
from edge.pipeline.camera_pipeline import CameraPipeline
from edge.pipeline.model_slot import ActiveModel
from edge.pipeline.reporter import model_ref

TOPIC = "stats"


def stats_payload(
    device: str, uptime: float, model: ActiveModel | None, outbox: int, pipelines: Mapping[str, CameraPipeline]
) -> dict[str, Any]:
    """The `stats` JSON: per-camera fps, skipped fps, inference ms and status, model, outbox depth, uptime."""
    return {
        "device": device,
        "uptime": round(uptime, 1),
        "model": model_ref(model),
        "outbox": outbox,
        "cameras": {
            cam_id: {
                "fps": round(p.eval_rate.rate(), 2),
                "capture_fps": round(p.capture_rate.rate(), 2),
                "skipped_fps": round(p.skip_rate.rate(), 2),
                "inference_ms": round(p.stats.last_inference_ms, 1),
                "status": p.status if p.online else "offline",
                **({"skills": p.skills.summary()} if p.skills is not None and p.skills.active else {}),
            }
            for cam_id, p in pipelines.items()
        },
    }


def publish_stats(comms: Communicator, payload: dict[str, Any]) -> None:
    """Send one `stats` message (QoS 0, not retained: the next one replaces it)."""
    comms.publish(TOPIC, to_json(payload), retain=False, qos=0)
