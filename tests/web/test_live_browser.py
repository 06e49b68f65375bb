"""Issue 11's views in real headless Chromium (Debian's /usr/bin/chromium), by mouse and keyboard only, against a
studio served by waitress whose folder camera is evaluated by a real pipeline and a real tiny detector:

- Live draws what the model sees from the server-sent events and follows a zone's state change (ok -> low stock
  -> ok) when the shelf in front of the camera changes; a capture is acknowledged by a toast.
- Events shows the episode: the `start` card's snapshot carries the zone outline, the `end` card the duration;
  the filters are selects of the real camera and zones.
- Status explains skipped vs lost frames, shows a humane uptime and the real inference time.
- Predict (Models page) draws the detector's boxes on the uploaded image.
- A phone (390 px) reaches every page from the menu; screenshots of every page at 1280x800 and 390x844 are kept
  under the pytest temp dir.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.model_repository import ModelRepository
from tests.helpers.browser import chromium_browser
from tests.web.conftest import CAMERA_ID
from tests.web.live_rig import live_rig, signed_in_served, write_shelf
from tests.web.test_browser import DESKTOP, PHONE, no_horizontal_overflow

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = ["/live", "/library", "/tag", "/labels", "/review", f"/zones/{CAMERA_ID}", "/training", "/models",
         "/events", "/status", "/account", "/users"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def zone_states(page: Any, expected: str) -> None:
    page.wait_for_function(
        "([want]) => document.querySelector('.cam[data-camera]').dataset.zoneStates === want", arg=[expected]
    )


def overlay_has(page: Any, rgb: tuple[int, int, int]) -> bool:
    """Whether the overlay canvas holds pixels of this colour (the zone outline drawn in its state's colour)."""
    return bool(
        page.evaluate(
            """([r, g, b]) => {
              const c = document.querySelector('canvas.overlay');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              for (let i = 0; i < d.length; i += 4) {
                const near = Math.abs(d[i] - r) < 8 && Math.abs(d[i + 1] - g) < 8 && Math.abs(d[i + 2] - b) < 8;
                if (near && d[i + 3] > 200) return true;
              }
              return false;
            }""",
            list(rgb),
        )
    )


def test_live_events_status_predict_and_phone_menu_in_chromium(tmp_path: Path, browser: Any) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with live_rig(tmp_path) as rig:
        rig.studio.services.models = ModelRepository.from_config(rig.studio.config)
        rig.studio.services.started_at = time.time() - (3 * 3600 + 12 * 60 + 5)
        with signed_in_served(browser, rig.studio, DESKTOP) as (server, context, page, errors):
            base = server.url

            # -- Live: the whole-frame zone in its state colour, with model, evaluated fps, inference ms ---------
            page.goto(base + "/live")
            zone_states(page, "frame=ok")
            page.wait_for_function(
                "() => /model det-live/.test(document.querySelector('[data-role=model]').textContent)"
            )
            page.wait_for_function(
                "() => /inference \\d+ ms/.test(document.querySelector('[data-role=inference]').textContent)"
            )
            page.wait_for_function(
                "() => /evaluated [1-9]/.test(document.querySelector('[data-role=evaluated]').textContent)"
            )
            page.wait_for_function("() => document.querySelector('[data-role=view]').naturalWidth > 0")
            page.wait_for_timeout(700)  # the next live result redraws over the picture
            assert overlay_has(page, (0x22, 0xC5, 0x5E)), "the ok zone is outlined in green"
            rig.show(dark=True)  # the left half empties: the detector says `empty` there
            zone_states(page, "frame=low_stock")
            assert overlay_has(page, (0xDC, 0x26, 0x26)), "the low-stock zone is outlined in red"
            assert overlay_has(page, (0xFB, 0xBF, 0x24)), "the detections are drawn as boxes"
            page.screenshot(path=str(shots / "live-low-stock-1280x800.png"))
            page.keyboard.press("Space")  # capture, acknowledged by a toast
            page.wait_for_selector(".toast.ok:has-text('Captured image #')")
            rig.show(dark=False)
            zone_states(page, "frame=ok")

            # -- Events: annotated snapshot on the start card, the duration on the end card --------------------
            page.click("nav >> text=Events")
            page.wait_for_selector(".event-tile .event-detail:has-text('low stock for')")
            start_tile = page.locator(".event-tile:has(.pill:has-text('low stock'))").first
            src = start_tile.locator("img").get_attribute("src")
            jpeg = context.request.get(base + src).body()
            snap = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            b, g, r = (int(v) for v in snap[1, snap.shape[1] // 2])
            assert r > 170 and g < 90 and b < 90, f"the zone outline is drawn in red on the snapshot, got {(b, g, r)}"
            assert not np.array_equal(snap[1, 1], snap[120, 1]), "the box and outline are drawn, not the plain frame"
            page.select_option('#filters select[name="camera"]', CAMERA_ID)
            zones = page.eval_on_selector_all('#filters select[name="zone"] option', "os => os.map(o => o.value)")
            assert zones == ["", "frame"]
            page.select_option('#filters select[name="zone"]', "frame")
            page.wait_for_function("() => /[1-9]\\d* events/.test(document.getElementById('page-info').textContent)")
            page.screenshot(path=str(shots / "events-1280x800.png"))

            # -- Status: skipped vs lost, humane uptime, the real inference time ------------------------------
            page.click("nav >> text=Status")
            page.wait_for_selector("#device-kv dd:has-text('3 h 12 min')")
            page.wait_for_selector(f"#camera-rows td:has-text('{CAMERA_ID}')")
            cells = page.eval_on_selector_all("#camera-rows tr:first-child td", "tds => tds.map(t => t.textContent)")
            assert cells[3].endswith("of 3") and float(cells[3].split()[0]) > 0  # evaluated fps of the configured 3
            assert cells[5] == "0"  # lost
            assert float(cells[6]) > 0  # inference ms while evaluating
            assert "by design" in page.inner_text("#frames-legend")

            # -- Predict draws the answer ---------------------------------------------------------------------
            image = tmp_path / "dark-left.png"
            write_shelf(tmp_path, dark=True)
            (tmp_path / "shelf.png").rename(image)
            page.click("nav >> text=Models")
            page.set_input_files('#predict-form input[name="file"]', str(image))
            page.click("#predict-form button")
            page.wait_for_selector("#predict-view:not([hidden])")
            assert "box" in page.inner_text("#predict-summary")
            assert page.get_attribute("#predict-canvas", "data-answer").endswith("boxes")
            page.screenshot(path=str(shots / "predict-1280x800.png"))

            # -- every page, desktop and phone; the phone's menu shows every page's link -----------------------
            phone = browser.new_context(
                viewport=PHONE, storage_state=context.storage_state(), is_mobile=True, has_touch=True
            )
            mobile = phone.new_page()
            mobile.on("pageerror", lambda err: errors.append(str(err)))
            for url in PAGES:
                name = url.strip("/").split("/")[0]
                page.goto(base + url)
                page.wait_for_load_state("load")
                page.wait_for_timeout(300)
                page.screenshot(path=str(shots / f"{name}-1280x800.png"))
                mobile.goto(base + url)
                mobile.wait_for_load_state("load")
                mobile.wait_for_timeout(300)
                no_horizontal_overflow(mobile)
                mobile.screenshot(path=str(shots / f"{name}-390x844.png"))
            links = mobile.locator(".mainnav a")
            assert links.count() >= 10
            for i in range(links.count()):
                box = links.nth(i).bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (
                    f"menu entry {links.nth(i).inner_text()} is off-screen on a phone"
                )
            mobile.locator(".mainnav a:has-text('Status')").tap()
            mobile.wait_for_url(base + "/status")
            phone.close()
            context.close()
    assert errors == []
    print(f"screenshots in {shots}")
