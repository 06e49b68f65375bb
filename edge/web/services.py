"""What the web studio is given to work with: the services it calls, injected through `app.extensions`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

if TYPE_CHECKING:
    from edge.store.users import UserStore

EXTENSION_KEY = "shelfwatch"


@dataclass
class Services:
    """The parts the blueprints call. The runtime side fills the optional fields when it starts them.

    store: the dataset store (`edge.store.DatasetStore`); cameras: the capture hub (`edge.cameras.capture.CameraHub`)
    or None on a device without cameras; users: accounts and API tokens (created from data_dir when None).
    models, runtime, events, trainer, metrics: the model repository, the inference pipeline, the event log, the
    trainer client and the metrics registry; each None until the runtime side provides it, and blueprints that need
    one answer 503 while it is missing.
    """

    store: Any
    cameras: Any | None = None
    users: UserStore | None = None
    models: Any | None = None
    runtime: Any | None = None
    events: Any | None = None
    trainer: Any | None = None
    metrics: Any | None = None


def current_services() -> Services:
    """The Services of the app handling the current request."""
    services: Services = current_app.extensions[EXTENSION_KEY]
    return services
