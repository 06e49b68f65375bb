"""Debian's Chromium, headless, driven by Playwright (never a downloaded browser), for the browser suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# The background-networking flags keep Chromium from dialling out on a machine with no network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_browser() -> Iterator[Any]:
    """A launched headless Chromium (a generator for fixtures); skips with the reason when it cannot run."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (Debian package 'chromium'; `make test` installs it as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the dev extra)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def submit_login(page: Any, username: str, password: str) -> None:
    """Fill the /login form on `page` and press Sign in (the caller waits for where it lands)."""
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.click('button:has-text("Sign in")')


def submit_setup(page: Any, username: str, password: str) -> None:
    """Fill the first-run /setup form (the first administrator) on `page` and create the account."""
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.fill('input[name="password_repeat"]', password)
    page.click("text=Create the admin >> nth=-1")
