"""deploy/install.sh against a temporary root: a venv with the shelfwatch command where the unit's ExecStart
expects it, the unit installed and enabled, config and credentials in place and kept on upgrade, and a rollback
that points the venv back at the previous release. The package is installed from a wheel built from a copy of
the sources, without dependencies (nothing can be downloaded here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.conftest import DEPLOY, REPO, SYSTEMD, need


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shelfwatch wheel built from a copy of the sources (the shared tree gets no build folders)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for package in ("edge", "trainer"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(work), str(src)],
        check=True,
        timeout=300,
    )
    return next(work.glob("shelfwatch-*.whl"))


def _install(root: Path, wheel: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    need("systemctl", "systemd")
    result = subprocess.run(
        [
            "sh",
            str(DEPLOY / "install.sh"),
            "--root",
            str(root),
            "--from",
            str(wheel),
            "--pip-args",
            "--no-deps --no-index",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _exec_start(unit: Path) -> str:
    line = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
    return line.split("=", 1)[1].split()[0]


@pytest.mark.slow
def test_install_upgrade_and_rollback_edge(tmp_path: Path, wheel: Path) -> None:
    root = tmp_path / "root"
    _install(root, wheel)
    unit = root / "etc/systemd/system/shelfwatch-edge.service"
    assert unit.read_text() == (SYSTEMD / "shelfwatch-edge.service").read_text()
    wanted = root / "etc/systemd/system/multi-user.target.wants/shelfwatch-edge.service"
    assert wanted.is_symlink() and os.readlink(wanted) == "/etc/systemd/system/shelfwatch-edge.service"
    # the venv and the command sit where the unit's ExecStart looks (under the root)
    command = root / _exec_start(unit).lstrip("/")
    assert command.is_file() and os.access(command, os.X_OK)
    assert (root / "opt/shelfwatch/venv/bin/python").exists()
    assert "from edge.cli import main" in command.read_text()
    first_release = os.readlink(root / "opt/shelfwatch/venv")
    assert first_release.startswith("releases/")
    # config where the unit reads it; secrets where LoadCredential= reads them, private
    config = root / "etc/shelfwatch/edge.yaml"
    assert config.read_text() == (DEPLOY / "edge.yaml").read_text()
    credentials = root / "etc/shelfwatch/credentials"
    assert (credentials.stat().st_mode & 0o777) == 0o700
    for line in unit.read_text().splitlines():
        if line.startswith("LoadCredential="):
            path = root / line.split(":", 1)[1].lstrip("/")
            assert path.is_file() and len(path.read_text().strip()) >= 32 and (path.stat().st_mode & 0o077) == 0

    # upgrade: a new release; config and secrets kept as the user left them
    config.write_text(config.read_text() + "# edited by the user\n")
    password = (credentials / "mqtt-password").read_text()
    _install(root, wheel)
    second_release = os.readlink(root / "opt/shelfwatch/venv")
    assert second_release != first_release and (root / "opt/shelfwatch" / second_release / "bin/shelfwatch").is_file()
    assert os.readlink(root / "opt/shelfwatch/previous") == first_release
    assert config.read_text().endswith("# edited by the user\n")
    assert (credentials / "mqtt-password").read_text() == password

    # rollback: venv points at the first release again, and back again on a second rollback
    subprocess.run(["sh", str(DEPLOY / "install.sh"), "--root", str(root), "--rollback"], check=True, timeout=60)
    assert os.readlink(root / "opt/shelfwatch/venv") == first_release
    assert os.readlink(root / "opt/shelfwatch/previous") == second_release


def test_rollback_without_a_previous_release_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", str(DEPLOY / "install.sh"), "--root", str(tmp_path), "--rollback"], capture_output=True, text=True
    )
    assert result.returncode == 1 and "no previous release" in result.stderr


def test_bad_options_are_refused(tmp_path: Path) -> None:
    for args in (["--role", "printer"], ["--frobnicate"]):
        result = subprocess.run(
            ["sh", str(DEPLOY / "install.sh"), "--root", str(tmp_path), *args], capture_output=True, text=True
        )
        assert result.returncode == 2 and result.stderr
    assert not (tmp_path / "opt").exists()
