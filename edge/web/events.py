"""Low-stock events: paged list with filters, one event, its snapshot JPEG, and the events page with thumbnails."""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, send_file

from edge.errors import NotFoundError
from edge.pipeline.camera_pipeline import WHOLE_FRAME_ZONE_ID
from edge.web.http import ApiError, int_arg
from edge.web.runtime_common import config, require_service
from edge.web.security import requires
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("events", __name__)
NAV = [("events.page", "Events", 80)]

PHASES = ("start", "end")
MAX_PAGE_SIZE = 500


@bp.get("/events")
@requires("viewer")
def page() -> str:
    """The events page: newest first, thumbnails, filters listing the real cameras and zones."""
    return render_template("events.html", choices=filter_choices())


def filter_choices() -> dict[str, Any]:
    """{"cameras": [{"id", "name"}], "zones": {camera: [zone ids]}}: configured cameras, their zones (saved on the
    Zones page, else the config's, else the whole-frame zone), and any other camera/zone the event log holds."""
    store = current_services().store
    cameras: list[dict[str, str]] = []
    zones: dict[str, list[str]] = {}
    for cam in config().cameras:
        cameras.append({"id": cam.id, "name": cam.name or cam.id})
        saved = store.get_zones(cam.id)
        listed = list(saved) if saved is not None else list(cam.zones)
        zones[cam.id] = [z.id for z in listed] or [WHOLE_FRAME_ZONE_ID]
    log_ = current_services().events
    if log_ is not None:
        try:
            with closing(sqlite3.connect(f"file:{log_.path}?mode=ro", uri=True, timeout=10)) as db:
                seen = db.execute("SELECT DISTINCT camera, zone FROM events ORDER BY camera, zone").fetchall()
        except sqlite3.Error as err:
            log.warning("could not list the event log's cameras and zones: %s", err)
            seen = []
        for camera, zone in seen:
            if camera not in zones:
                cameras.append({"id": camera, "name": f"{camera} (no longer configured)"})
                zones[camera] = []
            if zone not in zones[camera]:
                zones[camera].append(zone)
    return {"cameras": cameras, "zones": zones}


def _seconds_between(start: str, end: str) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


def _query_events(path: str, filters: dict[str, str], page: int, page_size: int) -> tuple[list[dict[str, Any]], int]:
    """One page of events (newest first) matching the filters, and how many match in all.

    Reads the event log's SQLite file through its own read-only connection (WAL lets it read while the agent
    writes), so filters on zone and phase and exact totals do not need a scan in Python.
    """
    where = " AND ".join(f"{column} = ?" for column in filters) or "1 = 1"
    args = list(filters.values())
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
        total = int(db.execute(f"SELECT COUNT(*) FROM events WHERE {where}", args).fetchone()[0])  # noqa: S608 - columns are fixed names
        rows = db.execute(
            f"SELECT seq, payload FROM events WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",  # noqa: S608 - fixed names
            [*args, page_size, (page - 1) * page_size],
        ).fetchall()
        items = []
        for seq, payload in rows:
            item = json.loads(payload)
            if item.get("phase") == "end":
                # The episode this end closes: the latest start of the same zone before it.
                start = db.execute(
                    "SELECT id, ts FROM events WHERE camera = ? AND zone = ? AND phase = 'start' AND seq < ?"
                    " ORDER BY seq DESC LIMIT 1",
                    (item.get("camera"), item.get("zone"), seq),
                ).fetchone()
                item["started_at"] = start[1] if start else None
                item["start_id"] = start[0] if start else None
                item["duration_s"] = _seconds_between(start[1], item.get("ts")) if start else None
            items.append(item)
    return items, total


@bp.get("/api/v1/events")
@requires("viewer")
def list_events() -> Any:
    """{items, page, page_size, total}: events newest first; filters camera, zone, phase (start|end).

    An `end` item also carries `started_at`, `start_id` and `duration_s` of the episode it closes (null when its
    start is no longer in the log)."""
    log_ = require_service("events")
    page_no = int_arg("page", 1)
    page_size = int_arg("page_size", 50, high=MAX_PAGE_SIZE)
    filters: dict[str, str] = {}
    for name in ("camera", "zone", "phase"):
        value = (request.args.get(name) or "").strip()
        if value:
            filters[name] = value
    if "phase" in filters and filters["phase"] not in PHASES:
        raise ApiError(400, f"phase must be start or end, got {filters['phase']!r}")
    items, total = _query_events(str(log_.path), filters, page_no, page_size)
    for item in items:
        item["has_snapshot"] = log_.snapshot_path(str(item.get("id", ""))) is not None
    return jsonify({"items": items, "page": page_no, "page_size": page_size, "total": total})


@bp.get("/api/v1/events/<event_id>")
@requires("viewer")
def get_event(event_id: str) -> Any:
    """One event as published over MQTT, plus has_snapshot."""
    event = require_service("events").get(event_id)
    if event is None:
        raise NotFoundError(f"event {event_id!r} does not exist")
    has_snapshot = require_service("events").snapshot_path(event_id) is not None
    return jsonify(event.payload | {"has_snapshot": has_snapshot})


@bp.get("/api/v1/events/<event_id>/snapshot.jpg")
@requires("viewer")
def snapshot(event_id: str) -> Response:
    """The event's JPEG (404 when it was never taken or retention removed it)."""
    path = require_service("events").snapshot_path(event_id)
    if path is None:
        raise NotFoundError(f"event {event_id!r} has no snapshot (never taken, or removed by retention)")
    return send_file(path, mimetype="image/jpeg", max_age=86400, conditional=True)
