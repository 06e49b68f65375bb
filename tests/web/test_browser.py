"""The studio in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright), against the app served by
WebServer on a free loopback port with a folder camera of generated shelf images.

One session walks the seeds' workflow: first-run admin, sign out and in, labels, capture 15 frames, tag some images
with the keyboard and draw boxes on others with the mouse (then move, resize and delete them), see the readiness
verdict turn ready, split, export COCO and check the zip against the store. Screenshots of the live view, tagging
and review pages at 1280x800 and 390x844 are saved under the pytest temp dir and looked at in the assertions.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.cameras.capture import CameraHub
from edge.cameras.sources import open_source
from edge.store import DatasetStore
from edge.web import Services, WebServer, create_app
from tests.helpers.browser import chromium_browser, submit_login, submit_setup
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, CAMERA_ID, make_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CAPTURES = 15
TIMEOUT_MS = 15_000

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, shelf_folder: Path) -> Iterator[dict[str, Any]]:
    """The studio served on a free loopback port."""
    data_dir = tmp_path_factory.mktemp("browser") / "data"
    config = make_config(data_dir, shelf_folder)
    store = DatasetStore(config.data_dir, config.dataset)
    # The folder camera cycles 24 images at 8 frames/s: consecutive captures are usually different pictures.
    hub = CameraHub(config.cameras, source_factory=functools.partial(open_source, rate=8))
    hub.start_all()
    server = WebServer(create_app(config, Services(store=store, cameras=hub)), host="127.0.0.1", port=0).start()
    try:
        yield {"url": server.url, "store": store, "hub": hub}
    finally:
        server.stop()
        hub.stop_all()
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless; never a downloaded browser."""
    yield from chromium_browser()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (kept as test artifacts under the pytest temp dir)."""
    return tmp_path_factory.mktemp("screenshots")


def no_horizontal_overflow(page: Any) -> None:
    """The page fits its viewport's width (nothing cut off or scrolled sideways on a phone)."""
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"{page.url} is {overflow}px wider than the screen"


def canvas_box(page: Any) -> dict[str, float]:
    box = page.locator("#canvas").bounding_box()
    assert box and box["width"] > 200 and box["height"] > 150
    return box


def drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A real mouse drag in page coordinates."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


