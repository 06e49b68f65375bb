"""Running skills: a camera's skills on each frame (`SkillRunner`), and the device's skills (`SkillsHub`).

Per frame, every enabled skill runs its blocks in graph order, each on its input block's output; model calls are
cached in the frame, so a project used by several skills (or twice in one) runs once. A block that has no model
to run (`SkillIdle`) makes its skill idle for that frame, with the reason in status; any other failure marks the
skill `error` and the other skills carry on. Each block's last output, its time and duration are kept for the
debug view, and its duration is observed in `shelfwatch_skill_block_ms{camera,skill,block}`.

Events: for every input read by an event sink (mqtt_event, webhook), each firing item becomes ONE event through
the device's event writer (event log, snapshot, full-disk tolerance) with `type` (the mqtt_event's `event`, else
the webhook's, else the skill id), `skill` and `trace` (each upstream block's output for that zone, oldest block
first). The writer's delivery calls `route(event)`: the event's webhooks get it in their durable outboxes, and
MQTT gets it when an mqtt_event asked for it, with the same `id`.

Edits: `SkillRunner.replace()` builds the new skills completely before swapping them in between two frames; a
refused edit leaves the running skills untouched.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.comms.base import Communicator
from edge.events import Event, EventDraft, SnapshotImage
from edge.pipeline.metrics import MetricsRegistry
from edge.pipeline.zone_scoring import Zone, frame_snapshot
from edge.skills.config import SKILLS_ADAPTER, SkillConfig, check_unique_skills, normalise_raw
from edge.skills.context import BuildContext, InboxTarget, ModelSource, SkillIdle
from edge.skills.inbox import Inbox
from edge.skills.registry import BlockSettings, build_block
from edge.skills.values import Frame, Item
from edge.skills.webhook import WebhookHub, WebhookQueue, event_body
from edge.timestamps import utc_now_iso

log = logging.getLogger(__name__)

TRACE_ITEMS = 5  # items per block in a trace (the zone's, best first)
DEBUG_ITEMS = 20
EventSubmit = Callable[[EventDraft, SnapshotImage | None], None]


@dataclass
class EventRoute:
    """Where the events of one input go: its type, whether MQTT gets them, which webhook outboxes."""

    input: str
    type: str
    mqtt: bool = False
    webhooks: list[WebhookQueue] = field(default_factory=list)


@dataclass
class BlockRecord:
    """A block's last output, for the debug view."""

    output: list[dict[str, Any]] = field(default_factory=list)
    at: str | None = None
    ms: float = 0.0
    runs: int = 0


class BlockFailed(Exception):
    """A block of a `strict` skill raised (the default skill: its camera pipeline reports it)."""

    def __init__(self, settings: BlockSettings, err: Exception, frame: Frame) -> None:
        super().__init__(f"block {settings.id!r} ({settings.type}) failed: {err}")
        self.settings = settings
        self.error = err
        self.frame = frame


