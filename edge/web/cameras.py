"""Live view, capture and the zones editor, per camera."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from pydantic import BaseModel, Field, ValidationError, field_validator

from edge.config import CameraConfig, EdgeConfig, ZoneConfig
from edge.config.model import MAX_ZONES_PER_CAMERA
from edge.web.http import ApiError, read_model, validation_message
from edge.web.projects import project_ref
from edge.web.security import requires
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("cameras", __name__)
NAV = [("cameras.live", "Live", 10), ("cameras.zones_page", "Zones", 60)]

STREAM_MAX_FPS = 10.0
# Each open MJPEG stream holds one of the web server's worker threads (edge.web.server.THREADS = 16) for as long as
# it is watched; past this many the next one is refused (503) so that pages and the API keep answering.
MAX_STREAMS = 10
STREAM_SLOTS_KEY = "shelfwatch.stream_slots"
STREAM_JPEG_QUALITY = 80
CAPTURE_JPEG_QUALITY = 95
BOUNDARY = "shelfwatchframe"
# Server-sent live results: at most this many messages a second per connection (the pipeline evaluates at the
# camera's fps, usually 1-5), and a comment line this often when nothing changed, so a closed tab is noticed
# (its write fails) and frees its slot within that time.
LIVE_MAX_RATE = 5.0
LIVE_KEEPALIVE_S = 10.0


class ZoneIn(BaseModel):
    id: str | None = Field(None, description="Zone id (a slug); generated from the name when absent.")
    name: str | None = Field(None, max_length=80, description="Free-text name shown on the pages.")
    polygon: list[tuple[float, float]] = Field(description="Normalised [x, y] corners, at least 3 points.")
    label: str | None = Field(None, description="The label that means low stock here (else the model's).")


class ZonesBody(BaseModel):
    zones: list[ZoneIn] = Field(
        max_length=MAX_ZONES_PER_CAMERA, description="Every zone of the camera (the list replaces the previous one)."
    )

    @field_validator("zones")
    @classmethod
    def _unique(cls, zones: list[ZoneIn]) -> list[ZoneIn]:
        seen: set[str] = set()
        for zone in zones:
            if zone.id and zone.id in seen:
                raise ValueError(f"zone id {zone.id!r} is used twice")
            if zone.id:
                seen.add(zone.id)
        return zones


def zone_slug(name: str | None) -> str:
    """The id a zone named `name` gets: lower-case ASCII letters, digits and '-' ("End Cap" -> "end-cap")."""
    text = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9_-]+", "-", text).strip("-_")[:50].strip("-_")
    return slug or "zone"


def zones_with_ids(zones: list[ZoneIn]) -> list[ZoneConfig]:
    """ZoneConfigs of the body: a zone without id gets its name's slug, made unique with -2, -3..."""
    taken = {z.id for z in zones if z.id}
    out: list[ZoneConfig] = []
    for n, zone in enumerate(zones):
        zone_id = zone.id
        if not zone_id:
            base = zone_slug(zone.name)
            zone_id, k = base, 2
            while zone_id in taken:
                zone_id, k = f"{base}-{k}", k + 1
            taken.add(zone_id)
        try:
            out.append(
                ZoneConfig(
                    id=zone_id, name=(zone.name or "").strip() or None, polygon=zone.polygon, label=zone.label or None
                )
            )
        except ValidationError as err:
            raise ApiError(400, f"zones.{n}: {validation_message(err)}") from err
    return out


def _config() -> EdgeConfig:
    config: EdgeConfig = current_app.config["SHELFWATCH_CONFIG"]
    return config


def camera_config(camera_id: str) -> CameraConfig:
    """The configured camera, or 404."""
    cam = _config().camera(camera_id)
    if cam is None:
        raise ApiError(404, f"no camera {camera_id!r}")
    return cam


def _capture_for(camera_id: str) -> Any:
    """The running capture of a camera; 404 when unknown, 503 when it is not running."""
    camera_config(camera_id)
    hub = current_services().cameras
    if hub is None:
        raise ApiError(503, "cameras are not running on this device")
    capture = hub.get(camera_id)
    if capture is None:
        raise ApiError(503, f"camera {camera_id!r} is not running (disabled or failed to start)")
    return capture


def _status(camera: CameraConfig) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": camera.id,
        "name": camera.name or camera.id,
        "enabled": camera.enabled,
        "configured_fps": camera.fps,
        "status": "disabled" if not camera.enabled else "stopped",
        "fps": 0.0,
    }
    hub = current_services().cameras
    if hub is None or not camera.enabled:
        return info
    capture = hub.get(camera.id)
    if capture is None:
        return info
    details = capture.status().as_dict()
    info.update({k: v for k, v in details.items() if k not in ("id", "name")})
    info["status"] = details.get("state", "unknown")
    pipeline = current_services().pipelines.get(camera.id)
    if pipeline is not None:
        # What the model really evaluates, beside what the camera delivers (`fps`).
        info["evaluated_fps"] = round(pipeline.eval_rate.rate(), 2)
        info["inference_ms"] = round(pipeline.stats.last_inference_ms, 1)
    return info


