"""MqttCommunicator against a real Mosquitto: auth, CONNACK-only `connected`, retained re-publish, HA restarts."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge.comms.base import ZoneRef
from edge.comms.mqtt import MqttCommunicator
from edge.comms.outbox import Outbox
from edge.config.model import MqttConfig
from tests.helpers.broker import Broker
from tests.helpers.mqtt_sub import MqttSubscriber


def _wait(cond, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def _comms(tmp_path: Path, port: int, **mqtt: object) -> MqttCommunicator:
    cfg = MqttConfig.model_validate({"host": "127.0.0.1", "port": port, "keepalive": 5, **mqtt})
    return MqttCommunicator(cfg, "dev1", Outbox(tmp_path / "outbox.db"), reconnect_max_seconds=1)


@contextmanager
def running_comms(tmp_path: Path, port: int, **mqtt: object) -> Iterator[MqttCommunicator]:
    """_comms() started for the with block and stopped (flushing) after it."""
    comms = _comms(tmp_path, port, **mqtt).start()
    try:
        yield comms
    finally:
        comms.stop()


def test_refused_credentials_never_count_as_connected(tmp_path: Path) -> None:
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "agent", "s3cret"], check=True)
    pw.chmod(0o644)
    with Broker(tmp_path / "b", extra_conf=f"user root\nallow_anonymous false\npassword_file {pw}\n") as broker:
        bad = _comms(tmp_path / "bad", broker.port, username="agent", password="wrong").start()
        try:
            time.sleep(1.5)
            assert not bad.connected
            bad.publish_durable("events", '{"id": "x"}', key="x")
            assert bad.pending() == 1  # kept, not dropped
        finally:
            bad.stop(flush_timeout=0.2)
        with running_comms(tmp_path / "good", broker.port, username="agent", password="s3cret") as good:
            assert _wait(lambda: good.connected)
            good.publish_durable("events", '{"id": "y"}', key="y")
            assert _wait(lambda: good.pending() == 0)


def test_retained_state_is_republished_after_a_broker_restart(tmp_path: Path, broker: Broker) -> None:
    with running_comms(tmp_path, broker.port) as comms:
        assert _wait(lambda: comms.connected)
        comms.publish("cam1/z1/state", '{"state":"ok"}', retain=True)
        comms.announce([ZoneRef("cam1", "z1", "Zone 1")])
        broker.restart()  # persistence off: the broker forgets every retained message
        assert _wait(lambda: comms.connects >= 2, timeout=20)
        with MqttSubscriber(broker.port, ["shelfwatch/#", "homeassistant/#"]) as sub:
            # The re-send follows the CONNACK: wait for the state itself (it may arrive live to this subscriber).
            assert sub.wait_for(lambda m: any(x.topic.endswith("/z1/state") for x in m), timeout=5)
        with MqttSubscriber(broker.port, ["shelfwatch/#", "homeassistant/#"]) as sub:  # a newcomer sees retained
            assert sub.wait_for(lambda m: len(m) >= 3, timeout=5)
            retained = {m.topic: m.payload for m in sub.messages() if m.retained}
        assert retained["shelfwatch/dev1/cam1/z1/state"] == '{"state":"ok"}'
        assert retained["shelfwatch/dev1/availability"] == "online"
        assert "homeassistant/binary_sensor/dev1_cam1_z1/config" in retained


def test_discovery_is_republished_when_home_assistant_comes_online(tmp_path: Path, broker: Broker) -> None:
    comms = _comms(tmp_path, broker.port).start()
    topic = "homeassistant/binary_sensor/dev1_cam1_z1/config"
    try:
        assert _wait(lambda: comms.connected)
        comms.announce([ZoneRef("cam1", "z1", "Zone 1")])
        with MqttSubscriber(broker.port, [topic]) as sub:
            assert sub.wait_for(lambda m: len(m) == 1)  # the retained copy
            subprocess.run(
                ["mosquitto_pub", "-p", str(broker.port), "-t", "homeassistant/status", "-m", "online"], check=True
            )
            assert sub.wait_for(lambda m: len(m) == 2 and not m[1].retained)
            # A zone that goes away has its entity removed (empty retained config).
            comms.announce([ZoneRef("cam1", "z2", "Zone 2")])
            assert sub.wait_for(lambda m: any(x.payload == "" for x in m))
    finally:
        comms.stop()


def test_a_deleted_zone_s_retained_state_is_cleared_from_the_broker(tmp_path: Path, broker: Broker) -> None:
    with running_comms(tmp_path, broker.port) as comms:
        assert _wait(lambda: comms.connected)
        for zone in ("z1", "z2"):
            comms.publish(f"cam1/{zone}/state", '{"state":"ok"}', retain=True)
        comms.announce([ZoneRef("cam1", "z1", "Zone 1"), ZoneRef("cam1", "z2", "Zone 2")])
        comms.announce([ZoneRef("cam1", "z1", "Zone 1")])  # z2 deleted
        time.sleep(0.5)
        with MqttSubscriber(broker.port, ["shelfwatch/dev1/+/+/state"]) as sub:
            assert sub.wait_for(lambda m: len(m) >= 1, timeout=5)
            time.sleep(0.5)  # every retained message has arrived by now
            retained = {m.topic for m in sub.messages() if m.retained}
        assert retained == {"shelfwatch/dev1/cam1/z1/state"}
        broker.restart()  # the cleared state is not brought back by the re-send of the retained cache
        assert _wait(lambda: comms.connects >= 2, timeout=20)
        with MqttSubscriber(broker.port, ["shelfwatch/dev1/+/+/state"]) as sub:
            assert sub.wait_for(lambda m: len(m) >= 1, timeout=5)
            time.sleep(0.5)
            assert {m.topic for m in sub.messages()} == {"shelfwatch/dev1/cam1/z1/state"}


def test_a_zone_deleted_while_the_agent_was_stopped_loses_its_retained_state(tmp_path: Path, broker: Broker) -> None:
    with running_comms(tmp_path / "a", broker.port) as first:
        assert _wait(lambda: first.connected)
        for zone in ("z1", "z2"):
            first.publish(f"cam1/{zone}/state", '{"state":"ok"}', retain=True)
        time.sleep(0.5)
    # The next run has only z1 configured: the broker's retained z2 state is emptied once zones are announced.
    with running_comms(tmp_path / "b", broker.port) as second:
        second.announce([ZoneRef("cam1", "z1", "Zone 1")])
        assert _wait(lambda: second.connected)
        time.sleep(1.0)
        with MqttSubscriber(broker.port, ["shelfwatch/dev1/+/+/state"]) as sub:
            assert sub.wait_for(lambda m: len(m) >= 1, timeout=5)
            time.sleep(0.5)
            assert {m.topic for m in sub.messages() if m.retained} == {"shelfwatch/dev1/cam1/z1/state"}


def test_durable_messages_arrive_in_order(tmp_path: Path, broker: Broker) -> None:
    n = 30
    comms = _comms(tmp_path, broker.port)
    with MqttSubscriber(broker.port, ["shelfwatch/dev1/events"]) as sub:
        for i in range(n):  # queued before the connection exists: the outbox holds them
            comms.publish_durable("events", str(i), key=str(i))
        comms.start()
        try:
            assert sub.wait_for(lambda m: len(m) >= n)
            assert _wait(lambda: comms.pending() == 0)
        finally:
            comms.stop()
    assert [int(m.payload) for m in sub.messages()] == list(range(n))


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=test-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext", cwd=d)  # fmt: skip
    for f in d.iterdir():
        f.chmod(0o644)


def test_tls_with_client_certificate(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    _pki(pki)
    conf = (
        f"user root\ncafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        "require_certificate true\n"
    )
    with Broker(tmp_path / "b", extra_conf=conf) as broker:
        tls = {
            "ca_file": str(pki / "ca.crt"),
            "cert_file": str(pki / "client.crt"),
            "key_file": str(pki / "client.key"),
        }
        with running_comms(tmp_path / "ok", broker.port, tls=tls) as comms:
            assert _wait(lambda: comms.connected)
            comms.publish_durable("events", "{}", key="tls")
            assert _wait(lambda: comms.pending() == 0)
        # Without the client certificate the broker refuses the handshake: never `connected`.
        no_cert = _comms(tmp_path / "nocert", broker.port, tls={"ca_file": str(pki / "ca.crt")}).start()
        try:
            time.sleep(1.5)
            assert not no_cert.connected
        finally:
            no_cert.stop(flush_timeout=0)


_CRASHING_AGENT = """
import sys, time
from pathlib import Path
from edge.comms.mqtt import MqttCommunicator
from edge.comms.outbox import Outbox
from edge.config.model import MqttConfig
cfg = MqttConfig.model_validate({"host": "127.0.0.1", "port": int(sys.argv[1]), "keepalive": 5})
comms = MqttCommunicator(cfg, "dev1", Outbox(Path(sys.argv[2])), reconnect_max_seconds=1).start()
while not comms.connected:
    time.sleep(0.05)
