"""The admins' users page and the account page's password change in real headless Chromium over a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.store import DatasetStore
from edge.web import Services, WebServer, create_app
from tests.helpers.browser import chromium_browser
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, make_config

pytestmark = [pytest.mark.browser]

TIMEOUT_MS = 15_000


@pytest.fixture
def served(tmp_path: Path, shelf_folder: Path) -> Iterator[dict[str, Any]]:
    config = make_config(tmp_path / "data", shelf_folder)
    store = DatasetStore(config.data_dir, config.dataset)
    services = Services(store=store)
    server = WebServer(create_app(config, services), host="127.0.0.1", port=0).start()
    assert services.users is not None
    services.users.create_first_admin(ADMIN, ADMIN_PASSWORD)
    try:
        yield {"url": server.url, "users": services.users}
    finally:
        server.stop()
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def sign_in(page: Any, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u, timeout=TIMEOUT_MS)


def test_admin_adds_a_labeller_who_cannot_open_the_users_page(served: dict[str, Any], browser: Any) -> None:
    admin = browser.new_context().new_page()
    admin.set_default_timeout(TIMEOUT_MS)
    sign_in(admin, served["url"], ADMIN, ADMIN_PASSWORD)
    admin.goto(f"{served['url']}/account")
    admin.click("text=Manage users and roles")
    admin.wait_for_selector(f"tr[data-user='{ADMIN}']")
    admin.fill("#new-user input[name=username]", "lab")
    admin.fill("#new-user input[name=password]", "lab-password")
    admin.select_option("#new-user select[name=role]", "labeller")
    admin.click("#new-user button[type=submit]")
    admin.wait_for_selector("tr[data-user='lab']")
    assert admin.eval_on_selector("tr[data-user='lab'] select", "s => s.value") == "labeller"
    assert served["users"].by_name("lab").role == "labeller"

    lab = browser.new_context().new_page()
    lab.set_default_timeout(TIMEOUT_MS)
    sign_in(lab, served["url"], "lab", "lab-password")
    assert lab.goto(f"{served['url']}/users").status == 403
    lab.goto(f"{served['url']}/account")
    assert lab.inner_text("#role") == "labeller"
    assert lab.locator("text=Manage users and roles").count() == 0

    # The admin demotes the labeller from the page: the role select saves at once.
    admin.select_option("tr[data-user='lab'] select", "viewer")
    admin.wait_for_selector("text=lab is now viewer")  # the toast after the PATCH answered
    assert served["users"].by_name("lab").role == "viewer"


def test_changing_the_password_signs_out_the_other_browser(served: dict[str, Any], browser: Any) -> None:
    first = browser.new_context().new_page()
    second = browser.new_context().new_page()
    for page in (first, second):
        page.set_default_timeout(TIMEOUT_MS)
        sign_in(page, served["url"], ADMIN, ADMIN_PASSWORD)
    first.goto(f"{served['url']}/account")
    first.fill("#change-password input[name=current_password]", ADMIN_PASSWORD)
    first.fill("#change-password input[name=new_password]", "a brand new password")
    first.click("#change-password button[type=submit]")
    first.wait_for_selector("text=Password changed")
    first.wait_for_load_state("load")
    assert served["users"].authenticate(ADMIN, "a brand new password") is not None
    # The browser that changed it stays signed in; the other one is sent to the login page.
    first.goto(f"{served['url']}/account")
    assert "/login" not in first.url
    second.goto(f"{served['url']}/account")
    assert "/login" in second.url