def _zones_of(camera: CameraConfig) -> list[dict[str, Any]]:
    """Zones saved from the editor, else those of the config file."""
    saved = current_services().store.get_zones(camera.id)
    zones = saved if saved is not None else camera.zones
    return [z.model_dump(mode="json") if isinstance(z, BaseModel) else dict(z) for z in zones]


@bp.get("/live")
@requires("viewer")
def live() -> str:
    """The live view: every camera with its stream, status and a Capture button."""
    cameras = [_status(c) for c in _config().cameras]
    return render_template("live.html", cameras=cameras)


@bp.get("/zones")
@bp.get("/zones/<camera_id>")
@requires("viewer")
def zones_page(camera_id: str | None = None) -> Any:
    """The zones editor over the camera's current frame."""
    cameras = _config().cameras
    if camera_id is None and cameras:
        camera_id = cameras[0].id
    if camera_id is not None:
        camera_config(camera_id)
    return render_template("zones.html", cameras=cameras, camera_id=camera_id)


@bp.get("/api/v1/cameras")
@requires("viewer")
def list_cameras() -> Any:
    """Every configured camera with its status and measured fps."""
    return jsonify([_status(c) for c in _config().cameras])


@bp.get("/api/v1/cameras/<camera_id>")
@requires("viewer")
def get_camera(camera_id: str) -> Any:
    """One camera's status."""
    return jsonify(_status(camera_config(camera_id)))


def _latest_frame(camera_id: str) -> Any:
    capture = _capture_for(camera_id)
    frame = capture.latest()
    if frame is None:
        raise ApiError(503, f"camera {camera_id!r} has not delivered a frame yet", headers={"Retry-After": "1"})
    state = capture.status()
    if not state.online:  # the last frame is stale: never serve (or capture) it as the current one
        reason = f": {state.last_error}" if state.last_error else ""
        raise ApiError(503, f"camera {camera_id!r} is {state.state}{reason}", headers={"Retry-After": "2"})
    return frame


@bp.get("/api/v1/cameras/<camera_id>/frame.jpg")
@requires("viewer")
def frame_jpeg(camera_id: str) -> Response:
    """The camera's current frame as JPEG."""
    frame = _latest_frame(camera_id)
    resp = Response(frame.jpeg(STREAM_JPEG_QUALITY), mimetype="image/jpeg")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Frame-Seq"] = str(frame.seq)
    return resp


@bp.get("/api/v1/cameras/<camera_id>/stream.mjpg")
@requires("viewer")
def stream(camera_id: str) -> Response:
    """An MJPEG stream of the camera (at most STREAM_MAX_FPS); it ends when the server stops."""
    capture = _capture_for(camera_id)
    stopping = current_app.extensions["shelfwatch.stopping"]
    slots = _stream_slot()

    def parts() -> Iterator[bytes]:
        seq = -1
        next_at = 0.0
        while not stopping.is_set():
            frame = capture.wait_frame(seq, timeout=1.0)
            if frame is None:
                if not capture.running:
                    return  # a stopped camera answers wait_frame at once: end the stream instead of spinning
                continue
            seq = frame.seq
            data = frame.jpeg(STREAM_JPEG_QUALITY)
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
            yield head.encode("ascii") + data + b"\r\n"
            # Pace the stream so a fast camera does not saturate a phone's connection.
            wait = next_at - time.monotonic()
            if wait > 0:
                stopping.wait(wait)
            next_at = time.monotonic() + 1.0 / STREAM_MAX_FPS

    body = _ReleasingStream(parts(), slots)  # the server closes it when the client goes or the stream ends
    resp = Response(body, mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}", direct_passthrough=True)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _stream_slot() -> threading.BoundedSemaphore:
    """One of MAX_STREAMS long-lived responses (MJPEG streams and live result feeds share them); 503 when none."""
    slots = current_app.extensions.setdefault(STREAM_SLOTS_KEY, threading.BoundedSemaphore(MAX_STREAMS))
    if not slots.acquire(blocking=False):
        message = f"{MAX_STREAMS} live streams are open already; close one (a tab) and retry"
        raise ApiError(503, message, headers={"Retry-After": "5"})
    return slots


