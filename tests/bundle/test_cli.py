"""`shelfwatch keys generate` and `shelfwatch bundle verify|pack|inspect`: exit codes, messages, JSON."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edge.bundle import ONNX_FILE, verify_bundle
from edge.cli import main
from tests.helpers.tiny_bundle import TinyBundle, make_classification_bundle


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    return make_classification_bundle(tmp_path_factory.mktemp("cli"), openvino=False)


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_keys_generate_writes_private_0600_and_refuses_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "keys"
    assert main(["keys", "generate", "--out", str(out), "--json"]) == 0
    doc = last_json(capsys.readouterr().out)
    private = Path(doc["private_key"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert Path(doc["public_key"]).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = private.read_bytes()
    assert main(["keys", "generate", "--out", str(out)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert private.read_bytes() == before


def test_verify_ok_and_json(signed: TinyBundle, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "verify", str(signed.bundle_dir), "--key", str(signed.public_key), "--json"]) == 0
    doc = last_json(capsys.readouterr().out)
    assert doc["valid"] is True
    assert doc["version"] == "tiny-cls-1"


def test_verify_tampered_exits_1_with_reason(
    signed: TinyBundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = Path(shutil.copytree(signed.bundle_dir, tmp_path / "bad"))
    (bad / ONNX_FILE).write_bytes((bad / ONNX_FILE).read_bytes() + b"\0")
    assert main(["bundle", "verify", str(bad), "--key", str(signed.public_key)]) == 1
    assert "file model.onnx: size" in capsys.readouterr().err
    assert main(["bundle", "verify", str(bad), "--key", str(signed.public_key), "--json"]) == 1
    doc = last_json(capsys.readouterr().out)
    assert doc["valid"] is False and "model.onnx" in doc["reason"]


def test_verify_without_key(signed: TinyBundle, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "verify", str(signed.bundle_dir)]) == 1
    assert "no trusted keys configured" in capsys.readouterr().err


def test_pack_then_inspect(signed: TinyBundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "out.tar.gz"
    key = str(signed.public_key)
    assert main(["bundle", "pack", str(signed.bundle_dir), str(archive), "--key", key, "--json"]) == 0
    assert last_json(capsys.readouterr().out)["archive"] == str(archive)
    assert verify_bundle(archive, [key]).version == "tiny-cls-1"
    assert main(["bundle", "inspect", str(archive), "--json"]) == 0
    doc = last_json(capsys.readouterr().out)
    assert doc["manifest"]["labels"] == ["red", "green"] and doc["verified"] is None
    assert main(["bundle", "inspect", str(archive), "--key", key, "--json"]) == 0
    assert last_json(capsys.readouterr().out)["verified"] is True


def test_inspect_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "inspect", str(tmp_path / "nope"), "--json"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_console_script_exit_code(signed: TinyBundle, tmp_path: Path) -> None:
    """The real console entry point (python -m edge) exits 1 and names the reason on stderr."""
    other_pub = make_classification_bundle(tmp_path, openvino=False, version="other").public_key
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "bundle", "verify", str(signed.bundle_dir), "--key", str(other_pub)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "signature does not verify against any trusted key" in proc.stderr
