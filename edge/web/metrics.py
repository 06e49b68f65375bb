"""GET /metrics: the agent's metrics registry (prometheus_client) in Prometheus text format, plus per-camera capture
counters the web reads at scrape time.

Authentication: like every route it needs a signed-in session or `Authorization: Bearer <API token>`, but an
anonymous scraper gets 401 (not the login redirect that pages give browsers). Prometheus sends the token with
`authorization: {type: Bearer, credentials_file: ...}` in its scrape config (docs/API.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, g
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.pipeline.metrics import CONTENT_TYPE
from edge.web.http import ApiError
from edge.web.security import public, requires
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)


class _StudioCollector(Collector):
    """Per-scrape families the web reads itself: capture counters and online state per camera, installed models,
    and (without an agent) the active model's info. Families the agent's registry already has are left to it."""

    def __init__(self, present: Callable[[str], bool]) -> None:
        self.present = present

    def collect(self) -> Iterator[Metric]:
        services = current_services()
        if services.cameras is not None:
            statuses = services.cameras.statuses()
            for name, family, help_text, read in (
                ("shelfwatch_camera_frames_total", CounterMetricFamily, "Frames the camera delivered.", "frames"),
                (
                    "shelfwatch_camera_dropped_frames_total",
                    CounterMetricFamily,
                    "Frames the capture dropped.",
                    "dropped",
                ),
                (
                    "shelfwatch_camera_reconnects_total",
                    CounterMetricFamily,
                    "Reconnects of the camera source.",
                    "reconnects",
                ),
                ("shelfwatch_camera_online", GaugeMetricFamily, "1 while the camera delivers frames.", "online"),
            ):
                if self.present(name):
                    continue
                base = name.removesuffix("_total") if family is CounterMetricFamily else name
                metric = family(base, help_text, labels=["camera"])
                for s in statuses:
                    metric.add_metric([s.id], float(getattr(s, read)))
                yield metric
        if services.models is not None:
            installed = sum(1 for row in services.models.list_versions() if row["status"] == "ok")
            if not self.present("shelfwatch_models_installed"):
                yield GaugeMetricFamily(
                    "shelfwatch_models_installed", "Verified model versions installed on the device.", value=installed
                )
            if services.metrics is None:
                info = GaugeMetricFamily(
                    "shelfwatch_model_info", "The running model (value 1).", labels=["name", "version"]
                )
                manifest = services.models.active()
                if manifest is not None:
                    info.add_metric([manifest.name, manifest.version], 1)
                yield info


@bp.get("/metrics")
@public  # authenticated below: a scraper must get 401, not the login page's redirect
@requires("viewer")
def metrics() -> Response:
    """Prometheus text exposition format 0.0.4 (prometheus_client's), the agent's registry first."""
    if g.get("user") is None:
        raise ApiError(401, "send Authorization: Bearer <API token>", headers={"WWW-Authenticate": "Bearer"})
    agent = current_services().metrics
    studio = CollectorRegistry(auto_describe=False)
    studio.register(_StudioCollector(agent.has if agent is not None else lambda _: False))
    text = (agent.render() if agent is not None else "") + generate_latest(studio).decode("utf-8")
    return Response(text, content_type=CONTENT_TYPE)
