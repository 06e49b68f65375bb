"""A plain MQTT connection for tools that are not a device (the fleet controller, test subscribers): connect,
publish and wait for the broker's acknowledgement, subscribe to patterns with wildcards. paho stays in comms."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.errors import ShelfwatchError

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes, bool], None]
"""Called with (full topic, payload, retained) on the client's network thread."""


class LinkError(ShelfwatchError):
    """The broker cannot be reached or refused the connection or a publish."""


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker is and how to log in."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None

    @classmethod
    def parse(cls, text: str, **kwargs: object) -> BrokerAddress:
        """`HOST:PORT` or `HOST` (port 1883)."""
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "1883")
        try:
            number = int(port)
        except ValueError as err:
            raise LinkError(f"broker {text!r} must be HOST:PORT") from err
        if not host or not 0 < number < 65536:
            raise LinkError(f"broker {text!r} must be HOST:PORT")
        return cls(host, number, **kwargs)  # type: ignore[arg-type]


class MqttLink:
    """One MQTT 3.1.1 connection with a network thread; handlers are re-subscribed after reconnects."""

    def __init__(self, broker: BrokerAddress, client_id: str, *, timeout: float = 10.0) -> None:
        self.broker = broker
        self.timeout = timeout
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.ca_file is not None:
            self.client.tls_set(ca_certs=str(broker.ca_file), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def __enter__(self) -> MqttLink:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> MqttLink:
        """Connect and wait until the broker accepted (LinkError after `timeout`)."""
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as err:
            raise LinkError(f"cannot reach the MQTT broker {self.broker.host}:{self.broker.port}: {err}") from err
        self.client.loop_start()
        if not self._connected.wait(self.timeout):
            self.close()
            raise LinkError(f"the MQTT broker {self.broker.host}:{self.broker.port} did not accept the connection")
        return self

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 1) -> None:
        """Publish and wait for the broker's acknowledgement (QoS 1)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        try:
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as err:
            raise LinkError(f"publish to {topic} failed: {err}") from err
        if not info.is_published():
            raise LinkError(f"the broker did not acknowledge the publish to {topic} within {self.timeout:g} s")

    def subscribe(self, pattern: str, handler: Handler, qos: int = 1) -> None:
        """Call handler for every message matching pattern (MQTT wildcards + and #)."""
        with self._lock:
            self._handlers[pattern] = handler
        self.client.subscribe(pattern, qos=qos)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT: broker refused the connection: %s", reason)
            return
        with self._lock:
            patterns = list(self._handlers)
        for pattern in patterns:
            client.subscribe(pattern, qos=1)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, *args: object) -> None:
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            handlers = [h for p, h in self._handlers.items() if mqtt.topic_matches_sub(p, message.topic)]
        for handler in handlers:
            try:
                handler(message.topic, bytes(message.payload), bool(message.retain))
            except Exception:
                log.exception("MQTT: handler for %s failed", message.topic)
