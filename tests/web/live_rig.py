"""A studio whose folder camera is evaluated by a real pipeline and a real tiny detector, for the live view tests.

Events go through the device's real Reporter (event log + snapshots) with no broker (NullCommunicator).
The folder holds one picture, `shelf.png`; `show(dark=...)` swaps it (atomically) for a bright shelf or one whose
left half is black, which the detector (tests.helpers.tiny_bundle: box score = darkness) calls `empty`, so the
camera's zones go `low_stock` and back to `ok` on demand.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.comms.base import NullCommunicator
from edge.config.model import EventsConfig
from edge.events import EventLog, SnapshotStore
from edge.pipeline.camera_pipeline import CameraPipeline
from edge.pipeline.model_slot import ModelSlot
from edge.pipeline.reporter import Reporter
from edge.runtime.wrappers import load_model
from tests.helpers.browser import submit_login
from tests.helpers.tiny_bundle import make_detection_bundle
from tests.web.conftest import CAMERA_ID, Studio, open_studio

EVENTS = EventsConfig(on_threshold=0.6, off_threshold=0.4, min_frames=2)


@dataclass
class LiveRig:
    studio: Studio
    folder: Path
    pipeline: CameraPipeline
    events: EventLog

    def show(self, *, dark: bool) -> None:
        """Put a bright shelf (dark=False) or one with an empty left half (dark=True) in front of the camera."""
        write_shelf(self.folder, dark=dark)


def write_shelf(folder: Path, *, dark: bool) -> None:
    image = np.full((240, 320, 3), 225, dtype=np.uint8)
    cv2.rectangle(image, (20, 30), (300, 210), (60, 140, 200), 6)
    if dark:
        image[:, :160] = 0
    part = folder / "shelf.part"
    ok, data = cv2.imencode(".png", image)
    assert ok
    part.write_bytes(data.tobytes())
    os.replace(part, folder / "shelf.png")


@contextlib.contextmanager
def live_rig(tmp_path: Path) -> Iterator[LiveRig]:
    folder = tmp_path / "camera"
    folder.mkdir()
    write_shelf(folder, dark=False)
    bundle = make_detection_bundle(tmp_path / "bundles", version="det-live", openvino=False)
    with open_studio(tmp_path / "data", folder) as studio:
        slot = ModelSlot(lambda path: load_model(path, "onnxruntime", 1))
        slot.load(bundle.bundle_dir)
        capture = studio.hub.require(CAMERA_ID)
        store = studio.store

        def zones() -> list:
            saved = store.get_zones(CAMERA_ID)
            return list(saved) if saved is not None else []

        events = EventLog(tmp_path / "data" / "events.db", "dev-live")
        events.snapshots = SnapshotStore(tmp_path / "data" / "snapshots", 50)
        reporter = Reporter(NullCommunicator(), events, events.snapshots)
        pipeline = CameraPipeline(CAMERA_ID, capture, slot, zones, EVENTS, reporter, fps=3, zones_refresh_seconds=0.3)
        studio.services.pipelines = {CAMERA_ID: pipeline}
        studio.services.slot = slot
        studio.services.events = events
        pipeline.start()
        try:
            yield LiveRig(studio, folder, pipeline, events)
        finally:
            pipeline.stop()
            reporter.writer.stop()
            events.close()


def signed_in(browser: Any, base: str, viewport: dict[str, int], users: Any) -> tuple[Any, Any]:
    """A browser context signed in through the login form as a freshly created admin (no first-run pages)."""
    from tests.web.conftest import ADMIN, ADMIN_PASSWORD

    users.create_first_admin(ADMIN, ADMIN_PASSWORD)
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(base + "/login")
    submit_login(page, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(lambda url: "/login" not in url)
    return context, page


@contextlib.contextmanager
def signed_in_served(
    browser: Any, studio: Studio, viewport: dict[str, int]
) -> Iterator[tuple[Any, Any, Any, list[str]]]:
    """(server, context, page, errors): the studio's app served on a free loopback port and a page signed in as the
    admin (signed_in), its page errors collected in `errors` for the caller to assert; the server stops after."""
    from edge.web import WebServer

    with WebServer(studio.app, host="127.0.0.1", port=0) as server:
        errors: list[str] = []
        context, page = signed_in(browser, server.url, viewport, studio.services.users)
        page.on("pageerror", lambda err: errors.append(str(err)))
        yield server, context, page, errors
