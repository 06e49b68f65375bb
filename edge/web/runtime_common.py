"""Helpers shared by the runtime blueprints (models, predict, events, status, metrics, training)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Literal, overload

from flask import current_app

from edge.model_repository import load_installed_model
from edge.web.http import ApiError
from edge.web.services import current_services

if TYPE_CHECKING:
    from edge.cameras.capture import CameraHub
    from edge.config import EdgeConfig
    from edge.events import EventLog
    from edge.model_repository import ModelRepository
    from edge.pipeline.metrics import MetricsRegistry

log = logging.getLogger(__name__)

PREDICT_CACHE_KEY = "shelfwatch.predict_model"


@overload
def require_service(name: Literal["models"]) -> ModelRepository: ...
@overload
def require_service(name: Literal["events"]) -> EventLog: ...
@overload
def require_service(name: Literal["cameras"]) -> CameraHub: ...
@overload
def require_service(name: Literal["metrics"]) -> MetricsRegistry: ...
def require_service(name: str) -> object:
    """The named Services field, or 503 saying the part is not running on this device."""
    service = getattr(current_services(), name)
    if service is None:
        raise ApiError(503, f"the {name} service is not running on this device")
    return service


def config() -> EdgeConfig:
    """The EdgeConfig the app was created with."""
    cfg: EdgeConfig = current_app.config["SHELFWATCH_CONFIG"]
    return cfg


class _PredictCache:
    """The active model loaded once per version for predictions when no agent is running beside the web."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: str | None = None
        self.model: Any = None


def active_model() -> Any:
    """The loaded wrapper of the running model (the agent's, else loaded here from the repository); 409 if none."""
    services = current_services()
    slot = services.slot
    if slot is not None:
        current = slot.current
        if current is None:
            raise ApiError(409, "no model is active on this device: train one or install and activate a bundle")
        return current.model
    models = require_service("models")
    version = models.active_version()
    if version is None:
        raise ApiError(409, "no model is active on this device: train one or install and activate a bundle")
    cache: _PredictCache = current_app.extensions.setdefault(PREDICT_CACHE_KEY, _PredictCache())
    with cache.lock:
        if cache.version != version:
            cache.model = load_installed_model(models.path_of(version), config().model)
            cache.version = version
            log.info("predict API loaded model %s", version)
        return cache.model
