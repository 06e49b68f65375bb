"""What blocks are built with: the camera and skill they belong to and the device services they may use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edge.comms.base import Communicator, NullCommunicator

if TYPE_CHECKING:
    from edge.events import SnapshotImage
    from edge.pipeline.model_slot import ActiveModel
    from edge.pipeline.zone_state import Transition, ZoneState
    from edge.skills.registry import Block
    from edge.skills.webhook import WebhookHub


class SkillIdle(Exception):
    """A block cannot run now (its project has no active version): the skill waits and says why."""


class InboxTarget(Protocol):
    """Where `collect` sends frames: edge.assist.inbox.InboxWriter on a device, edge.skills.inbox.Inbox otherwise."""

    def put(self, image: np.ndarray, **info: Any) -> Any:
        """Keep one frame with its reason, camera, skill, block and items (a rate limit may skip it)."""
        ...


class ZoneSink(Protocol):
    """Today's zone contract of a camera (the `contract: zone` of mqtt_state and mqtt_event): retained
    `<camera>/<zone>/state` and `low_stock` events without skill or trace, through the camera pipeline's sink
    (edge.pipeline.reporter.Reporter on a device) with the model that ran."""

    def state(self, zone: str, state: ZoneState) -> None:
        """A zone's state changed, or its retained state is due for a refresh."""
        ...

    def event(self, zone: str, transition: Transition, image: SnapshotImage | None) -> None:
        """A low-stock alert opened or closed (the image is the annotated snapshot, or one to draw later:
        edge.events.Snapshot)."""
        ...


class ModelSource(Protocol):
    """Projects -> their active model (edge.skills.models.ProjectModels)."""

    def get(self, project: str) -> ActiveModel | None:
        """The project's active model, or None (then `why_idle` says why)."""
        ...

    def why_idle(self, project: str) -> str:
        """Why the project has no model to run."""
        ...


class NoModels:
    """A model source without projects (validation, tests of logic blocks)."""

    def get(self, project: str) -> ActiveModel | None:
        """Nothing is ever active."""
        return None

    def why_idle(self, project: str) -> str:
        """No project exists here."""
        return f"project {project!r} has no active model version"


@dataclass
class BuildContext:
    """Given to every block when its skill is built."""

    camera: str
    skill: str
    models: ModelSource = field(default_factory=NoModels)
    comms: Communicator = field(default_factory=NullCommunicator)
    data_dir: Path | None = None
    webhooks: WebhookHub | None = None
    inbox: InboxTarget | None = None
    min_overlap: float = 0.5
    zone_sink: ZoneSink | None = None
    blocks: dict[str, Block] = field(default_factory=dict)  # the skill's blocks built so far, by id
