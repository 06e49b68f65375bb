"""Events: an end item carries its episode's duration; the page's filters list the real cameras and zones.
Status: skipped vs lost frames and the evaluated rate of a real pipeline."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge.events import EventDraft, EventLog
from tests.helpers.waiting import wait_until
from tests.web.conftest import CAMERA_ID, SignedIn, Studio, create_admin
from tests.web.live_rig import live_rig


def draft(phase: str, zone: str, ts: str) -> EventDraft:
    return EventDraft(phase, CAMERA_ID, zone, "empty", 0.9 if phase == "start" else 0.1, None, ts, "m", "v1")


def test_an_end_event_says_how_long_the_episode_lasted(admin: SignedIn, studio: Studio, tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.db", "dev-1")
    studio.services.events = events
    try:
        events.record(draft("start", "top", "2026-12-01T10:00:00.000Z"))
        events.record(draft("start", "bottom", "2026-12-01T10:30:00.000Z"))
        events.record(draft("end", "top", "2026-12-01T13:12:30.500Z"))
        events.record(draft("end", "gone", "2026-12-01T14:00:00.000Z"))  # its start is not in the log
        items = admin.get("/api/v1/events").get_json()["items"]
        by_zone = {(e["zone"], e["phase"]): e for e in items}
        end = by_zone[("top", "end")]
        assert end["duration_s"] == 3 * 3600 + 12 * 60 + 30.5
        assert end["started_at"] == "2026-12-01T10:00:00.000Z"
        assert by_zone[("gone", "end")]["duration_s"] is None
        assert "duration_s" not in by_zone[("top", "start")]
        # The page's filters are selects of the configured camera and the zones it has (or had in the log).
        html = admin.get("/events").get_data(as_text=True)
        assert f'<option value="{CAMERA_ID}">Aisle 1</option>' in html
        data = re.search(r'<script type="application/json" id="events-data">(.*?)</script>', html, re.S)
        assert data is not None
        assert json.loads(data.group(1))["zones"] == {CAMERA_ID: ["frame", "bottom", "gone", "top"]}
    finally:
        events.close()


def test_status_tells_skipped_from_lost_frames(tmp_path: Path) -> None:
    with live_rig(tmp_path) as rig:
        admin = create_admin(rig.studio.app.test_client())
        assert wait_until(lambda: rig.pipeline.stats.evaluated >= 3, 20)
        status = admin.get("/api/v1/status").get_json()
        (cam,) = status["cameras"]
        pipeline = cam["pipeline"]
        assert pipeline["configured_fps"] == 3 and pipeline["errors"] == 0
        assert pipeline["inference_ms"] > 0, "the real model time, not 0, while a camera without zones is evaluated"
        assert {"skipped_fps", "capture_fps", "evaluated_fps", "skipped"} <= set(pipeline)
        assert cam["zones"]["frame"]["state"] in ("ok", "unknown")
        page = admin.get("/status").get_data(as_text=True)
        assert "Skipped" in page and "Lost" in page and "by design" in page
