"""systemd units: `systemd-analyze verify` passes and `systemd-analyze security --offline=yes` stays at or under
3.0 (trainer) and 4.0 (edge); the directives the appliance relies on are there."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

import pytest

from tests.ops.conftest import SYSTEMD, need

UNITS = {"shelfwatch-edge.service": 4.0, "shelfwatch-trainer.service": 3.0}
EXEC = "/opt/shelfwatch/venv/bin/shelfwatch"


def _unit_for_check(name: str, tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at a real executable (verify checks that the binary exists)."""
    text = (SYSTEMD / name).read_text()
    assert EXEC in text
    out = tmp_path / name
    out.write_text(text.replace(EXEC, "/bin/true"))
    return out


def _directives(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_verifies(name: str, tmp_path: Path) -> None:
    analyze = need("systemd-analyze", "systemd")
    unit = _unit_for_check(name, tmp_path)
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if name in line or "Unknown" in line]
    assert result.returncode == 0 and not problems, result.stderr


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_exposure(name: str, tmp_path: Path) -> None:
    analyze = need("systemd-analyze", "systemd")
    unit = _unit_for_check(name, tmp_path)
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(unit)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    exposure = float(match.group(1))
    assert exposure <= UNITS[name], f"{name}: exposure {exposure} > {UNITS[name]}\n{result.stdout}"


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_essentials(name: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text())
    assert set(parser.sections()) == {"Unit", "Service", "Install"}
    d = _directives(name)
    assert d["Type"] == ["notify"] and d["WatchdogSec"] and d["Restart"] == ["on-failure"]
    assert d["StartLimitBurst"] and d["StartLimitIntervalSec"]  # restart with limits
    assert d["ExecStart"][0].startswith(EXEC + " ")
    assert d["User"][0].startswith("shelfwatch") and d["StateDirectory"][0].startswith("shelfwatch")
    for hardening in ("ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "SystemCallFilter"):
        assert hardening in d, hardening
    assert d["ProtectSystem"] == ["strict"] and d["CapabilityBoundingSet"] == [""]
    credentials = [c.split(":", 1)[0] for c in d["LoadCredential"]]
    assert all(c.split(":", 1)[1].startswith("/etc/shelfwatch/credentials/") for c in d["LoadCredential"])
    if name == "shelfwatch-edge.service":
        assert set(credentials) == {"mqtt-password", "web-secret-key"}
        assert d["DevicePolicy"] == ["closed"] and d["DeviceAllow"] == ["char-video4linux rw"]
        assert "-c /etc/shelfwatch/edge.yaml" in d["ExecStart"][0]
    else:
        assert set(credentials) == {"trainer-token", "bundle-signing-key"}
        assert "DeviceAllow" not in d and d["PrivateDevices"] == ["yes"]
        assert "trainer serve -c /etc/shelfwatch/trainer.yaml" in d["ExecStart"][0]
