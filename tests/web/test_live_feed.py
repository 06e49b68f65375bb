"""GET /api/v1/cameras/<id>/live: server-sent events of what the model sees, served by waitress (the real server),
fed by a real pipeline running a real tiny detector on a folder camera."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config.model import ZoneConfig
from edge.model_repository import ModelRepository
from edge.web import WebServer
from edge.web.cameras import MAX_STREAMS, STREAM_SLOTS_KEY
from tests.helpers.waiting import wait_until
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, CAMERA_ID, create_admin
from tests.web.live_rig import LiveRig, live_rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[LiveRig]:
    with live_rig(tmp_path) as fresh:
        yield fresh


def read_events(answer: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """The `live` events of an open text/event-stream response, parsed."""
    event, data = None, []
    while True:
        line = answer.readline()
        if not line:
            return
        text = line.decode().rstrip("\n")
        if text.startswith("event:"):
            event = text[6:].strip()
        elif text.startswith("data:"):
            data.append(text[5:].strip())
        elif text == "":
            if event == "live" and data:
                yield json.loads("\n".join(data))
            event, data = None, []


def first(events: Iterator[dict[str, Any]], cond: Callable[[dict[str, Any]], bool], limit: int = 200) -> dict:
    for n, payload in enumerate(events):
        if cond(payload):
            return payload
        assert n < limit, "the condition never showed in the feed"
    raise AssertionError("the feed ended")


def states(payload: dict[str, Any]) -> dict[str, str]:
    return {z["id"]: z["state"] for z in payload["zones"]}


def admin_bearer(rig: LiveRig) -> dict[str, str]:
    """The Authorization header of a token of the first admin, created in the rig's user store."""
    users = rig.studio.services.users
    assert users is not None
    token, _ = users.issue_token(users.create_first_admin(ADMIN, ADMIN_PASSWORD).id)
    return {"Authorization": f"Bearer {token}"}


def test_live_feed_follows_zone_states_over_waitress(rig: LiveRig) -> None:
    auth = admin_bearer(rig)
    server = WebServer(rig.studio.app, host="127.0.0.1", port=0).start()
    try:
        anonymous = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        anonymous.request("GET", f"/api/v1/cameras/{CAMERA_ID}/live")
        assert anonymous.getresponse().status == 401
        unknown = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        unknown.request("GET", "/api/v1/cameras/nope/live", headers=auth)
        assert unknown.getresponse().status == 404

        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        conn.request("GET", f"/api/v1/cameras/{CAMERA_ID}/live", headers=auth)
        answer = conn.getresponse()
        assert answer.status == 200
        assert answer.getheader("Content-Type", "").startswith("text/event-stream")
        assert answer.getheader("Cache-Control") == "no-store"
        events = read_events(answer)
        # No zones drawn: the whole frame is one zone, evaluated by the model, bright shelf -> ok.
        ok = first(events, lambda p: states(p) == {"frame": "ok"})
        assert ok["model"] == {"name": "tiny-darkness", "version": "det-live", "task": "detection"}
        assert ok["zones"][0]["whole_frame"] is True and ok["zones"][0]["score"] is not None
        assert ok["inference_ms"] > 0 and ok["configured_fps"] == 3
        # The left half goes dark: the detector's box there says `empty`, and the feed shows low stock with it.
        rig.show(dark=True)
        low = first(events, lambda p: states(p) == {"frame": "low_stock"})
        assert any(d["label"] == "empty" and d["score"] > 0.6 for d in low["detections"])
        assert low["seq"] > ok["seq"]
        assert first(events, lambda p: p["fps"] > 0)["fps"] > 0
        # Zones saved on the page replace the whole frame in the feed.
        rig.studio.store.set_zones(
            CAMERA_ID, [ZoneConfig(id="left", name="Left", polygon=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)])]
        )
        left = first(events, lambda p: "left" in states(p))
        assert [z["name"] for z in left["zones"]] == ["Left"]
        answer.close()
        conn.close()

        # ?once=1: the current result, then the response ends.
        once = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        once.request("GET", f"/api/v1/cameras/{CAMERA_ID}/live?once=1", headers=auth)
        body = once.getresponse().read().decode()
        assert body.startswith("retry: 3000") and body.count("event: live") == 1
        # Every feed gave its slot back (a closed tab frees it on the next write).
        slots = rig.studio.app.extensions[STREAM_SLOTS_KEY]
        assert wait_until(lambda: slots._value == MAX_STREAMS, 20)
    finally:
        server.stop()


def test_live_feed_names_the_model_by_its_display_name(rig: LiveRig, tmp_path: Path) -> None:
    """Live reads `<project> v1 · date`, not the raw version id: the feed carries `model_name`."""
    repo = ModelRepository(tmp_path / "models", [tmp_path / "bundles" / "keys" / "signing.pub"], 3)
    repo.install(tmp_path / "bundles" / "det-live")
    rig.studio.services.models = repo
    auth = admin_bearer(rig)
    server = WebServer(rig.studio.app, host="127.0.0.1", port=0).start()
    try:
        once = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        once.request("GET", f"/api/v1/cameras/{CAMERA_ID}/live?once=1", headers=auth)
        payload = next(read_events(once.getresponse()))
        project = rig.studio.store.list_projects()[0].name
        assert payload["model"]["version"] == "det-live"
        assert payload["model_name"].startswith(f"{project} v1 · ")
    finally:
        server.stop()


def test_live_feed_is_503_without_a_pipeline(admin: Any) -> None:
    resp = admin.get(f"/api/v1/cameras/{CAMERA_ID}/live")
    assert resp.status_code == 503 and "not evaluated" in resp.get_json()["error"]
    status = admin.get(f"/api/v1/cameras/{CAMERA_ID}").get_json()
    assert "evaluated_fps" not in status  # nothing evaluates it here


def test_camera_status_carries_the_evaluated_fps(rig: LiveRig) -> None:
    admin = create_admin(rig.studio.app.test_client())
    assert wait_until(lambda: rig.pipeline.eval_rate.rate() > 0, 20)
    info = admin.get(f"/api/v1/cameras/{CAMERA_ID}").get_json()
    assert info["evaluated_fps"] > 0 and info["inference_ms"] > 0


def test_live_feeds_are_capped_with_the_streams(rig: LiveRig) -> None:
    """Each open feed holds a worker thread: past MAX_STREAMS (shared with MJPEG) the next is 503, pages answer."""
    auth = admin_bearer(rig)
    server = WebServer(rig.studio.app, host="127.0.0.1", port=0).start()
    feeds = []
    try:
        for n in range(MAX_STREAMS):
            path = f"/api/v1/cameras/{CAMERA_ID}/" + ("live" if n % 2 else "stream.mjpg")
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
            conn.request("GET", path, headers=auth)
            answer = conn.getresponse()
            assert answer.status == 200
            answer.readline()
            feeds.append((conn, answer))
        extra = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        extra.request("GET", f"/api/v1/cameras/{CAMERA_ID}/live", headers=auth)
        refused = extra.getresponse()
        assert refused.status == 503 and refused.getheader("Retry-After") == "5"
        assert "live streams" in json.loads(refused.read())["error"]
        page = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        page.request("GET", "/api/v1/status", headers=auth)
        assert page.getresponse().status == 200
    finally:
        for conn, answer in feeds:
            answer.close()
            conn.close()
        server.stop()
