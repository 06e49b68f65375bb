"""Small JSON settings by key, and each camera's zones as edited on the web page."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from edge.config import ZoneConfig
from edge.errors import ConflictError, ShelfwatchError
from edge.store.connection import now


def get(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    """A stored JSON value, or default."""
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def encode(key: str, value: Any) -> str:
    """The JSON text of a setting; ShelfwatchError when it is not JSON-serialisable."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as err:
        raise ShelfwatchError(f"setting {key!r} must be JSON-serialisable: {err}") from err


def put(conn: sqlite3.Connection, key: str, text: str) -> None:
    """Store JSON text under key."""
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, text),
    )


def get_zones(conn: sqlite3.Connection, camera_id: str) -> list[ZoneConfig] | None:
    """The camera's zones as edited on the web page; None when never edited."""
    row = conn.execute("SELECT zones FROM zones WHERE camera_id = ?", (camera_id,)).fetchone()
    if row is None:
        return None
    return [ZoneConfig.model_validate(z) for z in json.loads(row[0])]


def encode_zones(camera_id: str, zones: list[ZoneConfig]) -> str:
    """The JSON text of a camera's zones; ConflictError when a zone id is used twice."""
    seen: set[str] = set()
    for zone in zones:
        if zone.id in seen:
            raise ConflictError(f"zone id {zone.id!r} is used twice in camera {camera_id!r}")
        seen.add(zone.id)
    return json.dumps([z.model_dump(mode="json") for z in zones])


def put_zones(conn: sqlite3.Connection, camera_id: str, text: str) -> None:
    """Replace the camera's zones with JSON text."""
    conn.execute(
        "INSERT INTO zones (camera_id, zones, updated) VALUES (?, ?, ?) "
        "ON CONFLICT(camera_id) DO UPDATE SET zones = excluded.zones, updated = excluded.updated",
        (camera_id, text, now()),
    )
