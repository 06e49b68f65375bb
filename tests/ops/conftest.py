"""Shared paths and skips of the operations tests (systemd units, Docker files, deploy scripts, Mosquitto)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
DOCKER = REPO / "docker"
DEPLOY = REPO / "deploy"


def need(tool: str, package: str) -> str:
    """The tool's path, or skip the test saying which Debian package provides it."""
    path = shutil.which(tool) or next((p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if Path(p).exists()), None)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package '{package}'; `make test` installs it as root)")
    return path
