"""`shelfwatch fleet simulate`: N simulated devices in one process against a real broker (docs/SCALE.md).

Each simulated device is a real MQTT connection (one thread drives them all, `edge.comms.swarm`) speaking the
device contract: retained `availability` with a last will `offline`, retained camera status, zone state and model
report, low-stock events (QoS 1, the real event JSON with id and seq) at a random (exponential) interval of mean
`event_interval_s` per device, stats every `stats_interval_s` (QoS 0), and the group's announcement followed as a
device does (announcement signature verified with the trusted key, bundle fetched over HTTP and its sha256
checked, the bundle's own signature and file hashes verified; since every device would verify the very same
bytes, one real verification per distinct archive is shared by the devices of this process).

A separate subscriber counts the events that reach the broker's other side: `lost` is sent minus received (by
event id) after a drain of up to DRAIN_S; latencies are from publish to arrival in the same process clock.
With a rollout, a FleetController runs a staged rollout of a real bundle (served by a local HTTP server) while the
events flow; `tampered` serves a corrupted copy, so the canaries fail verification and the rollout must halt.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edge.comms.link import BrokerAddress, MqttLink
from edge.comms.swarm import Swarm
from edge.errors import BundleError
from edge.fleet.contract import Announcement, BundleRef, ModelReport, utc_now

log = logging.getLogger(__name__)

DRAIN_S = 10.0
INITIAL_VERSION = "sim-initial"


@dataclass
class SimConfig:
    """What to simulate."""

    devices: int
    broker: BrokerAddress
    seconds: float
    prefix: str = "shelfwatch"
    group: str = "sim"
    event_interval_s: float = 10.0
    stats_interval_s: float = 10.0
    connect_timeout_s: float = 120.0
    rollout_bundle: Path | None = None
    signing_key: Path | None = None
    canary_share: float = 0.05
    canary_deadline_s: float = 120.0
    rollout_deadline_s: float = 600.0
    tampered: bool = False
    fetch_threads: int = 8
    seed: int = 0


@dataclass
class _Device:
    index: int
    id: str
    version: str = INITIAL_VERSION
    seq: int = 0
    state: str = "active"
    target: str | None = None
    reason: str | None = None


@dataclass
class _Counts:
    sent: dict[str, float] = field(default_factory=dict)  # event id -> perf_counter at publish
    received: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _BundleServer:
    """Serves one bundle archive over HTTP on loopback (optionally with one byte flipped)."""

    def __init__(self, archive: Path, tampered: bool) -> None:
        data = archive.read_bytes()
        if tampered:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        body = data

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/bundle/{archive.name}"
        threading.Thread(target=self.server.serve_forever, name="sim-bundle-http", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _VerifiedCache:
    """One real verification per archive sha256, shared by the simulated devices of this process."""

    def __init__(self, trusted: list[Any]) -> None:
        self.trusted = trusted
        self._lock = threading.Lock()
        self._results: dict[str, str | BundleError] = {}

    def version_of(self, data: bytes, digest: str) -> str:
        import tempfile

        from edge.bundle import verify_bundle

        with self._lock:
            if digest not in self._results:
                with tempfile.TemporaryDirectory(prefix="shelfwatch-sim-") as tmp:
                    path = Path(tmp) / "bundle.tar.gz"
                    path.write_bytes(data)
                    try:
                        self._results[digest] = verify_bundle(path, self.trusted).version
                    except BundleError as err:
                        self._results[digest] = err
            result = self._results[digest]
        if isinstance(result, BundleError):
            raise result
        return result


class Simulation:
    """The simulated devices, the event counter and (optionally) a staged rollout."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.swarm = Swarm(config.broker)
        self.devices: list[_Device] = []
        self.counts = _Counts()
        self.emitting = False
        self.keys: list[Any] = []
        self.verified: _VerifiedCache | None = None
        self.fetcher = ThreadPoolExecutor(max_workers=config.fetch_threads, thread_name_prefix="sim-fetch")
        prefix = config.prefix
        for i in range(config.devices):
            device = _Device(i, f"sim-{i:04d}")
            self.devices.append(device)
            self.swarm.add(
                f"shelfwatch-{device.id}",
                will=(f"{prefix}/{device.id}/availability", "offline", 1, True),
                on_connect=self._on_connect,
                on_message=self._on_message,
            )

    # --- device behaviour (swarm thread) ---

    def _topic(self, device: _Device, rest: str) -> str:
        return f"{self.config.prefix}/{device.id}/{rest}"

    def _on_connect(self, index: int) -> None:
        device = self.devices[index]
        swarm = self.swarm
        swarm.publish(index, self._topic(device, "availability"), "online", retain=True)
        swarm.publish(index, self._topic(device, "cam1/status"), "online", retain=True)
        state = {"state": "ok", "score": 0.1, "since": utc_now(), "model": {"name": "sim", "version": device.version}}
        swarm.publish(index, self._topic(device, "cam1/top/state"), _json(state), retain=True)
        self._report(device)
        swarm.subscribe(index, f"{self.config.prefix}/fleet/{self.config.group}/model")

    def _report(self, device: _Device) -> None:
        report = ModelReport(
            device=device.id,
            group=self.config.group,
            version=device.version,
            state=device.state,  # type: ignore[arg-type]
            target=device.target,
            reason=device.reason,
        )
        self.swarm.publish(device.index, self._topic(device, "model"), report.payload(), retain=True)

    def _emit(self, index: int) -> None:
        if not self.emitting:
            return
        device = self.devices[index]
        device.seq += 1
        event_id = str(uuid.uuid4())
        phase = "start" if device.seq % 2 else "end"
        event = {
            "id": event_id,
            "seq": device.seq,
            "type": "low_stock",
            "phase": phase,
            "device": device.id,
            "camera": "cam1",
            "zone": "top",
            "label": "empty",
            "score": 0.91 if phase == "start" else 0.12,
            "bbox": None,
            "ts": utc_now(),
            "model": {"name": "sim", "version": device.version},
            "snapshot": f"/api/v1/events/{event_id}/snapshot.jpg",
        }
        with self.counts.lock:
            self.counts.sent[event_id] = time.perf_counter()
        if not self.swarm.publish(index, self._topic(device, "events"), _json(event), qos=1):
            with self.counts.lock:
                del self.counts.sent[event_id]  # not connected: a real device keeps it in its outbox
        self.swarm.call_later(self.rng.expovariate(1.0 / self.config.event_interval_s), lambda: self._emit(index))

    def _stats(self, index: int) -> None:
        if not self.emitting:
            return
        device = self.devices[index]
        stats = {"cameras": {"cam1": {"fps": 2.0, "skipped_fps": 0.0, "inference_ms": 12.0}}, "model": device.version}
        self.swarm.publish(index, self._topic(device, "stats"), _json(stats), qos=0)
        self.swarm.call_later(self.config.stats_interval_s, lambda: self._stats(index))

    def _on_message(self, index: int, topic: str, payload: bytes) -> None:
        if not payload or self.verified is None:
            return
        device = self.devices[index]
        try:
            announcement = Announcement.parse(payload)
        except BundleError:
            return
        if announcement.group != self.config.group or not announcement.targets(device.id):
            return
        try:
            announcement.verify(self.keys)
        except BundleError as err:
            self._set(device, "failed", announcement.version, str(err))
            return
        if announcement.version == device.version:
            self._set(device, "active", announcement.version, None)
            return
        self._set(device, "downloading", announcement.version, None)
        self.fetcher.submit(self._fetch, device, announcement)

    def _set(
        self, device: _Device, state: str, target: str | None, reason: str | None, version: str | None = None
    ) -> None:
        device.state, device.target, device.reason = state, target, reason
        if version is not None:
            device.version = version
        self._report(device)

    def _fetch(self, device: _Device, announcement: Announcement) -> None:
        """A fetch thread: download, check, verify; the outcome goes back to the swarm thread."""
        import urllib.request

        assert self.verified is not None
        try:
            if announcement.url is None or announcement.sha256 is None:
                raise BundleError(f"version {announcement.version} is not installed and the announcement has no URL")
            with urllib.request.urlopen(announcement.url, timeout=60) as resp:  # noqa: S310 - our own loopback URL
                data = resp.read()
            digest = hashlib.sha256(data).hexdigest()
            if digest != announcement.sha256:
                raise BundleError(f"sha256 {digest[:12]}... differs from the announced {announcement.sha256[:12]}...")
            version = self.verified.version_of(data, digest)
            if version != announcement.version:
                raise BundleError(f"the bundle is version {version}, announced {announcement.version}")
        except (BundleError, OSError) as err:
            reason = str(err)
            self.swarm.call_soon(lambda: self._set(device, "failed", announcement.version, reason))
            return
        self.swarm.call_soon(lambda: self._set(device, "active", announcement.version, None, version=version))

    # --- the run ---

    def run(self) -> dict[str, Any]:
        """Connect everyone, send events for `seconds` (with a rollout if asked), drain, measure."""
        cfg = self.config
        collector = MqttLink(cfg.broker, f"shelfwatch-sim-collector-{uuid.uuid4().hex[:6]}")
        collector.connect()
        collector.subscribe(f"{cfg.prefix}/+/events", self._on_event)
        server: _BundleServer | None = None
        key = None
        if cfg.rollout_bundle is not None:
            from edge.bundle import load_private_key

            assert cfg.signing_key is not None
            key = load_private_key(cfg.signing_key)
            self.keys = [key.public_key()]
            self.verified = _VerifiedCache(self.keys)
            server = _BundleServer(cfg.rollout_bundle, cfg.tampered)
        started = time.monotonic()
        self.swarm.start()
        deadline = started + cfg.connect_timeout_s
        while self.swarm.connected < cfg.devices and time.monotonic() < deadline:
            time.sleep(0.05)
        connect_seconds = time.monotonic() - started
        connected = self.swarm.connected
        self.emitting = True
        for device in self.devices:
            self.swarm.call_soon(
                lambda i=device.index: self.swarm.call_later(  # type: ignore[misc]
                    self.rng.uniform(0, cfg.event_interval_s), lambda: self._emit(i)
                )
            )
            self.swarm.call_soon(
                lambda i=device.index: self.swarm.call_later(  # type: ignore[misc]
                    self.rng.uniform(0, cfg.stats_interval_s), lambda: self._stats(i)
                )
            )
        events_started = time.monotonic()
        rollout: dict[str, Any] | None = None
        try:
            if server is not None and key is not None and cfg.rollout_bundle is not None:
                rollout = self._rollout(server, key, cfg.rollout_bundle)
            remaining = events_started + cfg.seconds - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            self.emitting = False
            drain_until = time.monotonic() + DRAIN_S
            while time.monotonic() < drain_until:
                with self.counts.lock:
                    if set(self.counts.sent) <= set(self.counts.received):
                        break
                time.sleep(0.1)
        finally:
            self.emitting = False
            self._stop_devices()
            collector.close()
            self.fetcher.shutdown(wait=False, cancel_futures=True)
            if server is not None:
                server.close()
        return self._result(connected, connect_seconds, rollout)

    def _rollout(self, server: _BundleServer, key: Any, archive: Path) -> dict[str, Any]:
        from edge.bundle import inspect_bundle, sha256_file
        from edge.fleet.rollout import FleetController

        cfg = self.config
        version = inspect_bundle(archive).version
        ref = BundleRef(version=version, sha256=sha256_file(archive), url=server.url)
        link = MqttLink(cfg.broker, f"shelfwatch-sim-controller-{uuid.uuid4().hex[:6]}")
        link.connect()
        try:
            controller = FleetController(link, cfg.prefix).start()
            deadline = time.monotonic() + 30
            while len(controller.members(cfg.group)) < self.swarm.connected and time.monotonic() < deadline:
                time.sleep(0.05)
            result = controller.rollout(
                cfg.group,
                ref,
                key,
                canary_share=cfg.canary_share,
                canary_deadline_s=cfg.canary_deadline_s,
                deadline_s=cfg.rollout_deadline_s,
                seed=cfg.seed,
            )
            out = result.as_dict()
            reports = controller.members(cfg.group)
            canaries = set(result.canaries)
            out["on_new_version"] = sum(1 for r in reports.values() if r.version == version)
            # Never asked to switch: still on the initial version, never downloading or failing the new one.
            out["others_untouched"] = sum(
                1
                for d, r in reports.items()
                if d not in canaries and r.version == INITIAL_VERSION and r.target != version and r.state == "active"
            )
            out["canaries"] = len(result.canaries)
            out["failed"] = len(result.failed)
            out["failed_reasons"] = sorted(set(result.failed.values()))[:3]
            return out
        finally:
            link.close()

    def _stop_devices(self) -> None:
        done = threading.Event()

        def _offline() -> None:
            for device in self.devices:
                self.swarm.publish(device.index, self._topic(device, "availability"), "offline", retain=True)
            done.set()

        self.swarm.call_soon(_offline)
        done.wait(10)
        time.sleep(0.2)
        self.swarm.stop(graceful=True)

    def _on_event(self, topic: str, payload: bytes, retained: bool) -> None:
        arrived = time.perf_counter()
        try:
            import json

            event_id = json.loads(payload)["id"]
        except (ValueError, KeyError, TypeError):
            return
        with self.counts.lock:
            self.counts.received.setdefault(event_id, arrived)

    def _result(self, connected: int, connect_seconds: float, rollout: dict[str, Any] | None) -> dict[str, Any]:
        with self.counts.lock:
            sent = dict(self.counts.sent)
            received = dict(self.counts.received)
        latencies = sorted((received[i] - t) * 1000 for i, t in sent.items() if i in received)
        result: dict[str, Any] = {
            "devices": self.config.devices,
            "connected": connected,
            "connect_seconds": round(connect_seconds, 2),
            "seconds": self.config.seconds,
            "events_sent": len(sent),
            "events_received": sum(1 for i in sent if i in received),
            "lost": sum(1 for i in sent if i not in received),
            "latency_p50_ms": _percentile(latencies, 50),
            "latency_p95_ms": _percentile(latencies, 95),
        }
        if rollout is not None:
            result["rollout"] = rollout
        return result


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    rank = (len(values) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return round(values[low] + (values[high] - values[low]) * (rank - low), 2)


def _json(obj: Any) -> str:
    from edge.comms.base import to_json

    return to_json(obj)


def simulate(config: SimConfig) -> dict[str, Any]:
    """Run one simulation and return its measurements."""
    return Simulation(config).run()
