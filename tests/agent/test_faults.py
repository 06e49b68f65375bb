"""Fault tests with a real broker: broker outage, camera loss, refused bundles (the running model keeps going)."""

from __future__ import annotations

import itertools
import os
import tarfile
import time
from pathlib import Path

import pytest

from edge.agent import Agent, AgentOptions
from edge.bundle import pack_bundle
from edge.comms.outbox import Outbox
from edge.errors import BundleError
from edge.events import EventLog
from tests.agent.conftest import ShelfCamera, Toggler, device_status, edge_config
from tests.helpers.broker import Broker, persistent_broker
from tests.helpers.mqtt_sub import MqttSubscriber
from tests.helpers.tiny_bundle import TinyBundle, make_detection_bundle
from tests.helpers.waiting import wait_until

BASE = "shelfwatch/dev1"


@pytest.mark.slow
def test_broker_outage_loses_nothing_and_keeps_order(
    tmp_path: Path, shelf_camera: ShelfCamera, det_bundle: TinyBundle
) -> None:
    broker = persistent_broker(tmp_path / "broker").start()
    sub = MqttSubscriber(broker.port, [f"{BASE}/events"], client_id="outage-sub", persistent=True).start()
    try:
        cfg = edge_config(tmp_path / "data", shelf_camera.folder, det_bundle, broker.port)
        agent = Agent(cfg, AgentOptions(web=False, mqtt_reconnect_max_seconds=1.0)).start()
        try:
            with Toggler(shelf_camera):
                assert wait_until(lambda: len(sub.messages()) >= 2)
                sub.stop()
                broker.stop()
                outage_started = time.monotonic()
                assert wait_until(lambda: not agent.comms.connected, timeout=5)
                before = agent.events.count()
                assert wait_until(lambda: agent.events.count() >= before + 3, timeout=9)  # made while it is away
                assert wait_until(lambda: agent.comms.pending() >= 3, timeout=3)  # the outbox holds them
                time.sleep(max(0.0, 10.0 - (time.monotonic() - outage_started)))
                broker.start()
                sub.start()
            assert wait_until(lambda: agent.comms.connected)
            assert wait_until(lambda: agent.comms.pending() == 0)
        finally:
            agent.stop()  # also flushes an event a last state change queued after the toggling stopped
        log = EventLog(tmp_path / "data" / "events.db", "dev1")
        logged = [e.payload for e in reversed(log.list(limit=1000))]
        log.close()
        ok = wait_until(lambda: len({m.json()["id"] for m in sub.messages()}) >= len(logged))
        left = Outbox(tmp_path / "data" / "outbox.db")
        assert ok, (
            f"logged {[(e['seq'], e['phase']) for e in logged]}, received {[m.json()['seq'] for m in sub.messages()]}, "
            f"outbox {left.depth()}"
        )
        left.close()
    finally:
        sub.stop()
        broker.stop()
    received = [m.json() for m in sub.messages()]
    first_seen: dict[str, dict] = {}
    for ev in received:
        first_seen.setdefault(ev["id"], ev)
    assert list(first_seen) == [e["id"] for e in logged]  # every event, in order
    seqs = [ev["seq"] for ev in first_seen.values()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    duplicates = len(received) - len(first_seen)
    assert duplicates <= 8  # only what was in flight (window 8) when the link went down may come twice
    phases = [e["phase"] for e in logged]
    assert all(a != b for a, b in itertools.pairwise(phases))  # start, end, start, ...


def test_camera_loss_goes_offline_unknown_and_back(
    tmp_path: Path, broker: Broker, shelf_camera: ShelfCamera, det_bundle: TinyBundle
) -> None:
    cfg = edge_config(tmp_path / "data", shelf_camera.folder, det_bundle, broker.port)
    with MqttSubscriber(broker.port, [f"{BASE}/#"]) as sub:
        agent = Agent(cfg, AgentOptions(web=False, camera_stall_seconds=2.0)).start()
        try:

            def latest(topic: str) -> str | None:
                m = sub.latest(f"{BASE}/{topic}")
                return None if m is None else m.payload

            def zone(zone_id: str) -> str | None:
                m = sub.latest(f"{BASE}/cam1/{zone_id}/state")
                return None if m is None else m.json()["state"]

            assert wait_until(lambda: latest("cam1/status") == "online" and zone("left") == "ok")
            hidden = shelf_camera.folder.with_name("gone")
            os.rename(shelf_camera.folder, hidden)
            assert wait_until(lambda: latest("cam1/status") == "offline")
            assert wait_until(lambda: zone("left") == "unknown" and zone("right") == "unknown")
            os.rename(hidden, shelf_camera.folder)
            assert wait_until(lambda: latest("cam1/status") == "online")
            assert wait_until(lambda: zone("left") == "ok" and zone("right") == "ok")
            assert device_status(agent)["cameras"][0]["capture"]["reconnects"] >= 1
        finally:
            agent.stop()


def _truncated_archive(bundle: TinyBundle, out: Path) -> Path:
    archive = pack_bundle(bundle.bundle_dir, out / "bundle.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises((tarfile.TarError, EOFError, OSError)):
        with tarfile.open(archive) as tf:
            tf.getmembers()
    return archive


def test_bad_bundles_are_refused_and_the_running_model_keeps_publishing(
    tmp_path: Path, broker: Broker, shelf_camera: ShelfCamera, det_bundle: TinyBundle, keys_dir: Path
) -> None:
    out = tmp_path / "bundles"
    untrusted = make_detection_bundle(out, version="det-evil", key_dir=tmp_path / "other-keys", openvino=False)
    changed = make_detection_bundle(out, version="det-changed", key_dir=keys_dir, openvino=False)
    with (changed.bundle_dir / "model.onnx").open("ab") as f:
        f.write(b"\0")
    truncated = _truncated_archive(
        make_detection_bundle(out / "t", version="det-trunc", key_dir=keys_dir, openvino=False), out
    )
    good = make_detection_bundle(out, version="det-2", key_dir=keys_dir, openvino=False)

    cfg = edge_config(tmp_path / "data", shelf_camera.folder, det_bundle, broker.port)
    with MqttSubscriber(broker.port, [f"{BASE}/#"]) as sub:
        agent = Agent(cfg, AgentOptions(web=False)).start()
        try:
            pipeline = agent.pipelines["cam1"]
            assert wait_until(lambda: pipeline.stats.evaluated > 0)
            worker = pipeline._thread
            for bad, reason in [
                (untrusted.bundle_dir, "signature"),
                (changed.bundle_dir, "model.onnx"),
                (truncated, "truncated"),
            ]:
                with pytest.raises(BundleError, match=reason):
                    agent.models.install(bad, activate=True)
                assert agent.slot.current is not None and agent.slot.current.version == "det-1"
            assert device_status(agent)["last_refusal"] is not None
            evaluated = pipeline.stats.evaluated
            assert wait_until(lambda: pipeline.stats.evaluated > evaluated + 3)  # still running the old model
            with Toggler(shelf_camera, period=1.0):
                assert wait_until(
                    lambda: any(m.json()["model"]["version"] == "det-1" for m in sub.messages(f"{BASE}/events"))
                )
                # Hot swap to a good bundle: same worker thread, the next frames use det-2.
                agent.models.install(good.bundle_dir, activate=True)
                assert agent.slot.current.version == "det-2"
                assert wait_until(
                    lambda: any(m.json()["model"]["version"] == "det-2" for m in sub.messages(f"{BASE}/events"))
                )
            assert pipeline._thread is worker and pipeline.stats.watchdog_trips == 0
            assert 'shelfwatch_model_info{engine="onnxruntime",name="tiny-darkness",version="det-2"} 1' in (
                agent.metrics.render()
            )
        finally:
            agent.stop()