@bp.get("/api/v1/cameras/<camera_id>/live")
@requires("viewer")
def live_results(camera_id: str) -> Response:
    """Server-sent events (text/event-stream) of what the model sees on this camera.

    Each `live` event's data is the pipeline's latest result as JSON (edge.pipeline.camera_pipeline
    CameraPipeline.live: model, fps, inference_ms, zones with state/score/polygon, detections) plus `model_name`,
    the model version's display name, sent when it
    changes, at most LIVE_MAX_RATE a second. `?once=1` sends the current one and ends (scripts, tests).
    """
    camera_config(camera_id)
    pipeline = current_services().pipelines.get(camera_id)
    if pipeline is None:
        raise ApiError(503, f"camera {camera_id!r} is not evaluated here (no model pipeline runs for it)")
    once = request.args.get("once") in ("1", "true")
    stopping = current_app.extensions["shelfwatch.stopping"]
    slots = _stream_slot()

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    names: dict[str, str] = {}

    def message(payload: dict[str, Any]) -> bytes:
        # People read the version by its display name (`Shelf rows v1 · 2026-12-01 19:53`), looked up once each.
        version = (payload.get("model") or {}).get("version")
        if version:
            if version not in names:
                from edge.web.model_versions import display_name

                with app.app_context():
                    names[version] = display_name(version)
            payload = {**payload, "model_name": names[version]}
        return f"event: live\nid: {payload['seq']}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()

    def events() -> Iterator[bytes]:
        # The client waits this long before reconnecting after the stream ends (EventSource does so by itself).
        yield b"retry: 3000\n\n"
        payload = pipeline.live()
        yield message(payload)
        if once:
            return
        seq = payload["seq"]
        quiet_since = time.monotonic()
        while not stopping.is_set():
            changed = pipeline.wait_live(seq, timeout=1.0)
            if changed is None:
                if time.monotonic() - quiet_since >= LIVE_KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield b": keepalive\n\n"
                continue
            payload = pipeline.live()
            seq = payload["seq"]
            quiet_since = time.monotonic()
            yield message(payload)
            stopping.wait(1.0 / LIVE_MAX_RATE)

    body = _ReleasingStream(events(), slots)
    resp = Response(body, mimetype="text/event-stream", direct_passthrough=True)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"  # a reverse proxy must pass each message on at once
    return resp


class _ReleasingStream:
    """A streamed body that gives its stream slot back when the server closes it (started or not)."""

    def __init__(self, parts: Iterator[bytes], slots: threading.BoundedSemaphore) -> None:
        self._parts = parts
        self._slots: threading.BoundedSemaphore | None = slots

    def __iter__(self) -> Iterator[bytes]:
        return self._parts

    def close(self) -> None:
        try:
            self._parts.close()  # type: ignore[attr-defined]
        finally:
            if self._slots is not None:
                self._slots.release()
                self._slots = None


@bp.post("/api/v1/cameras/<camera_id>/capture")
@requires("labeller")
def capture(camera_id: str) -> Any:
    """Store the camera's current frame in the dataset: 201 {"id", "sha256", "width", "height", "duplicate_of"}."""
    status = _capture_for(camera_id).status()
    if status.state != "online":
        # The slot still holds the last frame of a camera that went away: storing it would mislead.
        reason = f": {status.last_error}" if status.last_error else ""
        raise ApiError(503, f"camera {camera_id!r} is {status.state}{reason}; nothing captured")
    frame = _latest_frame(camera_id)
    data = frame.jpeg(CAPTURE_JPEG_QUALITY)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(frame.ts))
    record = current_services().store.add_image(
        data,
        filename=f"{camera_id}-{stamp}-{frame.seq}.jpg",
        camera=camera_id,
        captured_at=datetime.fromtimestamp(frame.ts, UTC),
        project=project_ref(),
    )
    log.info("captured frame %s of camera %s as image %s", frame.seq, camera_id, record.id)
    body = {
        "id": record.id,
        "sha256": record.sha256,
        "width": record.width,
        "height": record.height,
        "duplicate_of": record.duplicate_of,
    }
    return jsonify(body), 201


@bp.get("/api/v1/cameras/<camera_id>/zones")
@requires("viewer")
def get_zones(camera_id: str) -> Any:
    """The camera's zones (normalised polygons)."""
    return jsonify({"camera": camera_id, "zones": _zones_of(camera_config(camera_id))})


@bp.put("/api/v1/cameras/<camera_id>/zones")
@requires("admin")
def put_zones(camera_id: str) -> Any:
    """Replace the camera's zones; each is validated as a ZoneConfig (ids are slugs, polygons inside 0..1).

    A zone without `id` gets one from its free-text `name` ("End Cap" -> "end-cap", "end-cap-2" when taken).
    `label` is the zone's own alert label, which the pipeline's zone alerting uses when the model knows it."""
    camera = camera_config(camera_id)
    zones = zones_with_ids(read_model(ZonesBody).zones)
    try:
        # Validate against the whole camera model too, so the saved zones would load from a config file.
        CameraConfig.model_validate({**camera.model_dump(), "zones": [z.model_dump() for z in zones]})
    except ValidationError as err:
        raise ApiError(400, validation_message(err)) from err
    current_services().store.set_zones(camera_id, zones)
    return jsonify({"camera": camera_id, "zones": _zones_of(camera)})
