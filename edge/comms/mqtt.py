"""MQTT (paho-mqtt 2.x, callback API v2): the only code that knows brokers, topic prefixes and the last will.

Topics (docs/MQTT.md): `<prefix>/<device>/availability` (retained, last will `offline`), `.../<camera>/status`,
`.../<camera>/<zone>/state` (retained), `.../events` (durable, QoS 1, not retained), `.../stats` (QoS 0), and
Home Assistant discovery under `<discovery_prefix>/binary_sensor/...` (retained; re-sent when Home Assistant
announces `online` on `<discovery_prefix>/status`).

Delivery of durable messages: the outbox (SQLite) holds every event until its PUBACK. A pump thread sends the
oldest rows with at most `window` in flight; on every (re)connection paho's own in-memory queue is dropped and the
pump starts again from the oldest unacknowledged row, so order and ids are those of the outbox, never of a memory
queue that a restart would lose.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.comms.base import Receiver, ZoneRef, to_json
from edge.comms.discovery import discovery_payload, discovery_topic
from edge.comms.outbox import Outbox
from edge.config.model import MqttConfig

log = logging.getLogger(__name__)


class MqttCommunicator:
    """Publishes device messages to one broker; reconnects with backoff and re-sends retained state and the outbox."""

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        outbox: Outbox,
        window: int = 8,
        reconnect_max_seconds: float = 30.0,
    ) -> None:
        self.config = config
        self.device_id = device_id
        self.outbox = outbox
        self.window = window
        self.base = f"{config.topic_prefix}/{device_id}"
        self.availability_topic = f"{self.base}/availability"
        self.ha_status_topic = f"{config.discovery_prefix}/status"
        self._connected = False
        self._stopping = False
        self._lock = threading.Lock()  # guards the caches below, never held while calling paho
        # Makes "this connection is still the one the pump reset for" and the publish on it one step, against
        # _on_connect's reset: else a row read before a reconnect could overtake older rows that must be re-sent.
        # Also makes a retained publish and _on_connect's re-send of the retained cache one step each (no stale
        # state re-sent after a newer one). Held around paho's publish: paho calls on_connect holding none of the
        # locks its publish blocks on, so this cannot deadlock with the network thread.
        self._send_lock = threading.Lock()
        self._retained: dict[str, tuple[str, int]] = {}
        self._to_clear: set[str] = set()  # retained topics of deleted zones to empty once connected
        # Retained zone states already on the broker (a previous run's): those of zones no longer configured are
        # emptied once the first announce says which zones exist.
        self._state_wildcard = f"{self.base}/+/+/state"
        self._zones_known = False
        self._broker_states: set[str] = set()
        self._subscriptions: dict[str, Receiver] = {}
        self._strip: dict[str, int] = {}  # full topic -> length of the part the receiver does not see
        self._zones: list[ZoneRef] = []
        self._announced: set[str] = set()
        self._generation = 0
        self._acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._reset_requested = False
        self.connects = 0
        self.delivered = 0

        client_id = config.client_id or f"shelfwatch-{device_id}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311
        )
        self.client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        if config.username:
            password = config.password.get_secret_value() if config.password is not None else None
            self.client.username_pw_set(config.username, password)
        if config.tls is not None:
            tls = config.tls
            self.client.tls_set(
                ca_certs=_path(tls.ca_file),
                certfile=_path(tls.cert_file),
                keyfile=_path(tls.key_file),
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            self.client.tls_insecure_set(tls.insecure)
        self.client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(reconnect_max_seconds)))
        # paho's in-memory queue is not our source of truth (the outbox is); keep it from growing unbounded.
        self.client.max_queued_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self._pump = threading.Thread(target=self._pump_loop, name="mqtt-outbox", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> MqttCommunicator:
        """Connect in the background (retrying with backoff until the broker answers) and start the outbox pump."""
        log.info("MQTT: connecting to %s:%s as %s", self.config.host, self.config.port, self.device_id)
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive)
        self.client.loop_start()
        self._pump.start()
        return self

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Send what the outbox holds (up to flush_timeout), publish `offline`, disconnect; unsent rows stay queued."""
        deadline = time.monotonic() + flush_timeout
        while self._connected and self.outbox.depth() > 0 and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        self._stopping = True
        self._wake.set()
        if self._connected:
            info = self.client.publish(self.availability_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.5, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as err:
                log.warning("MQTT: could not publish offline before disconnecting: %s", err)
        self.client.disconnect()
        self.client.loop_stop()
        if self._pump.is_alive():
            self._pump.join(timeout=2)
        left = self.outbox.depth()
        if left:
            log.info("MQTT: %s event(s) stay in the outbox for the next start", left)

    @property
    def connected(self) -> bool:
        """True only between a successful CONNACK and the next disconnect."""
        return self._connected

    # -- publishing ------------------------------------------------------------------------------------------

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 1) -> None:
        """Publish to `<prefix>/<device>/<topic>`; retained payloads are remembered and re-sent on reconnect."""
        full = f"{self.base}/{topic}"
        if not retain:
            if self._connected:
                self.client.publish(full, payload, qos=qos, retain=False)
            return
        # One step against _on_connect's re-send of the cache: else it could send an older payload after this one
        # and leave the broker retaining a stale state.
        with self._send_lock:
            with self._lock:
                self._retained[full] = (payload, qos)
            if self._connected:
                self.client.publish(full, payload, qos=qos, retain=True)

    def publish_durable(self, topic: str, payload: str, key: str) -> None:
        """Write to the outbox first, then let the pump send it (QoS 1, in order); a key already queued is kept once."""
        if self.outbox.has_key(key):
            return
        self.outbox.put(f"{self.base}/{topic}", payload.encode("utf-8"), key)
        self._wake.set()

    def subscribe(self, topic: str, receiver: Receiver) -> None:
        """Receive `<prefix>/<device>/<topic>` messages; re-subscribed after every reconnect."""
        full = f"{self.base}/{topic}"
        with self._lock:
            self._subscriptions[full] = receiver
        if self._connected:
            self.client.subscribe(full, qos=1)

    def subscribe_shared(self, topic: str, receiver: Receiver) -> None:
        """Receive `<prefix>/<topic>` messages (shared by devices, e.g. the fleet's); re-subscribed after reconnects."""
        full = f"{self.config.topic_prefix}/{topic}"
        with self._lock:
            self._subscriptions[full] = receiver
            self._strip[full] = len(self.config.topic_prefix) + 1
        if self._connected:
            self.client.subscribe(full, qos=1)

    def announce(self, zones: Sequence[ZoneRef]) -> None:
        """Publish (retained) Home Assistant discovery for these zones; clear it, and the retained state, for zones
        that went away (an empty retained publish removes a topic from the broker)."""
        current = {f"{self.base}/{z.camera}/{z.zone}/state" for z in zones if z.skill is None}
        with self._send_lock:
            with self._lock:
                self._zones = list(zones)
                self._zones_known = True
                self._to_clear.update(t for t in self._broker_states if t not in current and t not in self._retained)
                self._broker_states.clear()
                prefix = f"{self.base}/"
                gone = [  # <camera>/<zone>/state topics of zones no longer announced
                    t
                    for t in self._retained
                    if t.startswith(prefix)
                    and t.endswith("/state")
                    and t[len(prefix) :].count("/") == 2
                    and t not in current
                ]
                for topic in gone:
                    del self._retained[topic]
                self._to_clear.update(gone)
                self._to_clear.difference_update(current)
                clearing = list(self._to_clear) if self._connected else []
            for topic in clearing:
                self.client.publish(topic, b"", qos=1, retain=True)
            with self._lock:
                self._to_clear.difference_update(clearing)
        if gone:
            log.info("MQTT: cleared the retained state of %d deleted zone(s)", len(gone))
        if self._connected:
            self._publish_discovery()

    def pending(self) -> int:
        """Events written to the outbox and not yet acknowledged by the broker."""
        return self.outbox.depth()

    def _publish_discovery(self) -> None:
        if not self.config.discovery:
            return
        with self._lock:
            zones = list(self._zones)
            previous = set(self._announced)
        current: set[str] = set()
        for zone in zones:
            topic = discovery_topic(self.config.discovery_prefix, self.device_id, zone)
            current.add(topic)
            payload = to_json(discovery_payload(self.config.topic_prefix, self.device_id, zone))
            self.client.publish(topic, payload, qos=1, retain=True)
        for gone in previous - current:
            self.client.publish(gone, b"", qos=1, retain=True)  # an empty retained config removes the entity
        with self._lock:
            self._announced = current

    # -- paho callbacks (network thread) ---------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._connected = False
            log.error("MQTT: broker refused the connection: %s", reason_code)
            return
        # The outbox, not paho's memory, decides what is re-sent and in which order.
        with self._send_lock:
            dropped = client.drop_out_messages()
            self._generation += 1
            self._reset_requested = True
            self._connected = True
        self.connects += 1
        log.info("MQTT: connected to %s:%s (%s queued message(s) left to the outbox)", *self._hp(), len(dropped))
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        with self._lock:
            subs = list(self._subscriptions)
        for topic in subs:
            client.subscribe(topic, qos=1)
        if self.config.discovery:
            client.subscribe(self.ha_status_topic, qos=1)
        client.subscribe(self._state_wildcard, qos=1)  # the broker answers with the states it retains
        self._publish_discovery()
        with self._send_lock:
            with self._lock:
                retained = list(self._retained.items())
                clearing = list(self._to_clear)
                self._to_clear.clear()
            for topic, (payload, qos) in retained:
                client.publish(topic, payload, qos=qos, retain=True)
            for topic in clearing:
                client.publish(topic, b"", qos=1, retain=True)
        self._wake.set()

    def _hp(self) -> tuple[str, int]:
        return self.config.host, self.config.port

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        was = self._connected
        self._connected = False
        if was and not self._stopping:
            log.warning("MQTT: disconnected from %s:%s (%s); reconnecting", *self._hp(), reason_code)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        # Called with paho's message lock held: only hand the mid over, never block here.
        self._acks.put((self._generation, mid))
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.retain and mqtt.topic_matches_sub(self._state_wildcard, message.topic):
            if message.payload:
                self._sweep_state(message.topic)
            return
        payload = message.payload.decode("utf-8", errors="replace")
        if message.topic == self.ha_status_topic:
            if payload == "online":
                log.info("MQTT: Home Assistant is back online; re-publishing discovery")
                self._publish_discovery()
            return
        with self._lock:
            receiver = self._subscriptions.get(message.topic)
            strip = self._strip.get(message.topic, len(self.base) + 1)
        if receiver is None:
            return
        try:
            receiver(message.topic[strip:], payload)
        except Exception:
            log.exception("MQTT: handler for %s failed", message.topic)

    def _sweep_state(self, topic: str) -> None:
        """A retained zone state the broker holds: emptied when its zone is not configured (deleted while away)."""
        with self._lock:
            if not self._zones_known:
                self._broker_states.add(topic)
                return
            current = {f"{self.base}/{z.camera}/{z.zone}/state" for z in self._zones if z.skill is None}
            stale = topic not in current and topic not in self._retained
        if stale:
            log.info("MQTT: clearing the retained state %s of a zone that no longer exists", topic)
            self.client.publish(topic, b"", qos=1, retain=True)

    # -- the outbox pump -------------------------------------------------------------------------------------

    def _pump_loop(self) -> None:
        inflight: dict[int, int] = {}  # mid -> outbox position
        cursor = 0
        generation = -1
        while not self._stopping:
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            try:
                if self._reset_requested or generation != self._generation:
                    self._reset_requested = False
                    generation = self._generation
                    inflight.clear()
                    cursor = 0
                while True:
                    try:
                        gen, mid = self._acks.get_nowait()
                    except queue.Empty:
                        break
                    pos = inflight.pop(mid, None) if gen == generation else None
                    if pos is not None:
                        self.outbox.ack(pos)
                        self.delivered += 1
                if not self._connected or len(inflight) >= self.window:
                    continue
                for msg in self.outbox.peek(after_pos=cursor, limit=self.window - len(inflight)):
                    with self._send_lock:
                        if generation != self._generation or not self._connected:
                            break  # reconnected since the reset: start again from the oldest row
                        info = self.client.publish(msg.topic, msg.payload, qos=1, retain=False)
                    if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        # Not sent; the next CONNACK resets the cursor and sends it again from the outbox.
                        break
                    inflight[info.mid] = msg.pos
                    cursor = msg.pos
            except Exception:  # the pump must survive anything (a closed db on shutdown, a paho error)
                if self._stopping:
                    return
                log.exception("MQTT: outbox pump error; retrying")
                time.sleep(0.5)


def _path(p: Path | None) -> str | None:
    return str(p) if p is not None else None
