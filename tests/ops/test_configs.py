"""The example configs (deploy/ and docker/config/) validate against the real config models, with their secrets
coming from a credentials directory as systemd and compose provide it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import EdgeConfig, load_yaml_config
from edge.errors import ConfigError
from tests.ops.conftest import DEPLOY, DOCKER
from trainer.config import TrainerConfig

SECRETS = {
    "mqtt-password": "device-pass",
    "web-secret-key": "web-key",
    "trainer-token": "token-123",
    "bundle-signing-key": "PEM",
}


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "credentials"
    folder.mkdir()
    for name, value in SECRETS.items():
        (folder / name).write_text(value + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    return folder


@pytest.mark.parametrize("path", [DEPLOY / "edge.yaml", DOCKER / "config" / "edge.yaml"], ids=["deploy", "docker"])
def test_edge_examples_validate(path: Path, credentials: Path) -> None:
    config = load_yaml_config(path, EdgeConfig)
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == "device-pass"
    assert config.web.secret_key is not None and config.web.secret_key.get_secret_value() == "web-key"
    # the broker ACL keys on the user name: it must be the device id
    assert config.mqtt.username == config.device_id
    assert config.cameras


@pytest.mark.parametrize(
    "path", [DEPLOY / "trainer.yaml", DOCKER / "config" / "trainer.yaml"], ids=["deploy", "docker"]
)
def test_trainer_examples_validate(path: Path, credentials: Path) -> None:
    config = load_yaml_config(path, TrainerConfig)
    assert [t.get_secret_value() for t in config.server.tokens] == ["token-123"]
    assert config.signing_key is not None
    assert Path(config.signing_key.get_secret_value()) == credentials / "bundle-signing-key"


def test_units_state_directories_match_the_examples(credentials: Path) -> None:
    edge = load_yaml_config(DEPLOY / "edge.yaml", EdgeConfig)
    trainer = load_yaml_config(DEPLOY / "trainer.yaml", TrainerConfig)
    edge_unit = (DEPLOY.parent / "systemd" / "shelfwatch-edge.service").read_text()
    trainer_unit = (DEPLOY.parent / "systemd" / "shelfwatch-trainer.service").read_text()
    assert f"StateDirectory={edge.data_dir.name}\n" in edge_unit and str(edge.data_dir).startswith("/var/lib/")
    assert f"StateDirectory={trainer.data_dir.name}\n" in trainer_unit and str(trainer.data_dir).startswith("/var/lib/")


def test_missing_credential_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(ConfigError, match=r"mqtt-password|web-secret-key"):
        load_yaml_config(DEPLOY / "edge.yaml", EdgeConfig)
