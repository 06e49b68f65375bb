"""Model-assisted labelling in real headless Chromium: 20 new images with suggestions from the active version, one
"accept all above t" with the slider, five edited by hand with the keyboard; the clicks and keys are counted
against labelling the same 20 from scratch (the figure is in docs/WEB.md)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.assist import room
from tests.assist.conftest import GREEN, RED, Bundles, Rig, colour_jpeg, open_rig
from tests.helpers.browser import chromium_browser
from tests.helpers.waiting import wait_until
from tests.web.conftest import ADMIN, ADMIN_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 800}
TINTED = (120, 120, 140)  # BGR: grey with a red cast; the tiny model says "red" at ~0.7, a person says "green"


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def images() -> list[tuple[bytes, str]]:
    """15 clear photos (8 red, 7 green) and then 5 ambiguous ones that are really green."""
    clear = [(colour_jpeg(RED if i % 2 == 0 else GREEN, 300 + i), "red" if i % 2 == 0 else "green") for i in range(15)]
    return clear + [(colour_jpeg(TINTED, 400 + i), "green") for i in range(5)]


def setup(rig: Rig, with_model: bool, bundles: Bundles) -> list[int]:
    for name in ("red", "green"):
        rig.admin.post("/api/v1/labels", json={"name": name})
    if with_model:
        rig.models.install(bundles.plain, activate=True, project=1)
    files = [(io.BytesIO(data), f"cap-{i:02d}.jpg") for i, (data, _) in enumerate(images())]
    resp = rig.admin.post("/api/v1/images", data={"file": files}, content_type="multipart/form-data")
    return [item["id"] for item in resp.get_json()["items"]]


class Counter:
    """Counts the person's actions: clicks, key presses and slider moves."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.actions = 0

    def key(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.actions += 1

    def click(self, selector: str) -> None:
        self.page.click(selector)
        self.actions += 1

    def goto(self, url: str) -> None:  # a click on the Tag link
        self.page.goto(url)
        self.actions += 1

    def slide(self, selector: str, value: str) -> None:
        self.page.fill(selector, value)
        self.actions += 1


def sign_in(browser: Any, base: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(base + "/login")
    page.fill('input[name="username"]', ADMIN)
    page.fill('input[name="password"]', ADMIN_PASSWORD)
    page.click('button:has-text("Sign in")')
    page.wait_for_url(lambda url: "/login" not in url)
    return context, page


def title_is(page: Any, image_id: int) -> None:
    page.wait_for_function(
        "([t]) => document.getElementById('image-title').textContent === t", arg=[f"Image #{image_id}"]
    )


def test_assisted_labelling_takes_fewer_actions_than_from_scratch(
    tmp_path: Path, browser: Any, bundles: Bundles
) -> None:
    from edge.web import WebServer

    truth = [label for _, label in images()]
    results: dict[str, int] = {}
    for mode in ("scratch", "assisted"):
        with open_rig(tmp_path / mode, bundles) as rig:
            ids = setup(rig, mode == "assisted", bundles)
            if mode == "assisted":
                store = rig.store
                assert wait_until(lambda: all(room.get(store, i) is not None for i in ids), 60)  # noqa: B023
            server = WebServer(rig.app, host="127.0.0.1", port=0).start()
            errors: list[str] = []
            try:
                context, page = sign_in(browser, server.url)
                page.on("pageerror", lambda err, errors=errors: errors.append(str(err)))
                you = Counter(page)
                you.goto(f"{server.url}/tag")
                title_is(page, ids[0])
                if mode == "scratch":
                    for i, label in enumerate(truth):
                        you.key("1" if label == "red" else "2")
                        you.key("Enter")
                        if i + 1 < len(ids):
                            title_is(page, ids[i + 1])
                    page.wait_for_selector("#end-prompt:not([hidden])")
                else:
                    page.wait_for_selector("#suggestions:not([hidden]) #sug-tags")
                    assert "red" in page.inner_text("#sug-tags")
                    you.slide("#sug-threshold", "0.9")
                    page.wait_for_function("() => document.getElementById('sug-count').dataset.count === '15'")
                    you.click("#sug-accept-all")
                    page.wait_for_selector(".toast.ok:has-text('Accepted suggestions on 15 image(s)')")
                    page.screenshot(path=str(tmp_path / "assisted-bulk-1280x800.png"))
                    side = page.inner_text(".tagger .side")
                    assert "null" not in side and "undefined" not in side, side  # no stray values in the panels
                    you.goto(f"{server.url}/tag")  # the first untagged image: the first ambiguous one
                    for n, image_id in enumerate(ids[15:]):
                        title_is(page, image_id)
                        page.wait_for_selector("#sug-reject")
                        you.key("x")  # reject "red"
                        you.key("2")  # tag "green" by hand
                        you.key("Enter")  # save & next
                        if n < 4:
                            title_is(page, ids[16 + n])
                    page.wait_for_selector("#end-prompt:not([hidden])")
                labelled = [rig.store.get_image(i).tags for i in ids]
                assert labelled == [[label] for label in truth]
                assert not errors, errors
                results[mode] = you.actions
                context.close()
            finally:
                server.stop()
    assert results["scratch"] == 41  # Tag link + 20 x (digit, Enter)
    assert results["assisted"] == 19  # Tag link, slider, Accept all, Tag link + 5 x (X, digit, Enter)
    print(f"assisted labelling: {results['assisted']} actions vs {results['scratch']} from scratch")


def test_library_shows_the_inbox_view_and_reviewed_since(tmp_path: Path, browser: Any, bundles: Bundles) -> None:
    import cv2
    import numpy as np

    from edge.assist.inbox import InboxConfig, InboxWriter
    from edge.web import WebServer

    with open_rig(tmp_path / "lib", bundles) as rig:
        for name in ("red", "green"):
            rig.admin.post("/api/v1/labels", json={"name": name})
        rig.models.install(bundles.plain, activate=True, project=1)
        writer = InboxWriter(rig.store, InboxConfig(min_interval_s=0))
        frames = [cv2.imdecode(np.frombuffer(colour_jpeg(RED, 500 + i, 160, 120), np.uint8), 1) for i in range(2)]
        kept = [writer.keep(f, f"unsure: zone z{i} scored 0.55", "cam") for i, f in enumerate(frames) if f is not None]
        assert len(kept) == 2 and kept[0] is not None and kept[1] is not None
        rig.store.set_annotations(kept[0], ["red"], [])
        server = WebServer(rig.app, host="127.0.0.1", port=0).start()
        try:
            context, page = sign_in(browser, server.url)
            page.goto(f"{server.url}/library")
            page.wait_for_selector("#assist-bar:not([hidden]) #inbox-link")
            assert page.inner_text("#inbox-link") == "Inbox: 1 waiting"
            assert page.inner_text("#inbox-reviewed") == "1 reviewed since v1"
            assert page.locator("#assist-bar a:has-text('Retrain')").count() == 1
            page.click("#inbox-link")
            page.wait_for_selector(".tile .pill.inbox")
            assert page.locator(".tile").count() == 2
            assert "unsure: zone z1 scored 0.55" in page.inner_text(".tile >> nth=0")
            context.close()
        finally:
            server.stop()


def half_dark_jpeg(width: int = 160, height: int = 120) -> bytes:
    """Left half dark (the tiny detector's "empty" box), right half bright ("stocked")."""
    import cv2
    import numpy as np

    image = np.full((height, width, 3), 235, dtype=np.uint8)
    image[:, : width // 2] = 20
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def drag(page: Any, box: dict[str, float], start: tuple[float, float], end: tuple[float, float]) -> None:
    """A mouse drag on the canvas between two normalised image points."""
    page.mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"], steps=6)
    page.mouse.up()


def test_edit_then_accept_a_suggested_box(tmp_path: Path, browser: Any, bundles: Bundles) -> None:
    """E takes the suggested boxes into the editor; one is resized and moved, the other relabelled; A saves them as
    the image's annotation (the suggestion's coordinates are not what is stored)."""
    from edge.web import WebServer

    with open_rig(tmp_path / "edit", bundles) as rig:
        for name in ("empty", "stocked"):
            rig.admin.post("/api/v1/labels", json={"name": name})
        rig.models.install(bundles.detector, activate=True, project=1)
        resp = rig.admin.post(
            "/api/v1/images", data={"file": [(io.BytesIO(half_dark_jpeg()), "shelf.jpg")]},
            content_type="multipart/form-data",
        )  # fmt: skip
        image_id = resp.get_json()["items"][0]["id"]
        server = WebServer(rig.app, host="127.0.0.1", port=0).start()
        errors: list[str] = []
        try:
            context, page = sign_in(browser, server.url)
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(f"{server.url}/tag/{image_id}")
            title_is(page, image_id)
            page.wait_for_selector("#suggestions:not([hidden]) #sug-edit")
            suggested = rig.admin.get(f"/api/v1/images/{image_id}/suggestions").get_json()
            above = [b for b in suggested["boxes"] if b["score"] >= suggested["threshold"]]
            assert sorted(b["label"] for b in above) == ["empty", "stocked"]
            left = next(b for b in above if b["label"] == "empty")
            right = next(b for b in above if b["label"] == "stocked")

            assert page.locator("#sug-box-list tr").count() == 2  # each box above t with its score
            page.keyboard.press("e")
            page.wait_for_selector("#sug-editing")
            assert page.locator("#boxlist li").count() == 2  # now ordinary, unsaved boxes
            assert not page.locator("#dirty").is_hidden()
            rect = page.locator("#canvas").bounding_box()
            assert rect is not None
            # resize the selected (first, "empty") box by its top-left corner, then move it right
            assert page.locator("#boxlist select >> nth=0").input_value() == "empty"
            drag(page, rect, (left["x1"], left["y1"]), (left["x1"] + 0.05, left["y1"] + 0.1))
            drag(page, rect, (0.2, 0.5), (0.3, 0.5))
            # relabel the other one: select it, press 1 ("empty")
            page.mouse.click(rect["x"] + 0.75 * rect["width"], rect["y"] + 0.5 * rect["height"])
            page.keyboard.press("1")
            page.keyboard.press("a")  # accept as edited
            page.wait_for_selector(".toast.ok:has-text('Saved image')")
            page.wait_for_selector("#suggestions :text('Decided for this image.')")
            saved = sorted(rig.store.get_image(image_id).boxes, key=lambda b: b.x1)
            assert [b.label for b in saved] == ["empty", "empty"]
            moved, relabelled = saved
            assert moved.x1 == pytest.approx(left["x1"] + 0.05 + 0.1, abs=0.01)  # resized, then moved by 0.1
            assert moved.x2 == pytest.approx(left["x2"] + 0.1, abs=0.01)
            assert moved.y1 == pytest.approx(left["y1"] + 0.1, abs=0.01) and moved.y2 == pytest.approx(left["y2"])
            assert (relabelled.x1, relabelled.y1) == pytest.approx((right["x1"], right["y1"]), abs=1e-4)
            assert not errors, errors
            context.close()
        finally:
            server.stop()
