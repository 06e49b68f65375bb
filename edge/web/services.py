"""What the web studio is given to work with: the services it calls, injected through `app.extensions`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from edge.cameras.capture import CameraHub
    from edge.comms.base import Communicator
    from edge.events import EventLog
    from edge.model_repository import ModelRepository
    from edge.pipeline.camera_pipeline import CameraPipeline
    from edge.pipeline.metrics import MetricsRegistry
    from edge.pipeline.model_slot import ModelSlot
    from edge.skills.runner import SkillsHub
    from edge.store import DatasetStore
    from edge.store.users import UserStore
    from edge.training.runner import TrainingRunner

EXTENSION_KEY = "shelfwatch"


@dataclass
class Services:
    """The parts the blueprints call. The runtime side fills the optional fields when it starts them.

    store: the dataset store; cameras: the capture hub, or None on a device without cameras; users: accounts and API
    tokens (created from data_dir when None). models, events, trainer, metrics: the model repository, the event log,
    the training runner and the metrics registry; each None until the runtime side provides it, and blueprints that
    need one answer 503 while it is missing. A running device also gives its model slot (the model the pipelines
    use), its pipelines, its communicator and when it started; without a slot the web runs alone.
    """

    store: DatasetStore
    cameras: CameraHub | None = None
    users: UserStore | None = None
    models: ModelRepository | None = None
    events: EventLog | None = None
    trainer: TrainingRunner | None = None
    metrics: MetricsRegistry | None = None
    slot: ModelSlot | None = None
    pipelines: Mapping[str, CameraPipeline] = field(default_factory=dict)
    comms: Communicator | None = None
    started_at: float | None = None
    skills: SkillsHub | None = None  # the cameras' AI skills (edge.web.skills serves them)


def current_services() -> Services:
    """The Services of the app handling the current request."""
    services: Services = current_app.extensions[EXTENSION_KEY]
    return services
