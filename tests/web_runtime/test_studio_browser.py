"""Train, the report and the models of a project in real headless Chromium, against a real agent and trainer.

A project made in the store is the browser's current project (the switcher); Train with no options; the run's
result carries the trainer's warning and a link to the full report; the report page is styled, has a way back,
shows no path of the trainer's machine and a mistakes gallery of the project's own images (true vs predicted and
score); the Models page names the version `<project> v1 · <date>` and asks before activating (Cancel changes
nothing) and before rolling back. Screenshots at 1280x800 and 390x844 under the pytest temp dir.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.web.server import WebServer
from tests.helpers.browser import chromium_browser, submit_login
from tests.web_runtime.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    COLOURS,
    TOKEN,
    Trainer,
    make_config,
    running_trainer,
    start_device,
)
from tests.web_runtime.studio_runners import WARNING
from tests.web_runtime.test_training_projects import fill_project

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 20_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture
def trainer(tmp_path: Path) -> Iterator[Trainer]:
    with running_trainer(tmp_path / "trainer", "tests.web_runtime.studio_runners:reported_runner") as trainer:
        yield trainer


def no_horizontal_overflow(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"{page.url} is {overflow}px wider than the screen"


def test_train_report_mistakes_and_models_of_a_project(
    tmp_path: Path, trainer: Trainer, shelf_folder: Path, browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = make_config(tmp_path / "device", trainer.public_key(), shelf_folder, url=trainer.url, token=TOKEN)
    device = start_device(config)
    store = device.agent.store
    project = store.create_project("Colour bins", "classification", [(n, f"a {n} block") for n in COLOURS])
    fill_project(store, project.id)
    shots = tmp_path_factory.mktemp("studio-screens")
    errors: list[str] = []
    with device, WebServer(device.app) as server:
        context = browser.new_context(viewport=DESKTOP)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(server.url + "/projects")
        submit_login(page, ADMIN, ADMIN_PASSWORD)
        page.wait_for_url(server.url + "/projects")
        page.click("#project-rows tr:has-text('Colour bins') button:has-text('Switch to')")
        page.wait_for_selector("#project-rows tr:has-text('Colour bins') .pill:has-text('current')")

        # Train with nothing set: the project's readiness, its default threshold, only usable backbones.
        page.goto(server.url + "/training")
        page.wait_for_selector("#train:not([disabled])")
        assert page.input_value('input[name="deploy_threshold"]') == "0.85"
        options = page.locator("#backbone option").all_inner_texts()
        assert options[0].startswith("trainer default") and len(options) >= 1
        page.fill('input[name="deploy_threshold"]', "0.4")
        page.click("#train")
        page.wait_for_selector("#history tr .pill:has-text('deployed')")
        page.wait_for_selector("#res-title:has-text('Colour bins v1')")
        assert WARNING in page.inner_text("#res-warnings")
        assert "null" not in page.inner_text("main")
        page.screenshot(path=str(shots / "training-desktop.png"), full_page=True)

        # The full report: styled, a way back, no trainer path, the mistakes of this project's images.
        page.click("#res-report")
        page.wait_for_url("**/report")
        assert page.inner_text("h1").startswith("Colour bins v1 · ")
        body = page.inner_text("main")
        assert WARNING in body and "/srv/trainer-machine" not in body and "squeezenet1_1.npz" in body
        tiles = page.locator(".mistake")
        assert tiles.count() == 2
        assert "predicted" in tiles.nth(0).inner_text() and "(0.90)" in tiles.nth(0).inner_text()
        assert page.locator(".mistake img").count() == 2  # the project's own images, by their dataset names
        page.wait_for_function("() => [...document.querySelectorAll('.mistake img')].every(i => i.naturalWidth > 0)")
        page.screenshot(path=str(shots / "report-desktop.png"), full_page=True)
        raw = page.request.get(page.url.replace("/models/", "/api/v1/models/")).text()
        assert "/srv/trainer-machine" not in raw
        page.click("text=← Models")
        page.wait_for_url(server.url + "/models")

        # Models: named versions; activate asks (Cancel keeps the running one), rollback asks too.
        page.wait_for_selector("#model-rows tr")
        assert page.inner_text("#model-rows tr b").startswith("Colour bins v1 · ")
        assert page.inner_text("#running").startswith("Running: Colour bins v1")
        page.goto(server.url + "/training")  # a second run: v2 (the project's threshold 0.4 is remembered)
        page.wait_for_selector("#train:not([disabled])")
        assert page.input_value('input[name="deploy_threshold"]') == "0.4"
        page.click("#train")
        page.wait_for_selector("#res-title:has-text('Colour bins v2')")
        page.goto(server.url + "/models")
        page.wait_for_selector("#running:has-text('Colour bins v2')")
        v1 = page.locator("#model-rows tr:has-text('Colour bins v1')")
        v1.locator("button:has-text('Activate')").click()
        assert "Activate Colour bins v1" in page.inner_text("dialog.confirm")
        page.keyboard.press("Escape")  # Esc cancels: nothing changes
        page.wait_for_timeout(300)
        assert device.agent.models.version_tag(device.agent.models.active_version() or "")["number"] == 2
        v1.locator("button:has-text('Activate')").click()
        page.click("dialog.confirm button:has-text('Activate')")
        page.wait_for_selector("#running:has-text('Colour bins v1')")
        page.click("#rollback")
        assert "Roll back to Colour bins v2" in page.inner_text("dialog.confirm")
        page.screenshot(path=str(shots / "models-rollback-confirm-desktop.png"))
        page.click("dialog.confirm button:has-text('Roll back')")
        page.wait_for_selector("#running:has-text('Colour bins v2')")
        page.screenshot(path=str(shots / "models-desktop.png"), full_page=True)

        phone = browser.new_context(viewport=PHONE, storage_state=context.storage_state())
        phone_page = phone.new_page()
        report_path = "/models/" + (device.agent.models.active_version() or "") + "/report"
        for path, name in (
            ("/training", "training"),
            ("/models", "models"),
            ("/trash", "trash"),
            (report_path, "report"),
        ):
            phone_page.goto(server.url + path)
            phone_page.wait_for_load_state("networkidle")
            phone_page.screenshot(path=str(shots / f"{name}-phone.png"), full_page=True)
            no_horizontal_overflow(phone_page)
        phone.close()
        context.close()
    assert errors == []