class Skill:
    """One skill built from its config: blocks in graph order, event routes, last outputs.

    `strict`: a failing block raises BlockFailed instead of marking the skill `error` (the default skill, whose
    pipeline reports failures as today). The blocks after the model blocks run under `lock`, which `offline()` and
    `zones_changed()` take too: a camera going offline while a frame is evaluated changes no state halfway, and a
    hung model call holds nothing.
    """

    def __init__(self, config: SkillConfig, ctx: BuildContext, strict: bool = False) -> None:
        self.config = config
        self.ctx = ctx = replace(ctx, blocks={})
        self.strict = strict
        self.lock = threading.RLock()
        self.order = config.order()
        self.blocks = ctx.blocks  # a block may read the one it reads from (the `contract: zone` sinks do)
        try:
            for s in self.order:
                self.blocks[s.id] = build_block(s, ctx)
        except Exception:
            self.close()
            raise
        by_id = {s.id: s for s in self.order}
        self.chain: dict[str, list[str]] = {}
        for s in self.order:
            chain: list[str] = []
            cur: BlockSettings | None = s
            while cur is not None:
                chain.insert(0, cur.id)
                cur = by_id[cur.input] if cur.input is not None else None
            self.chain[s.id] = chain
        self.routes: dict[str, EventRoute] = {}
        self.hooks: dict[str, WebhookQueue] = {}
        types: dict[str, list[str]] = {}  # input -> candidate types, mqtt_event's first
        for s in self.order:
            if not type(s).event_sink or getattr(s, "contract", "skill") == "zone":
                continue  # a `contract: zone` sink sends today's events itself
            assert s.input is not None
            route = self.routes.setdefault(s.input, EventRoute(s.input, config.id))
            if s.type == "mqtt_event":
                route.mqtt = True
                types.setdefault(s.input, []).insert(0, str(getattr(s, "event", "")))
            elif s.type == "webhook":
                assert ctx.webhooks is not None, "webhooks need the device's webhook hub"
                queue = ctx.webhooks.queue(ctx.camera, config.id, s.id, s)
                route.webhooks.append(queue)
                self.hooks[s.id] = queue
                if getattr(s, "event", None):
                    types.setdefault(s.input, []).append(str(getattr(s, "event", "")))
        for inp, candidates in types.items():
            self.routes[inp].type = candidates[0]
        self.status = "starting"
        self.reason: str | None = None
        self.last: dict[str, BlockRecord] = {s.id: BlockRecord() for s in self.order}

    @property
    def id(self) -> str:
        """The skill's id."""
        return self.config.id

    def model_ref(self) -> dict[str, str | None]:
        """{name, version} of the skill's first model block's running model."""
        for n, project in self.config.projects():
            del n
            m = self.ctx.models.get(project)
            if m is not None:
                return {"name": m.name, "version": m.version}
        return {"name": None, "version": None}

    def run(self, frame: Frame, metrics: MetricsRegistry | None) -> list[tuple[EventRoute, Item, list[dict[str, Any]]]]:
        """Run the blocks on one frame; the decisions for the event sinks (route, item, trace)."""
        outputs: dict[str, list[Item]] = {}
        for s in self.order:
            block = self.blocks[s.id]
            t0 = time.perf_counter()
            try:
                inp = outputs.get(s.input, []) if s.input is not None else []
                if type(s).category == "model":
                    out = block.run(inp, frame)
                elif not frame.keep_going():
                    return []  # the pipeline gave up on this frame (a hung model call): it changes nothing
                else:
                    with self.lock:
                        out = block.run(inp, frame)
            except SkillIdle as idle:
                if self.status != "idle" or self.reason != str(idle):
                    log.warning("skill %s/%s is idle: %s", self.ctx.camera, self.id, idle)
                self.status, self.reason = "idle", str(idle)
                return []
            except Exception as err:
                if self.strict:
                    raise BlockFailed(s, err, frame) from err
                reason = f"block {s.id!r} ({s.type}) failed: {err}"
                if self.reason != reason:
                    log.exception("skill %s/%s: %s", self.ctx.camera, self.id, reason)
                self.status, self.reason = "error", reason
                return []
            ms = (time.perf_counter() - t0) * 1000.0
            outputs[s.id] = out
            rec = self.last[s.id]
            rec.output = [i.as_dict() for i in out[:DEBUG_ITEMS]]
            rec.at, rec.ms, rec.runs = frame.ts, ms, rec.runs + 1
            if metrics is not None:
                labels = {"camera": self.ctx.camera, "skill": self.id, "block": s.id}
                metrics.observe("shelfwatch_skill_block_ms", "Time of one skill block per frame (ms).", ms, labels)
        if self.status != "running":
            log.info("skill %s/%s is running", self.ctx.camera, self.id)
        self.status, self.reason = "running", None
        decisions = []
        for route in self.routes.values():
            for item in outputs.get(route.input, []):
                if item.fires:
                    decisions.append((route, item, self._trace(route.input, item.zone, outputs)))
        return decisions

    def _trace(self, block_id: str, zone: str, outputs: dict[str, list[Item]]) -> list[dict[str, Any]]:
        by_id = {s.id: s for s in self.order}
        trace = []
        for b in self.chain[block_id]:
            items = sorted((i for i in outputs.get(b, []) if i.zone == zone), key=lambda i: -i.number)
            trace.append({"block": b, "type": by_id[b].type, "output": [i.as_dict() for i in items[:TRACE_ITEMS]]})
        return trace

    def debug(self) -> dict[str, Any]:
        """The chain block by block with each block's last output and when it came."""
        return {
            "id": self.id,
            "status": self.status,
            "reason": self.reason,
            "blocks": [
                {
                    "id": s.id,
                    "type": s.type,
                    "input": s.input,
                    "category": type(s).category,
                    "output": self.last[s.id].output,
                    "at": self.last[s.id].at,
                    "ms": round(self.last[s.id].ms, 3),
                    "runs": self.last[s.id].runs,
                }
                for s in self.order
            ],
            "webhooks": {block: q.status() for block, q in self.hooks.items()},
        }

    def zones_changed(self, zones: list[Zone]) -> None:
        """Tell every block, in graph order, the camera's zones now."""
        with self.lock:
            for s in self.order:
                self.blocks[s.id].zones_changed(zones)

    def offline(self) -> None:
        """Tell every block, in graph order, that the camera went offline."""
        with self.lock:
            for s in self.order:
                self.blocks[s.id].offline()

    def close(self) -> None:
        """Close every block (webhook outboxes stay with the hub)."""
        for b in self.blocks.values():
            try:
                b.close()
            except Exception:
                log.exception("closing block %s failed", b.id)


