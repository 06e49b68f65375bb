"""The runtime pages in real headless Chromium (Debian's, driven by Playwright) against a real agent and trainer.

Train on the Train page (tiny runner), see the live run end with its decision, activate the model on the Models
page, predict an uploaded image there, see the status page and an event with its snapshot thumbnail. Screenshots
go under the pytest temp dir; the test fails on any JavaScript error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from edge.events import EventDraft
from edge.web.server import WebServer
from tests.helpers.browser import chromium_browser, submit_login
from tests.helpers.tiny_bundle import solid_image
from tests.web_runtime.conftest import ADMIN, ADMIN_PASSWORD, CAMERA_ID, TOKEN, Trainer, fill_store, make_config
from tests.web_runtime.conftest import start_device as start_device_

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 20_000


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless; never a downloaded browser."""
    yield from chromium_browser()


def test_runtime_pages_in_chromium(tmp_path: Path, tiny_trainer: Trainer, shelf_folder: Path, browser: Any) -> None:
    config = make_config(
        tmp_path / "device", tiny_trainer.public_key(), shelf_folder, url=tiny_trainer.url, token=TOKEN
    )
    device = start_device_(config)
    fill_store(device.agent.store)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    errors: list[str] = []
    with device, WebServer(device.app) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(server.url + "/training")
        submit_login(page, ADMIN, ADMIN_PASSWORD)
        page.wait_for_url(server.url + "/training")

        # Train: the verdict is ready, the button enabled; the run ends installed but inactive (no accuracy).
        page.wait_for_selector("#verdict-title:has-text('Ready to train classification')")
        page.wait_for_selector("#train:not([disabled])")
        page.fill('input[name="epochs"]', "3")
        page.click("#train")
        page.wait_for_selector("#history tr .pill:has-text('installed')")
        decision = page.inner_text("#res-decision")
        assert "not activated" in decision
        page.wait_for_selector("#res-kv dd:has-text('0.85')")  # the deploy threshold the run was judged by
        page.screenshot(path=str(shots / "training.png"), full_page=True)

        # Models: activate the new version, then predict an uploaded red image with it.
        page.click("nav >> text=Models")
        page.wait_for_selector("#model-rows tr")
        page.click("#model-rows button:has-text('Activate')")
        page.click("dialog.confirm button:has-text('Activate')")  # activating asks first (issue 11)
        page.wait_for_selector("#model-rows .pill:has-text('active')")
        image = tmp_path / "red.png"
        cv2.imwrite(str(image), solid_image((0, 0, 255), 64, 64))
        page.set_input_files('#predict-form input[name="file"]', str(image))
        page.click("#predict-form button")
        page.wait_for_selector("#predict-out:has-text('label_scores')")
        assert '"label": "red"' in page.inner_text("#predict-out")
        page.screenshot(path=str(shots / "models.png"), full_page=True)

        # Status: the camera row and the running model.
        page.click("nav >> text=Status")
        page.wait_for_selector(f"#camera-rows td:has-text('{CAMERA_ID}')")
        page.wait_for_selector("#model-kv dd:has-text('shelfwatch')")
        page.screenshot(path=str(shots / "status.png"), full_page=True)

        # Events: one recorded event with its snapshot as a thumbnail that loads.
        event = device.agent.events.record(
            EventDraft("start", CAMERA_ID, "top", "empty", 0.9, None, "2026-11-21T12:00:00Z", "m", "v")
        )
        device.agent.snapshots.save(event.id, solid_image((30, 30, 200), 160, 120))
        page.click("nav >> text=Events")
        page.wait_for_selector(".event-tile img")
        width = page.eval_on_selector(".event-tile img", "img => img.complete && img.naturalWidth")
        assert width == 160
        page.screenshot(path=str(shots / "events.png"), full_page=True)

        phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=context.storage_state())
        phone_page = phone.new_page()
        phone_page.goto(server.url + "/status")
        phone_page.wait_for_selector(f"#camera-rows td:has-text('{CAMERA_ID}')")
        phone_page.screenshot(path=str(shots / "status-phone.png"), full_page=True)
        phone.close()
        context.close()
    assert errors == []
    assert {p.name for p in shots.iterdir()} >= {"training.png", "models.png", "status.png", "events.png"}
