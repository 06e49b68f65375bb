"""The real device agent with `group:` in its config follows a staged rollout: it starts on det-1, the
controller rolls det-2 out to the group (fetched over HTTP, verified, activated), the agent's pipelines then run
det-2, and its retained model report on the real broker says so; a rollback returns it to det-1."""

from __future__ import annotations

import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edge.agent import Agent, AgentOptions
from edge.bundle import load_private_key, pack_bundle, sha256_file
from edge.comms.link import BrokerAddress, MqttLink
from edge.fleet.contract import BundleRef
from edge.fleet.rollout import FleetController
from tests.agent.conftest import ShelfCamera, edge_config
from tests.helpers.broker import Broker
from tests.helpers.tiny_bundle import make_detection_bundle


def _until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition never held")


def test_agent_in_a_group_runs_the_rolled_out_bundle(tmp_path: Path, broker: Broker) -> None:
    keys = tmp_path / "keys"
    det1 = make_detection_bundle(tmp_path / "b", version="det-1", key_dir=keys, openvino=False)
    det2 = make_detection_bundle(tmp_path / "b", version="det-2", key_dir=keys, openvino=False)
    served = tmp_path / "served"
    served.mkdir()
    archive = pack_bundle(det2.bundle_dir, served / "det-2.tar.gz")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    camera = ShelfCamera(tmp_path / "camera")
    camera.show(left_empty=False)
    cfg = edge_config(tmp_path / "data", camera.folder, det1, broker.port, group="north")
    agent = Agent(cfg, AgentOptions(web=False)).start()
    link = MqttLink(BrokerAddress("127.0.0.1", broker.port), "test-controller").connect()
    try:
        assert agent.slot.current is not None and agent.slot.current.version == "det-1"
        controller = FleetController(link).start()
        _until(lambda: "dev1" in controller.members("north"))
        key = load_private_key(keys / "signing.key")
        url = f"http://127.0.0.1:{server.server_address[1]}/det-2.tar.gz"
        result = controller.rollout(
            "north", BundleRef(version="det-2", sha256=sha256_file(archive), url=url), key, canary_deadline_s=60
        )
        assert result.outcome == "completed" and result.canaries == ["dev1"], result
        _until(lambda: agent.slot.current is not None and agent.slot.current.version == "det-2")
        report = controller.members("north")["dev1"]
        assert (report.version, report.state, report.target) == ("det-2", "active", "det-2")
        controller.rollback("north", key)
        _until(lambda: agent.slot.current is not None and agent.slot.current.version == "det-1")
        _until(lambda: controller.members("north")["dev1"].version == "det-1")
    finally:
        link.close()
        agent.stop()
        server.shutdown()
        server.server_close()