class SkillRunner:
    """A camera's skills (None: the camera runs its default skill, edge.skills.default, in CameraPipeline)."""

    def __init__(
        self,
        camera: str,
        configs: Sequence[SkillConfig] | None,
        make_ctx: Callable[[str], BuildContext],
        submit: EventSubmit | None = None,
        metrics: MetricsRegistry | None = None,
        strict: bool = False,
    ) -> None:
        self.camera = camera
        self.make_ctx = make_ctx
        self.submit = submit
        self.metrics = metrics
        self.strict = strict
        self._lock = threading.Lock()
        self.configs: list[SkillConfig] | None = None
        self.skills: list[Skill] = []
        self.last_frame_at: str | None = None
        self.last_model_ms = 0.0
        self.last_total_ms = 0.0
        if configs is not None:
            self.replace(configs)

    @property
    def active(self) -> bool:
        """Whether this camera runs skills (rather than today's rule)."""
        return self.configs is not None

    def replace(self, configs: Sequence[SkillConfig] | None) -> None:
        """Build the new skills completely, then swap them in between two frames (raises: nothing changes)."""
        configs = list(configs) if configs is not None else None
        if configs is not None:
            check_unique_skills(configs)
        built: list[Skill] = []
        try:
            for c in configs or []:
                if c.enabled:
                    built.append(Skill(c, self.make_ctx(c.id), self.strict))
        except Exception:
            for s in built:
                s.close()
            raise
        with self._lock:
            old, self.skills, self.configs = self.skills, built, configs
        for s in old:
            s.close()

    def run(
        self, image: np.ndarray, zones: Sequence[Zone], seq: int = -1, keep_going: Callable[[], bool] | None = None
    ) -> Frame:
        """Run every skill on one frame and submit their events (`keep_going`: asked before the blocks after a
        model; False ends the frame there)."""
        t0 = time.perf_counter()
        frame = Frame(image=image, zones=list(zones), now=time.monotonic(), ts=utc_now_iso("milliseconds"), seq=seq)
        if keep_going is not None:
            frame.keep_going = keep_going
        with self._lock:
            skills = list(self.skills)
        for skill in skills:
            decisions = skill.run(frame, self.metrics)
            if decisions and self.submit is not None:
                model = skill.model_ref()
                for route, item, trace in decisions:
                    self._emit(skill, route, item, trace, frame, model)
        self.last_frame_at = frame.ts
        self.last_model_ms = frame.model_ms
        self.last_total_ms = (time.perf_counter() - t0) * 1000.0
        return frame

    def _emit(
        self,
        skill: Skill,
        route: EventRoute,
        item: Item,
        trace: list[dict[str, Any]],
        frame: Frame,
        model: dict[str, str | None],
    ) -> None:
        # Drawn on the event writer's thread.
        image = frame_snapshot(frame.image, frame.polygon(item.zone), item.state or "low_stock", item.bbox)
        draft = EventDraft(
            phase=item.phase or "once",
            camera=self.camera,
            zone=item.zone,
            label=item.label,
            score=float(item.score),
            bbox=item.bbox,
            ts=frame.ts,
            model_name=model["name"],
            model_version=model["version"],
            type=route.type,
            extra={"skill": skill.id, "trace": trace},
        )
        assert self.submit is not None
        self.submit(draft, image)
        if self.metrics is not None:
            self.metrics.inc(
                "shelfwatch_skill_events_total",
                "Events raised by skills.",
                {"camera": self.camera, "skill": skill.id, "type": route.type},
            )

    def route(self, event: Event, comms: Communicator) -> bool:
        """Deliver a skill event to its sinks (webhook outboxes first, then MQTT); False when no skill claims it."""
        skill_id, etype = event.payload.get("skill"), event.payload.get("type")
        with self._lock:
            skill = next((s for s in self.skills if s.id == skill_id), None)
        if skill is None:
            return False
        routes = [r for r in skill.routes.values() if r.type == etype]
        if not routes:
            return False
        body = event_body(event.payload)
        for r in routes:
            for q in r.webhooks:
                q.put(event.id, body)
        if any(r.mqtt for r in routes):
            comms.publish_durable("events", event.to_json(), key=event.id)
        return True

    def zones_changed(self, zones: Sequence[Zone]) -> None:
        """The camera's zones changed: every skill's blocks are told (per-zone memory of a gone zone goes)."""
        with self._lock:
            skills = list(self.skills)
        for s in skills:
            s.zones_changed(list(zones))

    def offline(self) -> None:
        """The camera went offline: every skill's blocks are told (today's zones go `unknown` at once)."""
        with self._lock:
            skills = list(self.skills)
        for s in skills:
            s.offline()

    def state_skills(self) -> list[str]:
        """Ids of the running skills with an mqtt_state block (announced to Home Assistant)."""
        with self._lock:
            return [s.id for s in self.skills if any(b.type == "mqtt_state" for b in s.order)]

    def summary(self) -> dict[str, Any]:
        """Per skill: status, why it is idle (or failed), each block's last time in ms (status and MQTT stats)."""
        with self._lock:
            skills = list(self.skills)
        return {
            s.id: {
                "status": s.status,
                "reason": s.reason,
                "block_ms": {b: round(r.ms, 3) for b, r in s.last.items()},
            }
            for s in skills
        }

    def debug(self) -> dict[str, Any]:
        """The camera's skills for the debug view and status."""
        with self._lock:
            skills = list(self.skills)
        return {
            "camera": self.camera,
            "active": self.active,
            "last_frame_at": self.last_frame_at,
            "model_ms": round(self.last_model_ms, 3),
            "total_ms": round(self.last_total_ms, 3),
            "skills": [s.debug() for s in skills],
        }

    def close(self) -> None:
        """Close every skill's blocks."""
        with self._lock:
            old, self.skills = self.skills, []
        for s in old:
            s.close()


