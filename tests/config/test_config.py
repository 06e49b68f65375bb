"""The device and trainer config trees: validation, YAML line numbers, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import EdgeConfig, load_yaml_config, parse_yaml_config
from edge.errors import ConfigError
from trainer.config import TrainerConfig

DOC_EXAMPLE = """\
device_id: shelf-01
data_dir: /var/lib/shelfwatch
web: {host: 0.0.0.0, port: 8080}
mqtt: {host: localhost, port: 1883, topic_prefix: shelfwatch, username: null, password: null}
cameras:
  - id: aisle3
    source: /dev/video0
    fps: 2
    zones: [{id: shelf-a, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}]
model: {bundle: null, engine: auto, trusted_keys: []}
events: {on_threshold: 0.6, off_threshold: 0.4, min_frames: 3}
trainer: {url: null, token: null}
"""


def test_documented_example_is_valid() -> None:
    cfg = parse_yaml_config(DOC_EXAMPLE, EdgeConfig)
    assert cfg.cameras[0].zones[0].bbox() == (0, 0, 1, 1)
    assert cfg.events.min_frames == 3
    assert cfg.mqtt.topic_prefix == "shelfwatch"


def test_errors_carry_line_numbers() -> None:
    bad = DOC_EXAMPLE.replace("fps: 2", "fps: -1").replace("port: 1883", "port: 1883, colour: red")
    with pytest.raises(ConfigError) as info:
        parse_yaml_config(bad, EdgeConfig, source="edge.yaml")
    text = str(info.value)
    assert "edge.yaml:8: cameras.0.fps" in text
    assert "edge.yaml:4: mqtt.colour" in text


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("events: {on_threshold: 0.3, off_threshold: 0.4}", "off_threshold must be below"),
        ("device_id: 'Shelf 01'", "device_id"),
        ("cameras: [{id: a, source: 0}, {id: a, source: 1}]", "used twice"),
        ("cameras: [{id: a, source: 0, zones: [{id: z, polygon: [[0, 0], [2, 0], [1, 1]]}]}]", "outside"),
        ("mqtt: {topic_prefix: 'a/#'}", "topic"),
        ("- just a list", "mapping"),
        ("web: {port: [unclosed", "invalid YAML"),
    ],
)
def test_bad_values_are_refused(snippet: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_yaml_config(snippet, EdgeConfig)


def test_secret_from_env_and_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SW_TEST_PASS", "hunter2")
    cfg = parse_yaml_config("mqtt: {password: '${SW_TEST_PASS}'}", EdgeConfig)
    assert cfg.mqtt.password is not None
    assert cfg.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(cfg)

    (tmp_path / "trainer_token").write_text("tok-123\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cfg = parse_yaml_config("trainer: {token: '${trainer_token}'}", EdgeConfig)
    assert cfg.trainer.token is not None
    assert cfg.trainer.token.get_secret_value() == "tok-123"

    with pytest.raises(ConfigError, match="MISSING_THING"):
        parse_yaml_config("trainer: {token: '${MISSING_THING}'}", EdgeConfig)


def test_trainer_config_defaults_and_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINER_TOKEN", "abc")
    cfg = parse_yaml_config("server: {tokens: ['${TRAINER_TOKEN}']}", TrainerConfig)
    assert [t.get_secret_value() for t in cfg.server.tokens] == ["abc"]
    with pytest.raises(ConfigError, match=r"training\.backbone"):
        parse_yaml_config("training: {backbone: resnet9000}", TrainerConfig)


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "edge.yaml"
    good.write_text(DOC_EXAMPLE)
    assert main(["config", "validate", str(good)]) == 0
    bad = tmp_path / "edge-bad.yaml"
    bad.write_text(DOC_EXAMPLE.replace("port: 8080", "port: 99999"))
    assert main(["config", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: web.port" in err
    assert load_yaml_config(good, EdgeConfig).device_id == "shelf-01"


def test_cli_validates_trainer_yaml_registered_by_the_trainer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """trainer.yaml is a kind the trainer's entry point adds (edge never imports trainer); guessed from the name."""
    good = tmp_path / "trainer.yaml"
    good.write_text("server: {port: 8700}\ntraining: {backbone: mobilenet_v3_small}\n")
    assert main(["config", "validate", "--json", str(good)]) == 0
    assert '"kind":"trainer"' in capsys.readouterr().out
    bad = tmp_path / "trainer-bad.yaml"
    bad.write_text("server: {port: 8700}\ntraining: {backbone: resnet9000}\n")
    assert main(["config", "validate", str(bad)]) == 1
    assert f"{bad}:2: training.backbone" in capsys.readouterr().err
    assert main(["config", "schema", "--kind", "trainer"]) == 0
    assert '"TrainingDefaults"' in capsys.readouterr().out


def test_schema_offers_plain_sources_and_engines_beside_their_mapping_forms(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["config", "schema"]) == 0
    defs = json.loads(capsys.readouterr().out)["$defs"]
    source = defs["CameraConfig"]["properties"]["source"]["anyOf"]
    assert {"type": "string"} in source and {"type": "integer"} in source
    assert set(source[2]["discriminator"]["mapping"]) == {"synthetic", "stream", "v4l2", "file"}
    engine = defs["ModelConfig"]["properties"]["engine"]["anyOf"]
    assert {"type": "string"} in engine
    assert defs["OpenVinoSettings"]["properties"]["precision"]["anyOf"][0]["enum"] == ["fp32", "fp16", "bf16"]


def test_config_doc_lists_every_field() -> None:
    """docs/CONFIG.md's tables are generated from the models; a new field without regenerating fails here."""
    import importlib.util

    repo = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("gen_config_doc", repo / "docs" / "gen_config_doc.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.tables() in (repo / "docs" / "CONFIG.md").read_text(), "run: python docs/gen_config_doc.py"
