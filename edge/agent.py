"""The device's composition root: builds every part from an EdgeConfig, starts them in order, stops them gracefully.

Parts: dataset store, camera hub, model repository and the model slot the pipelines read, one CameraPipeline per
enabled camera plus a Watchdog, the communicator (MQTT with its SQLite outbox, or nothing when disabled), the event
log and snapshots, the metrics registry, the web studio (when edge.web is installed), a stats publisher and the
systemd notifier (READY=1 once started; WATCHDOG=1 only while every pipeline is healthy).

`wire()` builds and connects the parts (the benchmark runs its rig from it too); `Agent` starts and stops them.
Nothing here decides anything: which bundle to install is the model repository's policy (`offer`), the status and
stats shapes live where they are served (edge.web.status, edge.pipeline.stats).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge import sdnotify
from edge.assist.inbox import InboxSink, InboxWriter, active_project
from edge.comms.base import Communicator, NullCommunicator, ZoneRef
from edge.comms.outbox import Outbox
from edge.config.model import CameraConfig, EdgeConfig, ZoneConfig
from edge.errors import ShelfwatchError
from edge.events import EventLog, SnapshotStore
from edge.fleet.device import FleetFollower
from edge.pipeline.camera_pipeline import CameraPipeline, FrameFeed, PipelineSink, Watchdog
from edge.pipeline.metrics import MetricsRegistry
from edge.pipeline.model_slot import ActiveModel, ModelSlot
from edge.pipeline.reporter import Reporter
from edge.pipeline.stats import publish_stats, stats_payload
from edge.skills.models import ProjectModels, camera_activation, camera_version
from edge.skills.runner import SkillsHub

if TYPE_CHECKING:
    from edge.cameras.capture import CameraCapture, CameraHub, SourceFactory
    from edge.model_repository import ModelRepository
    from edge.store import DatasetStore
    from edge.web.server import WebServer
    from edge.web.services import Services

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
    source_factory: SourceFactory | None = None
    # The benchmark: what each pipeline reads from its capture, where pipelines report, and no fps limit.
    feed: Callable[[CameraCapture], FrameFeed] | None = None
    sink: Callable[[Reporter], PipelineSink] | None = None
    unpaced: bool = False


@dataclass(eq=False)  # parts (and the Agent built on them) are compared by identity
class DeviceParts:
    """Every part of a device, built from one EdgeConfig and connected, none started."""

    config: EdgeConfig
    data_dir: Path
    metrics: MetricsRegistry
    store: DatasetStore
    cameras: CameraHub
    models: ModelRepository
    slot: ModelSlot
    events: EventLog
    snapshots: SnapshotStore
    outbox: Outbox | None
    comms: Communicator
    reporter: Reporter
    pipelines: dict[str, CameraPipeline]
    watchdog: Watchdog
    skills: SkillsHub
    inbox: InboxWriter | None = None


def wire(config: EdgeConfig, options: AgentOptions, cameras: CameraHub | None = None) -> DeviceParts:
    """Build and connect the device's parts (the agent starts them; the benchmark runs them in slices).

    `cameras` replaces the hub built from config.cameras (the benchmark gates each camera's decoding).
    """
    from edge.cameras.capture import CameraHub
    from edge.model_repository import ModelRepository, load_installed_model
    from edge.store import DatasetStore

    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    metrics = MetricsRegistry()
    store = DatasetStore(data_dir, config.dataset)
    if cameras is None:
        hub_kwargs: dict[str, Any] = {"stall_seconds": options.camera_stall_seconds}
        if options.source_factory is not None:
            hub_kwargs["source_factory"] = options.source_factory
        cameras = CameraHub(config.cameras, **hub_kwargs)
    slot = ModelSlot(functools.partial(load_installed_model, settings=config.model))
    events = EventLog(data_dir / "events.db", config.device_id)
    snapshots = SnapshotStore(data_dir / "snapshots", config.events.snapshot_retention)
    events.snapshots = snapshots
    outbox: Outbox | None = None
    comms: Communicator
    if config.mqtt.enabled:
        from edge.comms.mqtt import MqttCommunicator

        outbox = Outbox(data_dir / "outbox.db")
        comms = MqttCommunicator(
            config.mqtt,
            config.device_id,
            outbox,
            window=options.mqtt_window,
            reconnect_max_seconds=options.mqtt_reconnect_max_seconds,
        )
    else:
        comms = NullCommunicator()
    reporter = Reporter(comms, events, snapshots, metrics)
    sink: PipelineSink = options.sink(reporter) if options.sink is not None else reporter
    models = ModelRepository.from_config(config)
    loader = functools.partial(load_installed_model, settings=config.model)
    inbox = InboxWriter(store, config.inbox, project=functools.partial(active_project, models))  # issue 13
    projects = ProjectModels(models, store, loader, pointers=data_dir / "skills" / "active-versions.json")
    skills = SkillsHub(data_dir, projects, comms, reporter.writer.submit, metrics, options.min_overlap, inbox=inbox)
    reporter.route = skills.route
    sink = InboxSink(sink, inbox, config.events.on_threshold)
    pipelines: dict[str, CameraPipeline] = {}
    for cam in config.cameras:
        if not cam.enabled:
            continue
        capture = cameras.require(cam.id)
        pipelines[cam.id] = CameraPipeline(
            cam.id,
            options.feed(capture) if options.feed is not None else capture,
            slot,
            _zones_provider(store, cam),
            config.events,
            sink,
            metrics,
            fps=None if options.unpaced else cam.fps,
            min_overlap=options.min_overlap,
            skills=skills.runner(cam.id, cam.skills),
        )
    watchdog = Watchdog(list(pipelines.values()), config.model.watchdog_seconds)
    return DeviceParts(
        config, data_dir, metrics, store, cameras, models, slot, events, snapshots,
        outbox, comms, reporter, pipelines, watchdog, skills, inbox,
    )  # fmt: skip


def _zones_provider(store: DatasetStore, cam: CameraConfig) -> Callable[[], list[ZoneConfig]]:
    def zones() -> list[ZoneConfig]:
        # Zones drawn on the web page override the file's; an explicit empty list means "no zones".
        edited = store.get_zones(cam.id)
        return list(cam.zones) if edited is None else list(edited)

    return zones


class Agent(DeviceParts):
    """The running device: its parts (from `wire()`) with `start()`, `stop()`, `healthy()` and the web's services."""

    def __init__(self, config: EdgeConfig, options: AgentOptions | None = None) -> None:
        self.options = options or AgentOptions()
        super().__init__(**vars(wire(config, self.options)))
        self.started_at: float | None = None
        self.web: WebServer | None = None
        self.services: Services | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._announced: list[ZoneRef] = []
        self.fleet: FleetFollower | None = None
        self._register_metrics()

    # -- wiring helpers --------------------------------------------------------------------------------------

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
            for name, text, rate in (
                ("shelfwatch_capture_fps", "Frames per second the camera delivers.", p.capture_rate),
                ("shelfwatch_evaluated_fps", "Frames per second the model evaluates.", p.eval_rate),
                ("shelfwatch_skipped_fps", "Captured frames per second not evaluated.", p.skip_rate),
            ):
                self.metrics.gauge_callback(name, text, rate.rate, {"camera": cam_id})

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Agent:
        """Start everything; returns once cameras, pipelines, MQTT and the web server are running."""
        self.started_at = time.time()
        self.comms.start()
        self.reporter.requeue_unqueued()
        projects = self.skills.models
        if isinstance(projects, ProjectModels):
            # A skill project's version runs in its skills only; the cameras without skills keep their model.
            self.models.on_activate(camera_activation(projects, self.slot.on_activated, self.skills.project_names))
            self.models.on_activate(projects.on_activated)
        else:
            self.models.on_activate(self.slot.on_activated)
        self.skills.start()
        self._install_configured_bundle()
        if self.config.group is not None:
            self.fleet = FleetFollower.from_config(self.config, self.comms, self.models).start()
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
        trainer = self.services.trainer if self.services is not None else None
        if trainer is not None:
            try:
                trainer.stop()  # before the store closes: a run in progress stays so, resumed at the next start
            except Exception:
                log.exception("stopping the training runner failed")
        if self.fleet is not None:
            self.fleet.stop()
        self.watchdog.stop()
        for pipeline in self.pipelines.values():
            pipeline.stop()
        # The events the pipelines queued go to the log and the outboxes while the skills still route them (their
        # webhooks) and before the MQTT outbox drains; a refusing disk gets one more try, what it still refuses
        # is lost, as the writer's stop logs.
        self.reporter.writer.flush(timeout=self.options.flush_timeout)
        self.reporter.writer.stop()
        self.skills.stop()
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
        if self.config.model.bundle is not None:
            self.models.offer(self.config.model.bundle)
        projects = self.skills.models
        if not isinstance(projects, ProjectModels):
            return
        try:  # the device's last activation was a skill project's: the cameras run what they ran before it
            version = camera_version(projects, self.skills.project_names())
            current = self.slot.current
            if version is not None and (current is None or current.version != version):
                self.slot.load(self.models.path_of(version))
        except Exception as err:
            log.error("the cameras' model could not be loaded: %s", err)

    def _status_listener(self, pipeline: CameraPipeline) -> Callable[[Any], None]:
        def on_status(status: Any) -> None:
            if status.state == "starting":
                return
            pipeline.set_online(status.state == "online")

        return on_status

    def web_services(self) -> Services:
        """What the web studio is given: the parts it serves, the model slot for predictions and status."""
        from edge.web.services import Services

        return Services(
            store=self.store,
            cameras=self.cameras,
            models=self.models,
            events=self.events,
            metrics=self.metrics,
            slot=self.slot,
            pipelines=self.pipelines,
            comms=self.comms,
            started_at=self.started_at,
            skills=self.skills,
        )

    def _start_web(self) -> None:
        if not self.options.web:
            return
        try:
            from edge.web import create_app
            from edge.web.server import WebServer
        except ImportError as err:
            log.warning("web studio not available: %s", err)
            return
        self.services = self.web_services()
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
            if p.skills is not None and p.skills.active:
                # Its skills' mqtt_state blocks publish <camera>/<skill>/<zone>/state: those are its sensors.
                for skill in getattr(p.skills, "state_skills", list)():
                    for z in p.zone_configs():
                        refs.append(ZoneRef(cam_id, z.id, z.name or z.id, skill=skill))
                continue
            for z in p.zone_configs():
                refs.append(ZoneRef(cam_id, z.id, z.name or z.id))
        if refs != self._announced:
            self._announced = refs
            self.comms.announce(refs)

    def _stats_loop(self) -> None:
        while not self._stop.wait(self.options.stats_interval):
            try:
                self._announce_zones()
                payload = stats_payload(
                    self.config.device_id, self.uptime(), self.slot.current, self.comms.pending(), self.pipelines
                )
                publish_stats(self.comms, payload)
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
