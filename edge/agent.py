"""The device's composition root: builds every part from an EdgeConfig, starts them in order, stops them gracefully.

Parts: dataset store, camera hub, model repository and the model slot the pipelines read, one CameraPipeline per
enabled camera plus a Watchdog, the communicator (MQTT with its SQLite outbox, or nothing when disabled), the event
log and snapshots, the metrics registry, the web studio (when edge.web is installed), a stats publisher and the
systemd notifier (READY=1 once started; WATCHDOG=1 only while every pipeline is healthy).

Nothing here decides anything about frames, zones or topics; it wires and it reports status.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge import sdnotify
from edge.comms.base import Communicator, NullCommunicator, ZoneRef, to_json
from edge.comms.outbox import Outbox
from edge.config.model import CameraConfig, EdgeConfig, ZoneConfig
from edge.errors import EngineError, ShelfwatchError
from edge.events import EventLog, SnapshotStore
from edge.pipeline.camera_pipeline import CameraPipeline, Watchdog
from edge.pipeline.metrics import MetricsRegistry
from edge.pipeline.model_slot import ActiveModel, ModelSlot, build_active
from edge.pipeline.reporter import Reporter, model_ref

log = logging.getLogger(__name__)


@dataclass
class AgentOptions:
    """Knobs that are not part of edge.yaml (tests and the benchmark turn them)."""

    web: bool = True
    stats_interval: float = 10.0
    min_overlap: float = 0.5
    mqtt_window: int = 8
    mqtt_reconnect_max_seconds: float = 30.0
    flush_timeout: float = 5.0
    camera_stall_seconds: float = 10.0
    source_factory: Callable[[str | int], Any] | None = None


class Agent:
    """The running device: `start()`, `stop()`, `status()`, `metrics`, `services` for the web."""

    def __init__(self, config: EdgeConfig, options: AgentOptions | None = None) -> None:
        from edge.cameras.capture import CameraHub
        from edge.model_repository import ModelRepository
        from edge.store import DatasetStore

        self.config = config
        self.options = options or AgentOptions()
        self.data_dir = Path(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.started_at: float | None = None
        self.metrics = MetricsRegistry()
        self.store = DatasetStore(self.data_dir, config.dataset)
        hub_kwargs: dict[str, Any] = {"stall_seconds": self.options.camera_stall_seconds}
        if self.options.source_factory is not None:
            hub_kwargs["source_factory"] = self.options.source_factory
        self.cameras = CameraHub(config.cameras, **hub_kwargs)
        self.models = ModelRepository.from_config(config)
        self.slot = ModelSlot(self._load_engine)
        self.events = EventLog(self.data_dir / "events.db", config.device_id)
        self.snapshots = SnapshotStore(self.data_dir / "snapshots", config.events.snapshot_retention)
        self.events.snapshots = self.snapshots
        self.outbox: Outbox | None = None
        self.comms: Communicator
        if config.mqtt.enabled:
            from edge.comms.mqtt import MqttCommunicator

            self.outbox = Outbox(self.data_dir / "outbox.db")
            self.comms = MqttCommunicator(
                config.mqtt,
                config.device_id,
                self.outbox,
                window=self.options.mqtt_window,
                reconnect_max_seconds=self.options.mqtt_reconnect_max_seconds,
            )
        else:
            self.comms = NullCommunicator()
        self.reporter = Reporter(self.comms, self.events, self.snapshots, self.metrics)
        self.pipelines: dict[str, CameraPipeline] = {}
        for cam in config.cameras:
            if not cam.enabled:
                continue
            capture = self.cameras.require(cam.id)
            self.pipelines[cam.id] = CameraPipeline(
                cam.id,
                capture,
                self.slot,
                self._zones_provider(cam),
                config.events,
                self.reporter,
                self.metrics,
                fps=cam.fps,
                min_overlap=self.options.min_overlap,
            )
        self.watchdog = Watchdog(list(self.pipelines.values()), config.model.watchdog_seconds)
        self.web: Any = None
        self.services: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._announced: list[ZoneRef] = []
        self._register_metrics()

    # -- wiring helpers --------------------------------------------------------------------------------------

    def _load_engine(self, bundle_dir: Path) -> Any:
        from edge.runtime.wrappers import load_model

        m = self.config.model
        return load_model(bundle_dir, m.engine, m.threads, m.precision)

    def _zones_provider(self, cam: CameraConfig) -> Callable[[], list[ZoneConfig]]:
        def zones() -> list[ZoneConfig]:
            # Zones drawn on the web page override the file's; an explicit empty list means "no zones".
            edited = self.store.get_zones(cam.id)
            return list(cam.zones) if edited is None else list(edited)

        return zones

    def _on_model_activated(self, manifest: Any, bundle_dir: Path) -> None:
        # Runs in the caller of activate() (start-up, a web request): the pipelines keep using the old engine
        # until the new one is fully loaded, then one reference changes between two frames.
        try:
            active = build_active(bundle_dir, self.slot.loader)
        except ShelfwatchError:
            raise
        except Exception as err:
            raise EngineError(f"model {manifest.version} could not be loaded: {err}") from err
        self.slot.swap(active)

    def _on_swap(self, old: ActiveModel | None, new: ActiveModel) -> None:
        if old is not None:
            self.metrics.remove(
                "shelfwatch_model_info", {"name": old.name, "version": old.version, "engine": old.engine}
            )
        self.metrics.set(
            "shelfwatch_model_info",
            "The running model (value 1).",
            1,
            {"name": new.name, "version": new.version, "engine": new.engine},
        )

    def _register_metrics(self) -> None:
        self.slot.add_listener(self._on_swap)
        self.metrics.gauge_callback(
            "shelfwatch_uptime_seconds", "Seconds since the agent started.", lambda: self.uptime()
        )
        self.metrics.gauge_callback(
            "shelfwatch_outbox_depth", "Events waiting for a broker acknowledgement.", lambda: self.comms.pending()
        )
        self.metrics.gauge_callback(
            "shelfwatch_mqtt_connected",
            "1 while the MQTT broker has accepted the connection.",
            lambda: int(self.comms.connected),
        )
        for cam_id, p in self.pipelines.items():
            labels = {"camera": cam_id}
            self.metrics.gauge_callback(
                "shelfwatch_capture_fps", "Frames per second the camera delivers.", p.capture_rate.rate, labels
            )
            self.metrics.gauge_callback(
                "shelfwatch_evaluated_fps", "Frames per second the model evaluates.", p.eval_rate.rate, labels
            )
            self.metrics.gauge_callback(
                "shelfwatch_skipped_fps", "Captured frames per second not evaluated.", p.skip_rate.rate, labels
            )

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Agent:
        """Start everything; returns once cameras, pipelines, MQTT and the web server are running."""
        self.started_at = time.time()
        self.comms.start()
        self.reporter.requeue_unqueued()
        self.models.on_activate(self._on_model_activated)
        self._install_configured_bundle()
        if self.slot.current is None:
            log.warning("no model is installed yet: cameras run, zones stay unknown until one is activated")
        for cam_id, pipeline in self.pipelines.items():
            capture = self.cameras.require(cam_id)
            capture.add_status_listener(self._status_listener(pipeline))
        self.cameras.start_all()
        for pipeline in self.pipelines.values():
            pipeline.start()
        self.watchdog.start()
        self._announce_zones()
        self._start_web()
        self._spawn(self._stats_loop, "agent-stats")
        self._spawn(self._systemd_loop, "agent-systemd")
        sdnotify.notify("READY=1")
        log.info(
            "agent %s started: %d camera(s), model %s, MQTT %s",
            self.config.device_id,
            len(self.pipelines),
            self.slot.current.version if self.slot.current else "none",
            f"{self.config.mqtt.host}:{self.config.mqtt.port}" if self.config.mqtt.enabled else "disabled",
        )
        return self

    def stop(self) -> None:
        """Graceful stop: web, pipelines, cameras; then flush the outbox, publish `offline`, close databases."""
        sdnotify.notify("STOPPING=1")
        self._stop.set()
        if self.web is not None:
            try:
                self.web.stop()
            except Exception:
                log.exception("stopping the web server failed")
        trainer = getattr(self.services, "trainer", None)
        if trainer is not None:
            try:
                trainer.stop()  # before the store closes: a run in progress stays so, resumed at the next start
            except Exception:
                log.exception("stopping the training runner failed")
        self.watchdog.stop()
        for pipeline in self.pipelines.values():
            pipeline.stop()
        self.cameras.stop_all()
        for t in self._threads:
            t.join(timeout=2)
        self.comms.stop(flush_timeout=self.options.flush_timeout)
        if self.outbox is not None:
            self.outbox.close()
        self.events.close()
        try:
            self.store.close()
        except Exception:
            log.exception("closing the dataset store failed")
        log.info("agent %s stopped", self.config.device_id)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _install_configured_bundle(self) -> None:
        try:
            self.models.load()
        except ShelfwatchError as err:
            log.error("installed models could not be loaded: %s", err)
        bundle = self.config.model.bundle
        if bundle is None:
            return
        try:
            from edge.bundle import inspect_bundle

            offered = inspect_bundle(bundle)
            installed = {row["version"] for row in self.models.list_versions()}
            if offered.version in installed:
                if self.models.active_version() is None:
                    self.models.activate(offered.version)
                return
            current = self.models.active()
            if current is not None and current.created >= offered.created:
                log.info(
                    "model.bundle %s is not newer than the running %s; not installed", offered.version, current.version
                )
                return
            self.models.install(bundle, activate=True)
        except ShelfwatchError as err:
            log.error(
                "model.bundle %s refused: %s (keeping %s)", bundle, err, self.models.active_version() or "no model"
            )

    def _status_listener(self, pipeline: CameraPipeline) -> Callable[[Any], None]:
        def on_status(status: Any) -> None:
            if status.state == "starting":
                return
            pipeline.set_online(status.state == "online")

        return on_status

    def _start_web(self) -> None:
        if not self.options.web:
            return
        try:
            from edge.web import create_app
            from edge.web.server import WebServer
            from edge.web.services import Services
        except ImportError as err:
            log.warning("web studio not available: %s", err)
            return
        self.services = Services(
            store=self.store,
            cameras=self.cameras,
            models=self.models,
            runtime=self,
            events=self.events,
            metrics=self.metrics,
        )
        if self.config.trainer.url:
            try:
                from edge.web.training import build_runner

                # Built now, not on the first request: training runs that a restart interrupted resume at once.
                self.services.trainer = build_runner(self.config, self.store, self.models)
            except Exception:
                log.exception("the training runner could not start; the web builds one on first use")
        try:
            app = create_app(self.config, self.services)
            self.web = WebServer(app, self.config.web.host, self.config.web.port).start()
        except Exception:
            log.exception("the web studio could not start; the agent keeps running without it")
            self.web = None

    # -- periodic work ---------------------------------------------------------------------------------------

    def _announce_zones(self) -> None:
        refs: list[ZoneRef] = []
        for cam_id, p in self.pipelines.items():
            for z in p.zone_configs():
                refs.append(ZoneRef(cam_id, z.id, z.name or z.id))
        if refs != self._announced:
            self._announced = refs
            self.comms.announce(refs)

    def _stats_loop(self) -> None:
        while not self._stop.wait(self.options.stats_interval):
            try:
                self._announce_zones()
                self.comms.publish("stats", to_json(self.stats()), retain=False, qos=0)
            except Exception:
                log.exception("publishing stats failed")

    def _systemd_loop(self) -> None:
        interval = sdnotify.watchdog_interval()
        if interval is None:
            return
        while not self._stop.wait(interval):
            if self.healthy():
                sdnotify.notify("WATCHDOG=1")
            else:
                # Withholding the ping lets systemd restart us: a hung pipeline that did not recover is worse.
                log.warning("not feeding the systemd watchdog: a pipeline is unhealthy")

    # -- status ----------------------------------------------------------------------------------------------

    def uptime(self) -> float:
        """Seconds since start()."""
        return 0.0 if self.started_at is None else time.time() - self.started_at

    def healthy(self) -> bool:
        """True while every pipeline runs and none is stuck in an engine call."""
        return all(p.healthy for p in self.pipelines.values())

    def stats(self) -> dict[str, Any]:
        """The MQTT `stats` payload: per-camera fps, skipped fps, inference ms, model version, uptime."""
        model = self.slot.current
        return {
            "device": self.config.device_id,
            "uptime": round(self.uptime(), 1),
            "model": model_ref(model),
            "outbox": self.comms.pending(),
            "cameras": {
                cam_id: {
                    "fps": round(p.eval_rate.rate(), 2),
                    "capture_fps": round(p.capture_rate.rate(), 2),
                    "skipped_fps": round(p.skip_rate.rate(), 2),
                    "inference_ms": round(p.stats.last_inference_ms, 1),
                    "status": p.status if p.online else "offline",
                }
                for cam_id, p in self.pipelines.items()
            },
        }

    def status(self) -> dict[str, Any]:
        """What `/api/v1/status` shows: device, model, MQTT, outbox, cameras with zones and pipeline health."""
        model = self.slot.current
        cameras = []
        for cam_id, p in self.pipelines.items():
            capture = self.cameras.get(cam_id)
            cameras.append(
                {
                    "id": cam_id,
                    "capture": capture.status().as_dict() if capture is not None else None,
                    "pipeline": {
                        "status": p.status,
                        "online": p.online,
                        "evaluated": p.stats.evaluated,
                        "skipped": p.stats.skipped,
                        "errors": p.stats.errors,
                        "last_error": p.stats.last_error,
                        "watchdog_trips": p.stats.watchdog_trips,
                        "evaluated_fps": round(p.eval_rate.rate(), 2),
                        "inference_ms": round(p.stats.last_inference_ms, 1),
                    },
                    "zones": {
                        zid: {"state": s.state, "score": s.score, "since": s.since}
                        for zid, s in p.zone_states().items()
                    },
                }
            )
        refusal = getattr(self.models, "last_refusal", None)
        return {
            "device": self.config.device_id,
            "uptime": round(self.uptime(), 1),
            "healthy": self.healthy(),
            "model": None
            if model is None
            else {
                "name": model.name,
                "version": model.version,
                "task": model.task,
                "engine": model.engine,
                # What the engine computes in (OpenVINO may differ from what was asked; bf16 changes numbers).
                "precision": getattr(getattr(model.model, "engine", None), "precision", None),
            },
            "model_error": self.slot.last_error,
            "last_refusal": refusal.as_dict() if refusal is not None else None,
            "mqtt": {
                "enabled": self.config.mqtt.enabled,
                "connected": self.comms.connected,
                "outbox": self.comms.pending(),
            },
            "events": self.events.count(),
            "cameras": cameras,
        }
