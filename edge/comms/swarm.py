"""Many MQTT clients driven by one thread (paho's external-loop API over one selector), for the fleet simulator:
a thousand connections cost one thread and a thousand sockets, not a thousand network threads.

Everything that touches a client runs on the swarm's thread: callbacks, `call_soon` and `call_later` functions.
Other threads hand work over with `call_soon`, which is thread-safe.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.comms.link import BrokerAddress

log = logging.getLogger(__name__)

MISC_INTERVAL_S = 1.0
OnMessage = Callable[[int, str, bytes], None]
OnConnect = Callable[[int], None]


@dataclass
class _Member:
    index: int
    client: mqtt.Client
    connected: bool = False
    sock: socket.socket | None = None
    on_message: OnMessage | None = None
    on_connect: OnConnect | None = None
    subscriptions: list[str] = field(default_factory=list)


class Swarm:
    """N MQTT 3.1.1 clients on one broker, one network thread."""

    def __init__(self, broker: BrokerAddress, keepalive: int = 60) -> None:
        self.broker = broker
        self.keepalive = keepalive
        self.members: list[_Member] = []
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._soon: list[Callable[[], None]] = []
        self._soon_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- building (before start) ---

    def add(
        self,
        client_id: str,
        *,
        will: tuple[str, str, int, bool] | None = None,
        on_connect: OnConnect | None = None,
        on_message: OnMessage | None = None,
    ) -> int:
        """A new client (not connected yet); returns its index."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.ca_file is not None:
            client.tls_set(ca_certs=str(self.broker.ca_file), cert_reqs=ssl.CERT_REQUIRED)
        if will is not None:
            topic, payload, qos, retain = will
            client.will_set(topic, payload, qos=qos, retain=retain)
        member = _Member(len(self.members), client, on_message=on_message, on_connect=on_connect)
        client.user_data_set(member)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.members.append(member)
        return member.index

    @property
    def connected(self) -> int:
        """Clients whose CONNECT the broker accepted and that are still connected."""
        return sum(1 for m in self.members if m.connected)

    # --- running ---

    def start(self) -> Swarm:
        """Start the network thread; connect every client (paced) from it."""
        self._thread = threading.Thread(target=self._loop, name="mqtt-swarm", daemon=True)
        self._thread.start()
        for member in self.members:
            self.call_soon(lambda m=member: self._connect(m))  # type: ignore[misc]
        return self

    def stop(self, *, graceful: bool = True) -> None:
        """Disconnect every client (graceful: DISCONNECT, so no last will) and stop the thread."""
        done = threading.Event()

        def _close() -> None:
            for m in self.members:
                sock = m.sock
                if sock is None:
                    continue
                self._drop(m)
                if graceful:
                    m.client.disconnect()  # DISCONNECT: the broker drops the last will
                    m.client.loop_write()
                else:
                    sock.close()  # the connection just ends: the broker publishes the last will
            done.set()

        self.call_soon(_close)
        done.wait(10)
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run fn on the swarm's thread (thread-safe)."""
        with self._soon_lock:
            self._soon.append(fn)
        self._wake()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run fn on the swarm's thread after delay seconds (call from the swarm's thread)."""
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._counter), fn))

    def publish(self, index: int, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> bool:
        """Publish from client `index` (swarm thread only); False when it is not connected."""
        member = self.members[index]
        if not member.connected:
            return False
        member.client.publish(topic, payload, qos=qos, retain=retain)
        self._flush(member)
        return True

    def subscribe(self, index: int, topic: str, qos: int = 1) -> None:
        """Subscribe client `index` (swarm thread only); kept across reconnects."""
        member = self.members[index]
        if topic not in member.subscriptions:
            member.subscriptions.append(topic)
        if member.connected:
            member.client.subscribe(topic, qos=qos)
            self._flush(member)

    # --- the loop ---

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass

    def _connect(self, member: _Member) -> None:
        try:
            member.client.connect(self.broker.host, self.broker.port, keepalive=self.keepalive)
        except OSError as err:
            log.warning("swarm: client %d cannot connect: %s", member.index, err)
            self.call_later(1.0, lambda: self._connect(member))
            return
        sock = member.client.socket()
        if not isinstance(sock, socket.socket):
            return
        member.sock = sock
        self._selector.register(sock, selectors.EVENT_READ, member)
        self._flush(member)

    def _drop(self, member: _Member) -> None:
        if member.sock is not None:
            try:
                self._selector.unregister(member.sock)
            except (KeyError, ValueError):
                pass
            member.sock = None
        member.connected = False

    def _flush(self, member: _Member) -> None:
        if member.client.want_write():
            rc = member.client.loop_write()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self._lost(member)
                return
            if member.client.want_write() and member.sock is not None:
                self._selector.modify(member.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, member)

    def _lost(self, member: _Member) -> None:
        if member.sock is None:
            return
        log.warning("swarm: client %d lost its connection; reconnecting", member.index)
        self._drop(member)
        self.call_later(1.0, lambda: self._connect(member))

    def _loop(self) -> None:
        next_misc = time.monotonic() + MISC_INTERVAL_S
        while not self._stop.is_set():
            now = time.monotonic()
            timeout = min(next_misc, self._timers[0][0] if self._timers else next_misc) - now
            for key, mask in self._selector.select(max(0.0, min(timeout, 0.5))):
                member = key.data
                if member is None:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                if mask & selectors.EVENT_READ:
                    if member.client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                        self._lost(member)
                        continue
                if member.sock is not None and mask & selectors.EVENT_WRITE:
                    member.client.loop_write()
                    if not member.client.want_write() and member.sock is not None:
                        self._selector.modify(member.sock, selectors.EVENT_READ, member)
                self._flush(member)
            with self._soon_lock:
                soon, self._soon = self._soon, []
            for fn in soon:
                self._run(fn)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                self._run(fn)
            if now >= next_misc:
                next_misc = now + MISC_INTERVAL_S
                for member in self.members:
                    if member.sock is not None:
                        member.client.loop_misc()
                        self._flush(member)

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("swarm: a scheduled call failed")

    # --- paho callbacks (swarm thread) ---

    def _on_connect(self, client: mqtt.Client, member: _Member, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("swarm: broker refused client %d: %s", member.index, reason)
            return
        member.connected = True
        for topic in member.subscriptions:
            client.subscribe(topic, qos=1)
        if member.on_connect is not None:
            member.on_connect(member.index)

    def _on_disconnect(self, client: mqtt.Client, member: _Member, *args: object) -> None:
        member.connected = False

    def _on_message(self, client: mqtt.Client, member: _Member, message: mqtt.MQTTMessage) -> None:
        if member.on_message is not None:
            member.on_message(member.index, message.topic, bytes(message.payload))
