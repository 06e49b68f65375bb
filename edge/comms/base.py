"""The messaging interface the rest of the device talks to; only the MQTT class knows brokers and topic prefixes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Receiver = Callable[[str, str], None]
"""Called with (topic relative to the device, payload text) for a subscribed message."""


@dataclass(frozen=True)
class ZoneRef:
    """A zone as announced to integrations (Home Assistant discovery)."""

    camera: str
    zone: str
    name: str
    skill: str | None = None  # a skill's mqtt_state: its state is <camera>/<skill>/<zone>/state


class Communicator(Protocol):
    """Publish device messages; topics are relative to the device (`<camera>/<zone>/state`, `events`, ...)."""

    @property
    def connected(self) -> bool:
        """True only while a broker has accepted the connection."""
        ...

    def start(self) -> Communicator:
        """Connect in the background."""
        ...

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 1) -> None:
        """Best-effort publish; a retained topic's latest payload is re-sent after every reconnect."""

    def publish_durable(self, topic: str, payload: str, key: str) -> None:
        """Queue a message that must arrive (written to the outbox before sending, in order, at least once)."""

    def subscribe(self, topic: str, receiver: Receiver) -> None:
        """Receive messages on a device-relative topic (kept across reconnects)."""

    def subscribe_shared(self, topic: str, receiver: Receiver) -> None:
        """Receive messages on a topic under the prefix shared by devices (`fleet/<group>/model`); the receiver
        gets the topic relative to the prefix."""

    def announce(self, zones: Sequence[ZoneRef]) -> None:
        """Tell integrations which zones exist (Home Assistant discovery for MQTT)."""

    def pending(self) -> int:
        """Durable messages not yet acknowledged by the broker (outbox depth)."""
        ...

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Flush what can be flushed (up to flush_timeout s), say the device is offline, disconnect."""


def to_json(obj: Any) -> str:
    """Compact JSON as every payload uses it."""
    return json.dumps(obj, separators=(",", ":"), default=str)


class NullCommunicator:
    """Used when MQTT is disabled: durable messages stay in the outbox-less void, nothing is sent."""

    connected = False

    def start(self) -> NullCommunicator:
        """Nothing to connect to."""
        return self

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 1) -> None:
        """Drop the message (MQTT disabled)."""

    def publish_durable(self, topic: str, payload: str, key: str) -> None:
        """Drop the message (MQTT disabled; the event log still has the event)."""

    def subscribe(self, topic: str, receiver: Receiver) -> None:
        """Nothing ever arrives."""

    def subscribe_shared(self, topic: str, receiver: Receiver) -> None:
        """Nothing ever arrives."""

    def announce(self, zones: Sequence[ZoneRef]) -> None:
        """No integrations to tell."""

    def pending(self) -> int:
        """Nothing is queued."""
        return 0

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Nothing to stop."""
