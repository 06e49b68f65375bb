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
                assert wait_until(lambda ids=ids, rig=rig: all(room.get(rig.store, i) is not None for i in ids), 60)
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
        kept = [writer.keep(f, f"unsure: zone z{i} scored 0.55", "cam") for i, f in enumerate(frames)]
        assert all(kept)
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
