"""Device status: GET /api/v1/status (the agent's view of cameras, zones, model, MQTT, health) and the status page."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, render_template

from edge.web.runtime_common import config
from edge.web.security import requires
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("status", __name__)
NAV = [("status.page", "Status", 90)]


def device_status() -> dict[str, Any]:
    """The running agent's status, or what the web alone knows when no agent runs beside it."""
    services = current_services()
    runtime_status = getattr(services.runtime, "status", None)
    if callable(runtime_status):
        status: dict[str, Any] = dict(runtime_status())
        status["runtime"] = "running"
    else:
        status = _web_only_status()
    trainer = services.trainer
    current = trainer.current() if trainer is not None and hasattr(trainer, "current") else None
    status["training"] = trainer.describe(current) if trainer is not None and current is not None else None
    return status


def _web_only_status() -> dict[str, Any]:
    services = current_services()
    cfg = config()
    model = None
    refusal = None
    if services.models is not None:
        manifest = services.models.active()
        if manifest is not None:
            model = {"name": manifest.name, "version": manifest.version, "task": manifest.task, "engine": None}
        last = services.models.last_refusal
        refusal = last.as_dict() if last is not None else None
    cameras = []
    if services.cameras is not None:
        for cam in services.cameras.statuses():
            cameras.append({"id": cam.id, "capture": cam.as_dict(), "pipeline": None, "zones": {}})
    return {
        "device": cfg.device_id,
        "uptime": None,
        "healthy": None,
        "runtime": "not running (web studio only)",
        "model": model,
        "model_error": None,
        "last_refusal": refusal,
        "mqtt": {"enabled": cfg.mqtt.enabled, "connected": False, "outbox": None},
        "events": services.events.count() if services.events is not None else None,
        "cameras": cameras,
    }


@bp.get("/status")
@requires("viewer")
def page() -> str:
    """The status page: cameras with fps/dropped, zone states, model, MQTT, health (refreshes itself)."""
    return render_template("status.html")


@bp.get("/api/v1/status")
@requires("viewer")
def status() -> Any:
    """device, uptime, healthy, model, last_refusal, mqtt {connected, outbox}, events, cameras, training."""
    return jsonify(device_status())
