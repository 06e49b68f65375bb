"""Tagging and the library in real headless Chromium, by mouse and keyboard only: a box drawn, one undo and one
redo (Ctrl+Z / Ctrl+Shift+Z), copy the previous image's boxes (C), wheel zoom and a box drawn while zoomed lands
where it was drawn on the picture, Space+drag pans, the `?` overlay, the end-of-queue prompt; library thumbnails
draw their boxes, and bulk tag adds a tag to the selected images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import chromium_browser
from tests.web.conftest import Studio, jpeg_bytes, open_studio
from tests.web.live_rig import signed_in_served
from tests.web.test_browser import DESKTOP, PHONE, canvas_box, drag, draw_box, no_horizontal_overflow

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def box_count(page: Any) -> int:
    return int(page.locator("#boxlist li").count())


def test_tagging_undo_redo_copy_zoom_and_library_in_chromium(tmp_path: Path, browser: Any, shelf_folder: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with open_studio(tmp_path / "data", shelf_folder) as studio:
        studio_: Studio = studio
        store = studio_.store
        store.create_label("empty", "a gap on the shelf")
        store.create_label("stocked", "a full shelf")
        ids = [store.add_image(jpeg_bytes(900 + n), filename=f"shelf-{n}.jpg").id for n in range(4)]
        with signed_in_served(browser, studio_, DESKTOP) as (server, context, page, errors):
            page.goto(f"{server.url}/tag/{ids[0]}")
            page.wait_for_function("() => document.getElementById('canvas').width > 300")
            page.click("#mode-boxes")

            # -- a box, undone and redone with the keyboard --------------------------------------------------
            draw_box(page, 0.1, 0.1, 0.4, 0.5)
            assert box_count(page) == 1
            page.keyboard.press("Escape")
            page.keyboard.press("Control+z")
            assert box_count(page) == 0
            page.keyboard.press("Control+Shift+z")
            assert box_count(page) == 1
            page.keyboard.press("Enter")  # save & next
            page.wait_for_function(
                "([t]) => document.getElementById('image-title').textContent === t", arg=[f"Image #{ids[1]}"]
            )
            saved = store.get_annotations(ids[0]).boxes
            assert len(saved) == 1 and (saved[0].x1, saved[0].y1) == pytest.approx((0.1, 0.1), abs=0.02)

            # -- copy the previous image's boxes -------------------------------------------------------------
            page.keyboard.press("c")
            page.wait_for_selector(".toast.ok:has-text('Copied 1 box')")
            assert box_count(page) == 1
            page.keyboard.press("Control+z")  # the copy is one undo step
            assert box_count(page) == 0
            page.keyboard.press("Control+Shift+z")
            assert box_count(page) == 1

            # -- wheel zoom around the pointer; a box drawn while zoomed is where it was drawn on the picture --
            c = canvas_box(page)
            page.mouse.move(c["x"] + 0.5 * c["width"], c["y"] + 0.5 * c["height"])
            for _ in range(3):
                page.mouse.wheel(0, -120)
            page.wait_for_function("() => Number(document.getElementById('canvas').dataset.zoom) > 1.9")
            assert page.inner_text("#zoom") == "195%"
            scale = float(page.get_attribute("#canvas", "data-zoom") or 0)
            ox, oy = (float(v) for v in (page.get_attribute("#canvas", "data-view") or "").split(","))
            assert ox == pytest.approx(0.5 - 0.5 / scale, abs=0.01)  # zoomed around the centre
            draw_box(page, 0.6, 0.6, 0.9, 0.9)
            assert box_count(page) == 2
            page.keyboard.press("Control+s")
            page.wait_for_function("() => document.getElementById('dirty').hidden")
            zoomed = [b for b in store.get_annotations(ids[1]).boxes if b.x1 > 0.45]
            assert len(zoomed) == 1
            assert (zoomed[0].x1, zoomed[0].y1, zoomed[0].x2) == pytest.approx(
                (ox + 0.6 / scale, oy + 0.6 / scale, ox + 0.9 / scale), abs=0.02
            )
            # Space + drag pans the zoomed picture.
            page.keyboard.down(" ")
            drag(
                page,
                (c["x"] + 0.5 * c["width"], c["y"] + 0.5 * c["height"]),
                (c["x"] + 0.7 * c["width"], c["y"] + 0.5 * c["height"]),
            )
            page.keyboard.up(" ")
            ox2 = float((page.get_attribute("#canvas", "data-view") or "").split(",")[0])
            assert ox2 < ox - 0.05, "dragging right with Space held shows more of the left"
            assert box_count(page) == 2, "panning draws nothing"
            page.screenshot(path=str(shots / "tag-zoomed-1280x800.png"))
            page.keyboard.press("0")
            assert page.get_attribute("#canvas", "data-zoom") == "1"

            # -- the keys overlay ------------------------------------------------------------------------------
            page.keyboard.press("?")
            page.wait_for_selector("#keys-help:not([hidden])")
            assert "undo / redo" in page.inner_text("#keys-help")
            page.screenshot(path=str(shots / "tag-keys-1280x800.png"))
            page.keyboard.press("Escape")
            page.wait_for_selector("#keys-help", state="hidden")

            # -- the end of the queue --------------------------------------------------------------------------
            page.keyboard.press("ArrowRight")
            page.keyboard.press("2")  # Box mode: choose `stocked`
            page.click("#mode-tags")
            page.keyboard.press("2")  # Tag mode: tag it `stocked`
            page.keyboard.press("Enter")
            page.wait_for_function(
                "([t]) => document.getElementById('image-title').textContent === t", arg=[f"Image #{ids[3]}"]
            )
            page.keyboard.press("1")
            page.keyboard.press("Enter")
            page.wait_for_selector("#end-prompt:not([hidden])")
            assert "All 4 images are tagged" in page.inner_text("#end-text")
            page.screenshot(path=str(shots / "tag-end-1280x800.png"))
            page.keyboard.press("Enter")  # the focused "Go to Review" link
            page.wait_for_url(server.url + "/review")

            # -- library: boxes on thumbnails, bulk tag --------------------------------------------------------
            page.goto(server.url + "/library")
            page.wait_for_selector(f'.tile[data-id="{ids[1]}"] svg.boxes rect')
            assert page.locator(f'.tile[data-id="{ids[1]}"] svg.boxes rect').count() == 2
            page.locator(f'.tile[data-id="{ids[0]}"] .pick').check()
            page.locator(f'.tile[data-id="{ids[1]}"] .pick').check()
            page.select_option("#bulk-tag-label", "empty")
            page.click("#bulk-tag")
            page.wait_for_selector(".toast.ok:has-text('Tagged 2 image')")
            assert "empty" in store.get_annotations(ids[0]).tags and "empty" in store.get_annotations(ids[1]).tags
            assert len(store.get_annotations(ids[1]).boxes) == 2, "bulk tag keeps the boxes"
            page.screenshot(path=str(shots / "library-boxes-1280x800.png"))

            phone = browser.new_context(
                viewport=PHONE, storage_state=context.storage_state(), is_mobile=True, has_touch=True
            )
            mobile = phone.new_page()
            mobile.goto(f"{server.url}/tag/{ids[1]}")
            mobile.wait_for_function("() => document.getElementById('canvas').width > 100")
            no_horizontal_overflow(mobile)
            mobile.screenshot(path=str(shots / "tag-390x844.png"))
            phone.close()
            context.close()
    assert errors == []
    print(f"screenshots in {shots}")


def test_nothing_to_box_by_key_and_button_counts_as_tagged_in_chromium(
    tmp_path: Path, browser: Any, shelf_folder: Path
) -> None:
    """A detection photo with no gaps: N (or the button) marks it "nothing to box", Enter saves it as tagged and
    the summary counts it; the button undoes the mark; a drawn box ends it."""
    with open_studio(tmp_path / "data", shelf_folder) as studio:
        store = studio.store
        store.create_label("gap", "a gap on the shelf")
        ids = [store.add_image(jpeg_bytes(950 + n), filename=f"shelf-{n}.jpg").id for n in range(3)]
        with signed_in_served(browser, studio, DESKTOP) as (server, context, page, errors):
            page.goto(f"{server.url}/tag/{ids[0]}")
            page.wait_for_function("() => document.getElementById('canvas').width > 300")
            page.keyboard.press("n")
            assert page.get_attribute("#nothing-to-box", "aria-pressed") == "true"
            page.keyboard.press("Enter")  # save & next
            page.wait_for_function(
                "([t]) => document.getElementById('image-title').textContent === t", arg=[f"Image #{ids[1]}"]
            )
            assert store.get_image(ids[0]).nothing_to_box and store.get_image(ids[0]).tagged
            assert store.summary("detection")["tagged"] == 1
            # The button marks the second one; a box drawn afterwards ends the mark.
            page.click("#nothing-to-box")
            assert page.get_attribute("#nothing-to-box", "aria-pressed") == "true"
            page.click("#mode-boxes")
            draw_box(page, 0.1, 0.1, 0.4, 0.5)
            assert page.get_attribute("#nothing-to-box", "aria-pressed") == "false"
            page.click("#save")
            page.wait_for_selector(f".toast.ok:has-text('Saved image #{ids[1]}')")
            assert not store.get_image(ids[1]).nothing_to_box and len(store.get_image(ids[1]).boxes) == 1
            # Back on the first: the mark shows, and the button takes it off again.
            page.goto(f"{server.url}/tag/{ids[0]}")
            page.wait_for_function("() => document.getElementById('nothing-to-box').ariaPressed === 'true'")
            page.click("#nothing-to-box")
            page.click("#save")
            page.wait_for_selector(f".toast.ok:has-text('Saved image #{ids[0]}')")
            assert not store.get_image(ids[0]).tagged
            assert errors == []
            context.close()
