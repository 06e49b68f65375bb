"""End to end with Mosquitto running deploy/mosquitto/shelfwatch.conf on free loopback ports, with the password
file from make-passwords.sh, the ACL from deploy/, and certificates from make-certs.sh: a device publishes to its
own topics and its discovery config, and what it sends to another device's topics never reaches an admin
subscriber; wrong passwords and anonymous clients are refused; the TLS listener works with the test CA."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.helpers.broker import free_port, wait_port
from tests.ops.conftest import DEPLOY, need

DEVICE, OTHER, ADMIN = "shelf-01", "shelf-02", "shelfwatch-admin"


@dataclass
class DeployedBroker:
    """A running broker with the deploy/ configuration and the passwords it was given."""

    port: int
    tls_port: int
    ca: Path
    passwords: dict[str, str]
    log: Path


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedBroker]:
    mosquitto = need("mosquitto", "mosquitto")
    need("mosquitto_passwd", "mosquitto")
    need("openssl", "openssl")
    etc = tmp_path_factory.mktemp("mosquitto")
    subprocess.run(
        ["sh", str(DEPLOY / "mosquitto/make-passwords.sh"), "-d", str(etc), DEVICE, OTHER, ADMIN, "homeassistant"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        ["sh", str(DEPLOY / "mosquitto/make-certs.sh"), "-d", str(etc / "certs"), "localhost", "127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (etc / "acl").write_text((DEPLOY / "mosquitto/acl").read_text())
    port, tls_port = free_port(), free_port()
    conf = (DEPLOY / "mosquitto/shelfwatch.conf").read_text()
    conf = conf.replace("/etc/mosquitto/shelfwatch", str(etc))
    assert "listener 1883 127.0.0.1" in conf and "listener 8883\n" in conf
    conf = conf.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    conf = conf.replace("listener 8883\n", f"listener {tls_port} 127.0.0.1\n")
    if os.geteuid() == 0:
        conf += "user root\n"  # as root mosquitto would switch to its own user, which cannot read tmp_path
    (etc / "mosquitto.conf").write_text(conf)
    log = etc / "mosquitto.log"
    with log.open("ab") as logf:
        proc = subprocess.Popen([mosquitto, "-c", str(etc / "mosquitto.conf"), "-v"], stdout=logf, stderr=logf)
    try:
        wait_port(port)
        wait_port(tls_port)
        passwords = {p.name: p.read_text() for p in (etc / "passwords").iterdir()}
        yield DeployedBroker(port, tls_port, etc / "certs/ca.crt", passwords, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Subscriber:
    """A paho client subscribed to `#` that records every message it receives."""

    def __init__(self, broker: DeployedBroker, user: str) -> None:
        self.messages: list[tuple[str, str]] = []
        self.seen = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{user}")
        self.client.username_pw_set(user, broker.passwords[user])
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a, **k: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe("#", qos=1)
        assert subscribed.wait(10), "subscription was not acknowledged"

    def _on_message(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.seen:
            self.messages.append((message.topic, message.payload.decode()))
            self.seen.notify_all()

    def wait_for(self, topic: str, payload: str, timeout: float = 10.0) -> None:
        with self.seen:
            assert self.seen.wait_for(lambda: (topic, payload) in self.messages, timeout), self.messages

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _pub(broker: DeployedBroker, user: str, topic: str, payload: str, *, password: str | None = None) -> int:
    """mosquitto_pub as `user` with QoS 1 and MQTT 5 (so a refused publish is reported); returns its exit code."""
    pub = need("mosquitto_pub", "mosquitto-clients")
    args = [pub, "-h", "127.0.0.1", "-p", str(broker.port), "-V", "5", "-q", "1", "-u", user]
    args += ["-P", password if password is not None else broker.passwords.get(user, "x"), "-t", topic, "-m", payload]
    return subprocess.run(args, capture_output=True, timeout=30).returncode


def test_device_writes_its_own_topics_and_never_another_devices(deployed: DeployedBroker) -> None:
    admin = Subscriber(deployed, ADMIN)
    try:
        own = f"shelfwatch/{DEVICE}/aisle-1/top/state"
        assert _pub(deployed, DEVICE, own, '{"state":"ok"}') == 0
        discovery = f"homeassistant/binary_sensor/{DEVICE}_aisle-1_top/config"
        assert _pub(deployed, DEVICE, discovery, '{"name":"top"}') == 0
        admin.wait_for(own, '{"state":"ok"}')
        admin.wait_for(discovery, '{"name":"top"}')

        # another device's state and events: refused by the ACL, never delivered
        forged = [f"shelfwatch/{OTHER}/aisle-1/top/state", f"shelfwatch/{OTHER}/events", "shelfwatch/all", "other/x"]
        for topic in forged:
            _pub(deployed, DEVICE, topic, "forged")
        # a marker sent after them on the device's own topic: once it arrives, the forged ones had their chance
        marker = f"shelfwatch/{DEVICE}/marker"
        assert _pub(deployed, DEVICE, marker, "done") == 0
        admin.wait_for(marker, "done")
        assert not [m for m in admin.messages if m[1] == "forged"], admin.messages
        denied = [line for line in deployed.log.read_text(errors="replace").splitlines() if "Denied PUBLISH" in line]
        for topic in forged:
            assert any(f"'{topic}'" in line for line in denied), (topic, denied)
        # the other device may write its own topics with its own credentials
        assert _pub(deployed, OTHER, f"shelfwatch/{OTHER}/aisle-1/top/state", "real") == 0
        admin.wait_for(f"shelfwatch/{OTHER}/aisle-1/top/state", "real")
    finally:
        admin.close()


def test_device_cannot_read_another_devices_topics(deployed: DeployedBroker) -> None:
    spy = Subscriber(deployed, DEVICE)  # subscribes to '#': the ACL filters what it may receive
    try:
        assert _pub(deployed, OTHER, f"shelfwatch/{OTHER}/secret", "private") == 0
        assert _pub(deployed, DEVICE, f"shelfwatch/{DEVICE}/mine", "visible") == 0
        spy.wait_for(f"shelfwatch/{DEVICE}/mine", "visible")
        assert ("shelfwatch/" + OTHER + "/secret", "private") not in spy.messages
    finally:
        spy.close()


def test_wrong_password_and_anonymous_are_refused(deployed: DeployedBroker) -> None:
    assert _pub(deployed, DEVICE, f"shelfwatch/{DEVICE}/x", "y", password="wrong") != 0
    assert _pub(deployed, "nobody", "shelfwatch/nobody/x", "y", password="guess") != 0
    pub = need("mosquitto_pub", "mosquitto-clients")
    anonymous = subprocess.run(
        [pub, "-h", "127.0.0.1", "-p", str(deployed.port), "-t", "shelfwatch/x", "-m", "y"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert anonymous.returncode != 0 and "not authori" in (anonymous.stderr + anonymous.stdout).lower()


def test_tls_listener_with_the_test_ca(deployed: DeployedBroker) -> None:
    pub = need("mosquitto_pub", "mosquitto-clients")
    base = [pub, "-h", "localhost", "-p", str(deployed.tls_port), "-u", DEVICE, "-P", deployed.passwords[DEVICE]]
    base += ["-t", f"shelfwatch/{DEVICE}/tls", "-m", "over tls", "-q", "1"]
    ok = subprocess.run([*base, "--cafile", str(deployed.ca)], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    # without the CA the broker's certificate is not trusted
    empty = deployed.ca.parent / "no-ca"
    empty.mkdir(exist_ok=True)
    untrusted = subprocess.run([*base, "--capath", str(empty)], capture_output=True, text=True, timeout=30)
    assert untrusted.returncode != 0