def drag_on_canvas(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A real mouse drag between two points given as fractions (x, y) of the canvas."""
    c = canvas_box(page)
    drag(
        page,
        (c["x"] + start[0] * c["width"], c["y"] + start[1] * c["height"]),
        (c["x"] + end[0] * c["width"], c["y"] + end[1] * c["height"]),
    )


def draw_box(page: Any, fx1: float, fy1: float, fx2: float, fy2: float) -> None:
    """Draw a box with the mouse over the fractions (fx1, fy1)-(fx2, fy2) of the canvas."""
    drag_on_canvas(page, (fx1, fy1), (fx2, fy2))


def current_image_id(page: Any) -> int:
    page.wait_for_function("() => /Image #\\d+/.test(document.getElementById('image-title').textContent)")
    return int(re.search(r"#(\d+)", page.inner_text("#image-title")).group(1))  # type: ignore[union-attr]


def save_and_next(page: Any, image_id: int) -> None:
    page.keyboard.press("Enter")
    page.wait_for_function(
        "([title]) => document.getElementById('image-title').textContent !== title "
        "|| document.getElementById('next').disabled",
        arg=[f"Image #{image_id}"],
    )
    page.wait_for_function("() => document.getElementById('dirty').hidden")


def test_studio_workflow_in_chromium(served: dict[str, Any], browser: Any, shots: Path) -> None:
    base = served["url"]
    store: DatasetStore = served["store"]
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda err: page_errors.append(str(err)))

    # -- first run: no default password, the first visit creates the admin ------------------------------------
    page.goto(base + "/")
    assert page.url.endswith("/setup")
    assert page.inner_text("h1") == "Create the admin"
    submit_setup(page, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(base + "/projects/new?first=1")  # the guided first run (tests/web/test_projects_browser.py)
    assert page.inner_text(".who") == ADMIN

    # -- sign out, a wrong password, then sign in ----------------------------------------------------------------
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r".*/login"))
    page.fill('input[name="username"]', ADMIN)
    page.fill('input[name="password"]', "not the password")
    page.click('button:has-text("Sign in")')
    assert "Wrong user name or password" in page.inner_text(".alert")
    page.fill('input[name="password"]', ADMIN_PASSWORD)
    page.click('button:has-text("Sign in")')
    page.wait_for_url(base + "/live")

    # -- labels: one described label, and the NONE class the page offers --------------------------------------
    page.goto(base + "/labels")
    page.fill('#new-label input[name="name"]', "low_stock")
    page.fill('#new-label input[name="description"]', "A shelf area with little or no stock")
    page.click('#new-label button[type="submit"]')
    page.wait_for_selector('tr[data-label="low_stock"]')
    assert page.is_visible("#other-hint")
    page.click("#add-other")
    page.wait_for_selector('tr[data-label="none"]')
    assert page.is_hidden("#other-hint")
    assert [lab.name for lab in store.list_labels()] == ["low_stock", "none"]

    # -- live view: the stream plays, Capture stores 15 different frames ---------------------------------------
    page.goto(base + "/live")
    card = page.locator(f'.cam[data-camera="{CAMERA_ID}"]')
    # The MJPEG stream shows a picture.
    page.wait_for_function("() => document.querySelector('[data-role=view]').naturalWidth > 0")
    page.wait_for_function("() => document.querySelector('[data-role=status]').textContent.trim() === 'online'")
    assert re.match(r"\d+\.\d fps", card.locator('[data-role="fps"]').inner_text())
    captured = 0
    for _attempt in range(CAPTURES * 4):
        previous = card.locator('[data-role="count"]').inner_text()
        card.locator('[data-role="capture"]').click()
        page.wait_for_function(
            "([prev]) => document.querySelector('[data-role=count]').textContent !== prev "
            "|| document.querySelectorAll('.toast').length > 0",
            arg=[previous],
        )
        page.wait_for_function("() => !document.querySelector('[data-role=capture]').disabled")
        match = re.match(r"(\d+) captured", card.locator('[data-role="count"]').inner_text())
        captured = int(match.group(1)) if match else 0
        if captured >= CAPTURES:
            break
        page.wait_for_timeout(130)  # let the camera move on to its next picture
    assert captured == CAPTURES
    assert store.list_images(camera=CAMERA_ID)[1] == CAPTURES
    assert card.locator('[data-role="recent"] img').count() == 12  # the newest captures, linking to tagging
    page.screenshot(path=str(shots / "live-1280x800.png"))

    # -- tagging: keyboard tags on some images, mouse-drawn boxes on others ------------------------------------
    page.goto(base + "/tag")
    page.wait_for_function("() => document.getElementById('pos').textContent !== ''")
    assert page.inner_text("#pos").startswith(f"1 / {CAPTURES} · 0 tagged")
    assert "480\u00d7360" in page.inner_text("#image-info") and f"camera {CAMERA_ID}" in page.inner_text("#image-info")
    boxed_ids: list[int] = []
    for n in range(CAPTURES):
        image_id = current_image_id(page)
        if n % 2 == 0:
            # Tag mode: number key 2 toggles the whole-image tag "none".
            page.click("#mode-tags")
            page.keyboard.press("2")
            assert page.get_attribute('[data-tag="none"]', "aria-pressed") == "true"
        else:
            # Box mode: key 1 picks low_stock, the mouse draws a box, and the image is tagged low_stock too.
            page.click("#mode-boxes")
            page.keyboard.press("1")
            draw_box(page, 0.1, 0.15, 0.45, 0.5)
            page.click('[data-tag="low_stock"]')
            boxed_ids.append(image_id)
        assert page.is_visible("#dirty")
        if n == 1:
            # The unsaved-change guard: leaving asks first; dismissing keeps the image and its changes.
            messages: list[str] = []

            def dismiss(dialog: Any, seen: list[str] = messages) -> None:
                seen.append(dialog.message)
                dialog.dismiss()

            page.once("dialog", dismiss)
            page.keyboard.press("ArrowRight")
            page.wait_for_timeout(200)
            assert messages and "unsaved changes" in messages[0]
            assert current_image_id(page) == image_id and page.is_visible("#dirty")
        if n == 3:
            # Move the box, resize it from its corner, draw a second one and delete it with the keyboard.
            drag_on_canvas(page, (0.25, 0.3), (0.35, 0.4))
            drag_on_canvas(page, (0.55, 0.6), (0.7, 0.8))
            draw_box(page, 0.75, 0.1, 0.95, 0.3)
            assert page.locator("#boxlist li").count() == 2
            page.keyboard.press("Delete")
            assert page.locator("#boxlist li").count() == 1
            page.screenshot(path=str(shots / "tag-1280x800.png"))
        save_and_next(page, image_id)
    assert page_errors == []

    # What the mouse drew is what the store holds (normalised, in the image's frame).
    for image_id in boxed_ids:
        boxes = store.get_annotations(image_id).boxes
        assert len(boxes) == 1 and boxes[0].label == "low_stock"
        expected = (0.2, 0.25, 0.7, 0.8) if image_id == boxed_ids[1] else (0.1, 0.15, 0.45, 0.5)
        assert boxes[0].as_tuple() == pytest.approx(expected, abs=0.02), image_id
    summary = store.summary("classification")
    assert summary["tagged"] == CAPTURES
    assert summary["per_label"]["none"]["images"] == 8 and summary["per_label"]["low_stock"]["boxes"] == 7

    # -- review: the verdict turns ready for classification; Train says why it cannot start -------------------
    page.goto(base + "/review")
    page.wait_for_selector('.bar[data-label="low_stock"]')
    # Detection: the 7 low_stock boxes meet this config's minimum; the none tag marks negative photos and no
    # longer blocks a detector with "'none' has 0 boxes" (issue 11's Review dead end).
    page.select_option("#task", "detection")
    page.wait_for_function("() => /\\(detection\\)/.test(document.getElementById('chart-title').textContent)")
    assert "'none'" not in page.inner_text("#problems")
    page.select_option("#task", "classification")
    # The detection view may be "ready" too: wait for the classification answer itself, not for any ready verdict.
    page.wait_for_function("() => /\\(classification\\)/.test(document.getElementById('chart-title').textContent)")
    page.wait_for_function("() => document.getElementById('verdict').classList.contains('ready')")
    assert page.inner_text("#verdict-title").startswith("Ready to train: 15 tagged images, 2 labels")
    assert page.inner_text('.bar[data-label="none"] .n') == "8"
    assert page.inner_text('.bar[data-label="low_stock"] .n') == "7"
    assert page.is_disabled("#train") and "no training service" in (page.get_attribute("#train", "title") or "")
    page.click("#auto-split")
    page.wait_for_function("() => /train 12/.test(document.getElementById('splits').textContent)")
    assert "test 3" in page.inner_text("#splits") and "not assigned 0" in page.inner_text("#splits")
    page.screenshot(path=str(shots / "review-1280x800.png"), full_page=True)

    # -- export COCO from the page: the zip matches the store -----------------------------------------------------
    page.select_option('#export-form select[name="format"]', "coco")
    with page.expect_download() as download_info:
        page.click("#export")
    zip_path = shots / "export-coco.zip"
    download_info.value.save_as(zip_path)
    check_coco_zip(zip_path, store)

    # -- a phone: same pages, no sideways scrolling ------------------------------------------------------------
    phone = browser.new_context(viewport=PHONE, storage_state=context.storage_state(), is_mobile=True, has_touch=True)
    phone.set_default_timeout(TIMEOUT_MS)
    mobile = phone.new_page()
    mobile.goto(base + "/live")
    mobile.wait_for_function("() => document.querySelector('[data-role=view]').naturalWidth > 0")
    assert mobile.is_visible('[data-role="capture"]')
    no_horizontal_overflow(mobile)
    mobile.screenshot(path=str(shots / "live-390x844.png"))
    mobile.goto(f"{base}/tag/{boxed_ids[0]}")
    mobile.wait_for_function("() => document.getElementById('boxlist').children.length === 1")
    no_horizontal_overflow(mobile)
    assert mobile.locator("#canvas").bounding_box()["width"] <= PHONE["width"]  # type: ignore[index]
    mobile.screenshot(path=str(shots / "tag-390x844.png"))
    mobile.goto(base + "/review")
    mobile.wait_for_function("() => document.getElementById('verdict').classList.contains('ready')")
    no_horizontal_overflow(mobile)
    mobile.screenshot(path=str(shots / "review-390x844.png"), full_page=True)
    phone.close()
    context.close()
    for name in ("live", "tag", "review"):
        for size in ("1280x800", "390x844"):
            assert (shots / f"{name}-{size}.png").stat().st_size > 10_000
    log.info("screenshots in %s", shots)


def check_coco_zip(zip_path: Path, store: DatasetStore) -> None:
    """Every stored image is in the zip with its tags and boxes, and nothing else is."""
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        docs = [json.loads(zf.read(n)) for n in names if n.endswith(".json")]
        images_in_zip = {n for n in names if n.startswith("images/")}
        sizes = {n: len(zf.read(n)) for n in images_in_zip}
    entries = [img for doc in docs for img in doc["images"]]
    annotations = [ann for doc in docs for ann in doc["annotations"]]
    categories = {c["id"]: c["name"] for c in docs[0]["categories"]}
    assert set(categories.values()) == {"low_stock", "none"}
    assert {c.get("description") for c in docs[0]["categories"]} >= {"A shelf area with little or no stock"}
    records, total = store.list_images(page_size=500)
    assert len(entries) == total == CAPTURES and {e["file_name"] for e in entries} == images_in_zip
    assert sorted(sizes.values()) == sorted(r.size for r in records)
    assert len(annotations) == sum(len(r.boxes) for r in records) == 7
    assert all(categories[a["category_id"]] == "low_stock" for a in annotations)
    tags = sorted(t for e in entries for t in e.get("tags", []))
    assert tags == sorted(t for r in records for t in r.tags)
    assert sum(1 for e in entries if io is not None and e["width"] == 480 and e["height"] == 360) == CAPTURES


def signed_in_page(browser: Any, base: str, viewport: dict[str, int]) -> tuple[Any, Any]:
    """A page signed in as the admin (created through the first-run page when this test runs alone)."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(base + "/")
    if page.url.endswith("/setup"):
        submit_setup(page, ADMIN, ADMIN_PASSWORD)
        page.wait_for_url(base + "/projects/new?first=1")
        page.goto(base + "/live")
    elif "/login" in page.url:
        submit_login(page, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(base + "/live")
    return context, page


def test_library_labels_and_zones_in_chromium(
    served: dict[str, Any], browser: Any, shots: Path, tmp_path: Path
) -> None:
    from tests.web.conftest import jpeg_bytes

    base = served["url"]
    store: DatasetStore = served["store"]
    context, page = signed_in_page(browser, base, DESKTOP)
    page_errors: list[str] = []
    page.on("pageerror", lambda err: page_errors.append(str(err)))

    # -- library: upload through the file picker; a bad file in the batch stores nothing ----------------------
    before = store.list_images()[1]
    good = [tmp_path / "upload-a.jpg", tmp_path / "upload-b.jpg"]
    for n, path in enumerate(good):
        path.write_bytes(jpeg_bytes(500 + n))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a photo")
    page.goto(base + "/library")
    page.wait_for_function("() => /\\d+ images?/.test(document.getElementById('lib-total').textContent)")
    page.set_input_files("#upload-input", [str(good[0]), str(bad)])
    page.wait_for_selector(".toast.error")
    assert "broken.jpg" in page.inner_text(".toast.error")
    assert store.list_images()[1] == before
    page.set_input_files("#upload-input", [str(p) for p in good])
    page.wait_for_function(
        "([n]) => document.getElementById('lib-total').textContent.startsWith(n + ' ')", arg=[before + 2]
    )
    untagged = store.list_images(tagged=False)[1]
    assert untagged >= 2
    page.click('.seg button[data-tagged="false"]')
    # The grid already shows every image before the click: wait for the filtered page, not just for any tile.
    page.wait_for_function(
        "([n]) => document.querySelectorAll('#grid .tile').length === n"
        " && document.getElementById('lib-total').textContent.startsWith(n + ' ')",
        arg=[untagged],
    )
    page.screenshot(path=str(shots / "library-1280x800.png"))
    # Bulk delete the two uploads (the newest two), confirming the dialog.
    page.locator("#grid .tile .pick").nth(0).check()
    page.locator("#grid .tile .pick").nth(1).check()
    assert page.inner_text("#bulk-delete") == "Delete 2 selected"
    page.click("#bulk-delete")
    page.click("dialog.confirm button:has-text('Delete')")  # asks first (issue 11)
    page.wait_for_function(
        "([n]) => document.getElementById('lib-total').textContent.startsWith(n + ' ')", arg=[untagged - 2]
    )
    assert store.list_images()[1] == before
    # ... and the toast's Undo really restores them (from the trash), then they are deleted again.
    page.click("#toasts button:has-text('Undo')")
    page.wait_for_function(
        "([n]) => document.getElementById('lib-total').textContent.startsWith(n + ' ')", arg=[untagged]
    )
    assert store.list_images()[1] == before + 2
    page.locator("#grid .tile .pick").nth(0).check()
    page.locator("#grid .tile .pick").nth(1).check()
    page.click("#bulk-delete")
    page.click("dialog.confirm button:has-text('Delete')")
    page.wait_for_function(
        "([n]) => document.getElementById('lib-total').textContent.startsWith(n + ' ')", arg=[untagged - 2]
    )
    assert store.list_images()[1] == before

    # -- labels: deleting a label in use explains why and keeps it when the user says no ---------------------
    page.goto(base + "/labels")
    if not store.list_labels():
        page.fill('#new-label input[name="name"]', "low_stock")
        page.click('#new-label button[type="submit"]')
    page.wait_for_selector("tr[data-label]")
    name = store.list_labels()[0].name
    if store.get_label(name).images + store.get_label(name).boxes > 0:
        page.click(f'tr[data-label="{name}"] button:has-text("Delete")')
        question = page.locator("dialog.confirm")
        assert "lose it too" in question.inner_text()
        page.click("dialog.confirm button:has-text('Cancel')")
        page.wait_for_timeout(300)
        assert store.get_label(name).name == name
    page.screenshot(path=str(shots / "labels-1280x800.png"))

    # -- zones: a rectangle dragged and a polygon clicked over the live frame, renamed and saved -------------------
    page.goto(f"{base}/zones/{CAMERA_ID}")
    page.wait_for_function("() => document.getElementById('canvas').width > 300")
    c = canvas_box(page)
    drag_on_canvas(page, (0.05, 0.1), (0.95, 0.3))
    page.click('[data-tool="poly"]')
    for fx, fy in [(0.1, 0.6), (0.5, 0.55), (0.45, 0.9)]:
        page.mouse.click(c["x"] + fx * c["width"], c["y"] + fy * c["height"])
    page.mouse.dblclick(c["x"] + 0.12 * c["width"], c["y"] + 0.92 * c["height"])
    assert page.locator("#zonelist li").count() == 2
    # Free-text names: the id is generated from the name (and made unique), no slug to type.
    page.locator('#zonelist li input[aria-label="Zone name"]').nth(0).fill("Top Shelf")
    page.locator('#zonelist li input[aria-label="Zone name"]').nth(1).fill("Top Shelf")
    page.locator('#zonelist li select[aria-label="Alert label"]').nth(0).select_option(index=0)
    page.click("#save")
    page.wait_for_function("() => document.getElementById('dirty').hidden")
    zones = store.get_zones(CAMERA_ID)
    assert zones is not None and [z.id for z in zones] == ["top-shelf", "top-shelf-2"]
    assert zones[0].name == "Top Shelf"
    assert zones[0].bbox() == pytest.approx((0.05, 0.1, 0.95, 0.3), abs=0.02)
    assert len(zones[1].polygon) == 4 and zones[1].bbox() == pytest.approx((0.1, 0.55, 0.5, 0.92), abs=0.02)
    # Select the rectangle by clicking it, move it down by dragging its inside, resize it by its corner handle.
    page.click('[data-tool="rect"]')
    page.mouse.click(c["x"] + 0.5 * c["width"], c["y"] + 0.2 * c["height"])
    page.wait_for_function("() => document.getElementById('canvas').dataset.selected === 'top-shelf'")
    drag_on_canvas(page, (0.5, 0.2), (0.5, 0.3))
    drag_on_canvas(page, (0.95, 0.4), (0.7, 0.5))  # the bottom-right corner after the move
    # The rectangle's alert label comes from the labels of the project (a select, not free text).
    page.locator('#zonelist li select[aria-label="Alert label"]').nth(0).select_option(index=1)
    alert_label = page.locator('#zonelist li select[aria-label="Alert label"]').nth(0).input_value()
    page.click("#save")
    page.wait_for_function("() => document.getElementById('dirty').hidden")
    zones = store.get_zones(CAMERA_ID)
    assert zones is not None and [z.id for z in zones] == ["top-shelf", "top-shelf-2"], "ids stay once saved"
    assert zones[0].bbox() == pytest.approx((0.05, 0.2, 0.7, 0.5), abs=0.02)
    assert zones[0].label == alert_label and alert_label
    # Delete the polygon with the keyboard: select it, press Delete.
    page.mouse.click(c["x"] + 0.3 * c["width"], c["y"] + 0.75 * c["height"])
    page.wait_for_function("() => document.getElementById('canvas').dataset.selected === 'top-shelf-2'")
    page.keyboard.press("Delete")
    assert page.locator("#zonelist li").count() == 1
    page.click("#save")
    page.wait_for_function("() => document.getElementById('dirty').hidden")
    assert [z.id for z in store.get_zones(CAMERA_ID) or []] == ["top-shelf"]
    page.screenshot(path=str(shots / "zones-1280x800.png"))
    assert page_errors == []

    # -- account: a token created on the page works once copied, and revoking it from the page ends it ---------
    page.click(".who")
    page.wait_for_url(base + "/account")
    page.fill('#new-token input[name="name"]', "dashboard")
    page.click('#new-token button[type="submit"]')
    page.wait_for_selector("#new-token-value code")
    token = page.inner_text("#new-token-value code")
    me = context.request.get(base + "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200 and me.json()["auth"] == "token"
    page.click('#token-rows tr:has-text("dashboard") button:has-text("Revoke")')
    page.wait_for_selector('#token-rows tr:has-text("dashboard") .pill:has-text("revoked")')
    me = context.request.get(base + "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 401

    # -- the same pages on a phone -----------------------------------------------------------------------------
    phone = browser.new_context(viewport=PHONE, storage_state=context.storage_state(), is_mobile=True, has_touch=True)
    mobile = phone.new_page()
    for name, url in (("library", "/library"), ("labels", "/labels"), ("zones", f"/zones/{CAMERA_ID}")):
        mobile.goto(base + url)
        mobile.wait_for_load_state("networkidle")
        no_horizontal_overflow(mobile)
        mobile.screenshot(path=str(shots / f"{name}-390x844.png"))
    phone.close()
    context.close()
