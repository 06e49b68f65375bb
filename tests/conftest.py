"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.broker import MOSQUITTO, Broker

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (real photos, videos, weights); tests that need it skip when it is absent."""
    if not (SHARED / "datasets").is_dir():
        pytest.skip(f"{SHARED} is absent: this test needs the shared real datasets/weights beside the checkout")
    return SHARED


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto broker on a free loopback port."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian package 'mosquitto'; `make test` installs it as root)")
    b = Broker(tmp_path / "broker").start()
    try:
        yield b
    finally:
        b.stop()
