"""Device status: GET /api/v1/status (the agent's view of cameras, zones, model, MQTT, health) and the status page."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from flask import Blueprint, jsonify

from edge.web.runtime_common import config
from edge.web.security import requires, template_page
from edge.web.services import Services, current_services

if TYPE_CHECKING:
    from edge.config import EdgeConfig

log = logging.getLogger(__name__)

bp = Blueprint("status", __name__)
NAV = [("status.page", "Status", 90)]


def device_status(cfg: EdgeConfig, services: Services) -> dict[str, Any]:
    """The `/api/v1/status` JSON from the parts the web was given.

    A running device gives its model slot, pipelines and communicator; without a slot no agent runs beside the web
    and the status says what the web alone knows (installed model, cameras' capture, no pipeline).
    """
    running = services.slot is not None
    model: dict[str, Any] | None = None
    if services.slot is not None:
        active = services.slot.current
        if active is not None:
            model = {
                "name": active.name,
                "version": active.version,
                "task": active.task,
                "engine": active.engine,
                # What the engine computes in (OpenVINO may differ from what was asked; bf16 changes numbers).
                "precision": getattr(getattr(active.model, "engine", None), "precision", None),
            }
    elif services.models is not None:
        manifest = services.models.active()
        if manifest is not None:
            model = {"name": manifest.name, "version": manifest.version, "task": manifest.task, "engine": None}
    refusal = services.models.last_refusal if services.models is not None else None
    comms = services.comms
    pipelines = services.pipelines
    trainer = services.trainer
    current = trainer.current() if trainer is not None else None
    return {
        "device": cfg.device_id,
        "uptime": round(time.time() - services.started_at, 1) if services.started_at is not None else None,
        "healthy": all(p.healthy for p in pipelines.values()) if running else None,
        "runtime": "running" if running else "not running (web studio only)",
        "model": model,
        "model_error": services.slot.last_error if services.slot is not None else None,
        "last_refusal": refusal.as_dict() if refusal is not None else None,
        "mqtt": {
            "enabled": cfg.mqtt.enabled,
            "connected": comms.connected if comms is not None else False,
            "outbox": comms.pending() if comms is not None else None,
        },
        "events": services.events.count() if services.events is not None else None,
        "cameras": _cameras(services),
        "training": trainer.describe(current) if trainer is not None and current is not None else None,
        # Per camera running skills: each skill's status (idle says why) and block times (docs/SKILLS.md).
        "skills": {cam: r.summary() for cam, r in services.skills.runners.items() if r.active}
        if services.skills is not None
        else {},
    }


def _cameras(services: Services) -> list[dict[str, Any]]:
    """Each camera's capture status, with its pipeline's counters and zone states when one runs."""
    cameras = []
    for capture in services.cameras or []:
        pipeline = services.pipelines.get(capture.id)
        if pipeline is None:
            if services.slot is None:  # no agent: every configured camera, capture only
                cameras.append({"id": capture.id, "capture": capture.status().as_dict(), "pipeline": None, "zones": {}})
            continue
        stats = pipeline.stats
        cameras.append(
            {
                "id": capture.id,
                "capture": capture.status().as_dict(),
                "pipeline": {
                    "status": pipeline.status,
                    "online": pipeline.online,
                    "evaluated": stats.evaluated,
                    "skipped": stats.skipped,
                    "errors": stats.errors,
                    "last_error": stats.last_error,
                    "watchdog_trips": stats.watchdog_trips,
                    "evaluated_fps": round(pipeline.eval_rate.rate(), 2),
                    "capture_fps": round(pipeline.capture_rate.rate(), 2),
                    # Skipped: frames the camera delivered between two evaluations (by design when the camera is
                    # faster than `fps`); lost: frames whose evaluation failed (`errors`).
                    "skipped_fps": round(pipeline.skip_rate.rate(), 2),
                    "configured_fps": pipeline.fps,
                    "inference_ms": round(stats.last_inference_ms, 1),
                },
                "zones": {
                    zid: {"state": z.state, "score": z.score, "since": z.since}
                    for zid, z in pipeline.zone_states().items()
                },
            }
        )
    return cameras


# The status page: cameras with fps/dropped, zone states, model, MQTT, health (refreshes itself).
template_page(bp, "/status", "status.html")


@bp.get("/api/v1/status")
@requires("viewer")
def status() -> Any:
    """device, uptime, healthy, model, last_refusal, mqtt {connected, outbox}, events, cameras, training."""
    return jsonify(device_status(config(), current_services()))
