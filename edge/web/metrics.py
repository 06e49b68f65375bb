"""GET /metrics: the agent's metrics registry in Prometheus text format, plus per-camera capture counters.

Authentication: like every route it needs a signed-in session or `Authorization: Bearer <API token>`, but an
anonymous scraper gets 401 (not the login redirect that pages give browsers). Prometheus sends the token with
`authorization: {type: Bearer, credentials_file: ...}` in its scrape config (docs/API.md).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, g

from edge.web.http import ApiError
from edge.web.security import public
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _camera_lines(present: str) -> list[str]:
    """Counters the capture threads keep themselves (frames, dropped, reconnects) and their online state."""
    cameras = current_services().cameras
    if cameras is None:
        return []
    statuses = cameras.statuses()
    families = [
        ("shelfwatch_camera_frames_total", "counter", "Frames the camera delivered.", lambda s: s.frames),
        ("shelfwatch_camera_dropped_frames_total", "counter", "Frames the capture dropped.", lambda s: s.dropped),
        ("shelfwatch_camera_reconnects_total", "counter", "Reconnects of the camera source.", lambda s: s.reconnects),
        ("shelfwatch_camera_online", "gauge", "1 while the camera delivers frames.", lambda s: int(s.online)),
    ]
    lines: list[str] = []
    for name, kind, help_text, read in families:
        if f"# TYPE {name} " in present:  # the agent exports it already
            continue
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for s in statuses:
            lines.append(f'{name}{{camera="{_escape(s.id)}"}} {int(read(s))}')
    return lines


def _model_lines() -> list[str]:
    """Installed model count and, without an agent, the active model's info (the agent publishes its own)."""
    services = current_services()
    if services.models is None:
        return []
    lines = [
        "# HELP shelfwatch_models_installed Verified model versions installed on the device.",
        "# TYPE shelfwatch_models_installed gauge",
        f"shelfwatch_models_installed {sum(1 for row in services.models.list_versions() if row['status'] == 'ok')}",
    ]
    if services.metrics is None:
        manifest = services.models.active()
        lines.append("# HELP shelfwatch_model_info The running model (value 1).")
        lines.append("# TYPE shelfwatch_model_info gauge")
        if manifest is not None:
            lines.append(
                f'shelfwatch_model_info{{name="{_escape(manifest.name)}",version="{_escape(manifest.version)}"}} 1'
            )
    return lines


@bp.get("/metrics")
@public  # authenticated below: a scraper must get 401, not the login page's redirect
def metrics() -> Response:
    """Prometheus text exposition format 0.0.4."""
    if g.get("user") is None:
        raise ApiError(401, "send Authorization: Bearer <API token>", headers={"WWW-Authenticate": "Bearer"})
    registry = current_services().metrics
    text = registry.render() if registry is not None else ""
    extra = _camera_lines(text) + _model_lines()
    if extra:
        text += "\n".join(extra) + "\n"
    return Response(text, content_type=CONTENT_TYPE)
