"""The guided first run in real headless Chromium: admin, the project form, the switcher, the checklist.

A fresh data dir as `make demo` starts: creating the admin leads to the project form (name, a task card with its
picture and one-line explanation, labels with descriptions, the none class offered for classification only); the
new project becomes the current one, the getting-started checklist follows captures ("3 of 15 captured") and
links each step; the nav's switcher changes the project every page works on. Screenshots of the form, the projects
page and the live view with the checklist at 1280x800 and 390x844 go under the pytest temp dir.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.cameras.capture import CameraHub
from edge.cameras.sources import open_source
from edge.store import DatasetStore
from edge.vocabulary import NONE_LABEL
from edge.web import Services, WebServer, create_app
from tests.helpers.browser import chromium_browser, submit_setup
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, make_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000


@pytest.fixture
def served(tmp_path: Path, shelf_folder: Path) -> Iterator[dict[str, Any]]:
    config = make_config(tmp_path / "data", shelf_folder)
    store = DatasetStore(config.data_dir, config.dataset)
    hub = CameraHub(config.cameras, source_factory=functools.partial(open_source, rate=8))
    hub.start_all()
    server = WebServer(create_app(config, Services(store=store, cameras=hub)), host="127.0.0.1", port=0).start()
    try:
        yield {"url": server.url, "store": store}
    finally:
        server.stop()
        hub.stop_all()
        store.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def no_horizontal_overflow(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"{page.url} is {overflow}px wider than the screen"


def test_first_run_project_form_switcher_and_checklist(
    served: dict[str, Any], browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base, store = served["url"], served["store"]
    shots = tmp_path_factory.mktemp("project-screens")
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))

    page.goto(base + "/")
    submit_setup(page, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(base + "/projects/new?first=1")
    assert page.inner_text("h1") == "Your first project"
    # Both tasks, each with its picture and one line; the none class is offered for classification only.
    cards = page.locator(".task-card")
    assert cards.count() == 2
    assert "Classify zones or whole images" in cards.nth(0).inner_text()
    assert "Detect boxes" in cards.nth(1).inner_text()
    assert page.locator(".task-card img").nth(1).evaluate("img => img.naturalWidth") > 0
    assert page.is_visible("#none-offer")
    page.screenshot(path=str(shots / "project-new-desktop.png"), full_page=True)
    page.click("text=Detect boxes")
    assert not page.is_visible("#none-offer")
    page.click("text=Classify zones or whole images")
    assert page.is_visible("#none-offer")

    # Empty name: said on the form, nothing created.
    page.click("text=Create the project")
    assert "name" in page.inner_text("#form-error")
    assert len(store.list_projects()) == 1

    # By keyboard: the name, then a second label with a description.
    page.fill('input[name="name"]', "Drinks shelf")
    page.click("#add-label")
    page.keyboard.type("Full")
    page.keyboard.press("Tab")
    page.keyboard.type("every facing stocked")
    page.click("text=Create the project")
    page.wait_for_url(base + "/live")
    project = next(p for p in store.list_projects() if p.name == "Drinks shelf")
    assert project.task == "classification"
    labels = {lab.name: lab.description for lab in store.list_labels(project=project.id)}
    # Names keep their case; the none class was added because the user left it ticked.
    assert labels == {
        "low_stock": "a shelf area with little or no stock",
        "Full": "every facing stocked",
        NONE_LABEL: "none of the other labels",
    }

    # The switcher shows the new project; the checklist starts at capture and links each step.
    assert page.locator("#project-switch option:checked").inner_text() == "Drinks shelf"
    checklist = page.locator("nav.checklist")
    assert "Getting started · Drinks shelf" in checklist.inner_text()
    assert "0 of 15 captured" in checklist.inner_text()
    assert page.locator('.checklist a[data-step="project"]').get_attribute("class") == "done"
    assert page.locator('.checklist a[data-step="capture"]').get_attribute("class") == "next"
    assert page.locator('.checklist a[data-step="zones"]').count() == 1  # classification of zones
    for _ in range(3):
        page.click('[data-role="capture"] >> nth=0')
        page.wait_for_timeout(400)
    page.reload()
    page.wait_for_selector("nav.checklist")
    # The Live page's captures went to the current project (the switcher's cookie), not the default one.
    assert store.get_project(project.id).images == 3
    assert store.get_project(None).images == 0
    assert "3 of 15 captured" in page.inner_text("nav.checklist")
    assert "0 of 15 tagged" in page.inner_text("nav.checklist")
    page.screenshot(path=str(shots / "live-checklist-desktop.png"))
    page.click('.checklist a[data-step="tag"]')
    page.wait_for_url(base + "/tag**")

    # A second project by the switcher's "New project…"; then switch back with the switcher.
    page.select_option("#project-switch", "new")
    page.wait_for_url(base + "/projects/new")
    page.fill('input[name="name"]', "Gaps")
    page.click("text=Detect boxes")
    page.click("text=Create the project")
    page.wait_for_url(base + "/live")
    gaps = next(p for p in store.list_projects() if p.name == "Gaps")
    assert gaps.task == "detection"
    assert {lab.name for lab in store.list_labels(project=gaps.id)} == {"low_stock"}  # no none class for boxes
    assert page.locator('.checklist a[data-step="zones"]').count() == 0
    assert "0 of 15 captured" in page.inner_text("nav.checklist")
    page.goto(base + "/projects")
    page.wait_for_selector("#project-rows tr")
    rows = page.inner_text("#project-rows")
    assert "Drinks shelf" in rows and "Gaps" in rows and "detect boxes" in rows
    page.screenshot(path=str(shots / "projects-desktop.png"))
    page.select_option("#project-switch", str(project.id))
    page.wait_for_function(f"() => document.querySelector('#project-switch').value === '{project.id}'")
    page.wait_for_selector("text=3 of 15 captured")

    # The phone: nothing wider than the screen, the checklist wraps.
    phone = context.new_page()
    phone.set_viewport_size(PHONE)
    for path, name in (("/projects/new", "project-new"), ("/projects", "projects"), ("/live", "live-checklist")):
        phone.goto(base + path)
        phone.wait_for_selector("nav.checklist")
        phone.screenshot(path=str(shots / f"{name}-phone.png"), full_page=True)
        no_horizontal_overflow(phone)
    # The Switch/current column is on the phone's screen, not scrolled off inside the table.
    phone.goto(base + "/projects")
    phone.wait_for_selector("#project-rows tr td:last-child .btn, #project-rows tr td:last-child .pill")
    rights = phone.eval_on_selector_all(
        "#project-rows tr td:last-child > *", "els => els.map((e) => e.getBoundingClientRect().right)"
    )
    assert rights and max(rights) <= PHONE["width"], rights
    assert errors == []
    context.close()