@dataclass(eq=False)
class SkillsHub:
    """The device's skills: a runner per camera, the webhook outboxes, the inbox, skill edits saved in data_dir.

    Collected frames go to `inbox` (the device's review inbox, edge.assist.inbox.InboxWriter: the library's
    ?inbox=true view), else to the folder edge.skills.inbox.Inbox keeps under data_dir/inbox.
    A camera's skills come from `<data_dir>/skills/<camera>.json` when the studio saved an edit (as the user wrote
    them, `${ENV}` secrets included), else from edge.yaml's `skills`; none: today's rule.
    """

    data_dir: Path
    models: ModelSource
    comms: Communicator
    submit: EventSubmit | None
    metrics: MetricsRegistry | None = None
    min_overlap: float = 0.5
    # The studio's inbox (edge.assist.inbox.InboxWriter on a device); a folder of its own otherwise.
    inbox: InboxTarget | None = None
    webhooks: WebhookHub = field(init=False)
    runners: dict[str, SkillRunner] = field(default_factory=dict, init=False)
    directory: Path = field(init=False)

    def __post_init__(self) -> None:
        self.webhooks = WebhookHub(self.data_dir / "webhooks")
        if self.inbox is None:
            self.inbox = Inbox(self.data_dir / "inbox")
        self.directory = self.data_dir / "skills"

    def context(self, camera: str) -> Callable[[str], BuildContext]:
        """The build context factory of a camera's skills."""

        def make(skill: str) -> BuildContext:
            # The hub's services, in BuildContext's field order (camera, skill, models, comms, data_dir, ...).
            return BuildContext(camera, skill, self.models, self.comms, self.data_dir, self.webhooks, self.inbox,
                                self.min_overlap)  # fmt: skip

        return make

    def runner(self, camera: str, configured: Sequence[SkillConfig] | None) -> SkillRunner:
        """Build the camera's runner (a saved edit wins over edge.yaml; a broken saved edit is logged, not run)."""
        configs = configured
        saved = self.saved(camera)
        if saved is None and self.has_saved(camera):
            configs = None  # the studio switched the camera back to today's rule
        elif saved is not None:
            try:
                configs = SKILLS_ADAPTER.validate_python(saved)
            except Exception as err:
                log.error("camera %s: the saved skills are invalid, running edge.yaml's: %s", camera, err)
        try:
            runner = SkillRunner(camera, configs, self.context(camera), self.submit, self.metrics)
        except Exception as err:
            log.error("camera %s: its skills could not be built (%s); running today's rule", camera, err)
            runner = SkillRunner(camera, None, self.context(camera), self.submit, self.metrics)
        self.runners[camera] = runner
        return runner

    def has_saved(self, camera: str) -> bool:
        """Whether the studio saved this camera's skills (or today's rule: null)."""
        return (self.directory / f"{camera}.json").is_file()

    def saved(self, camera: str) -> Any:
        """The raw skills the studio saved for a camera, or None."""
        path = self.directory / f"{camera}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as err:
            log.error("%s is unreadable: %s", path, err)
            return None

    def save(self, camera: str, raw: list[Any] | None) -> list[SkillConfig] | None:
        """Validate, build and swap in a camera's skills (None: today's rule), then keep them (raises: the
        running skills stay)."""
        runner = self.runners[camera]
        raw = normalise_raw(raw)
        configs = SKILLS_ADAPTER.validate_python(raw) if raw is not None else None
        runner.replace(configs)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{camera}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw, indent=1), encoding="utf-8")
        tmp.replace(path)
        return configs

    def project_names(self) -> set[str]:
        """The projects the cameras' skills name now (their versions run in those skills, not in the cameras
        without skills)."""
        names: set[str] = set()
        for runner in list(self.runners.values()):
            for config in runner.configs or []:
                names.update(name for _, name in config.projects())
        return names

    def route(self, event: Event) -> bool:
        """The event writer's delivery hook: a skill event goes to its sinks; others to the default MQTT path."""
        if "skill" not in event.payload:
            return False
        runner = self.runners.get(str(event.payload.get("camera")))
        return runner.route(event, self.comms) if runner is not None else False

    def start(self) -> None:
        """Start the webhook senders."""
        self.webhooks.start()

    def stop(self) -> None:
        """Stop the senders and close every skill."""
        self.webhooks.stop()
        for r in self.runners.values():
            r.close()