print("connected", flush=True)
time.sleep(60)
"""


def test_last_will_marks_a_killed_device_offline(tmp_path: Path, broker: Broker) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_AGENT, str(broker.port), str(tmp_path / "outbox.db")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "connected"
        with MqttSubscriber(broker.port, ["shelfwatch/dev1/availability"]) as sub:
            assert sub.wait_for(lambda m: any(x.payload == "online" for x in m), timeout=5)
            proc.kill()  # no DISCONNECT: only the broker's last will can say offline
            proc.wait(timeout=10)
            assert sub.wait_for(lambda m: any(x.payload == "offline" for x in m), timeout=15)
        with MqttSubscriber(broker.port, ["shelfwatch/dev1/availability"]) as late:
            assert late.wait_for(lambda m: len(m) >= 1, timeout=5)
            assert [(m.retained, m.payload) for m in late.messages()] == [(True, "offline")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


class _LostInFlight:
    """What paho.publish returns for a message the test pretends the dropped connection swallowed."""

    def __init__(self, mid: int) -> None:
        self.mid = mid
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS


def test_a_reconnect_between_peek_and_publish_resends_from_the_oldest(tmp_path: Path, broker: Broker) -> None:
    comms = _comms(tmp_path, broker.port).start()
    sent: list[str] = []
    lose = threading.Event()
    lose.set()
    real_publish, real_peek = comms.client.publish, comms.outbox.peek
    reconnected = threading.Event()

    def publish(topic: str, payload: Any = None, qos: int = 0, retain: bool = False) -> Any:
        if topic.endswith("/events"):
            sent.append(payload.decode() if isinstance(payload, bytes) else str(payload))
            if lose.is_set():  # in flight when the connection drops: never acknowledged
                return _LostInFlight(60000 + len(sent))
        return real_publish(topic, payload, qos=qos, retain=retain)

    def peek(after_pos: int = 0, limit: int = 10) -> Any:
        rows = real_peek(after_pos, limit)
        if rows and rows[0].payload == b"m3" and not reconnected.is_set():
            # The connection drops and comes back right after the pump read m3 and before it publishes it.
            reconnected.set()
            lose.clear()
            comms._on_connect(comms.client, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), None)
        return rows

    try:
        assert _wait(lambda: comms.connected)
        comms.client.publish = publish  # type: ignore[method-assign]
        comms.outbox.peek = peek  # type: ignore[method-assign]
        for name in ("m1", "m2"):
            comms.publish_durable("events", name, key=name)
        assert _wait(lambda: sent == ["m1", "m2"])
        comms.publish_durable("events", "m3", key="m3")
        assert _wait(lambda: comms.pending() == 0)
    finally:
        comms.stop()
    # After the reconnect the outbox is sent again from its oldest row: m3 must not overtake m1 and m2.
    assert sent == ["m1", "m2", "m1", "m2", "m3"]


def test_a_state_published_during_the_reconnect_resend_is_the_one_retained(tmp_path: Path, broker: Broker) -> None:
    comms = _comms(tmp_path, broker.port).start()
    topic = "shelfwatch/dev1/cam1/z1/state"
    real_publish = comms.client.publish
    racing: list[threading.Thread] = []

    def publish(full: str, payload: Any = None, qos: int = 0, retain: bool = False) -> Any:
        if full == topic and payload == "old" and not racing:
            # The pipeline publishes a newer state while on_connect re-sends the cached one.
            racer = threading.Thread(target=comms.publish, args=("cam1/z1/state", "new"), kwargs={"retain": True})
            racing.append(racer)
            racer.start()
            racer.join(0.5)  # done at once when nothing orders the two; blocked until on_connect ends when fixed
        return real_publish(full, payload, qos=qos, retain=retain)

    try:
        assert _wait(lambda: comms.connected)
        comms.publish("cam1/z1/state", "old", retain=True)
        comms.client.publish = publish  # type: ignore[method-assign]
        comms._on_connect(comms.client, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), None)
        racing[0].join(5)
        with MqttSubscriber(broker.port, [topic]) as late:
            assert late.wait_for(lambda m: len(m) >= 1, timeout=5)
            # The broker keeps the last retained payload it got: the newer state, not the re-sent older one.
            first = late.messages()[0]
            assert (first.retained, first.payload) == (True, "new")
    finally:
        comms.stop()
