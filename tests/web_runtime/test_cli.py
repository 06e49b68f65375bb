"""`shelfwatch edge train|models` as a user runs them: a subprocess against the real trainer service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edge.config import DatasetRulesConfig
from edge.store import DatasetStore
from tests.web_runtime.conftest import TOKEN, Trainer, fill_store


def shelfwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120, check=False
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> dict:
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_edge_train_wait_then_models_commands(tmp_path: Path, tiny_trainer: Trainer) -> None:
    data_dir = tmp_path / "device"
    store = DatasetStore(data_dir, DatasetRulesConfig())
    fill_store(store)
    store.close()
    key = tiny_trainer.public_key()
    common = ["--data-dir", str(data_dir), "--trusted-key", key]

    started = shelfwatch(
        "edge", "train", *common, "--trainer-url", tiny_trainer.url, "--token", TOKEN, "--epochs", "2", "--json"
    )
    assert started.returncode == 0, started.stderr
    job = last_json(started)
    assert job["task"] == "classification" and job["job"].startswith("job-")

    done = shelfwatch(
        "edge", "train", *common, "--trainer-url", tiny_trainer.url, "--token", TOKEN,
        "--epochs", "2", "--wait", "--poll-seconds", "0.2", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = last_json(done)
    assert run["state"] == "installed" and run["activated"] is False and run["version"]
    assert run["report"] is not None

    listing = shelfwatch("edge", "models", "list", *common, "--json")
    assert listing.returncode == 0, listing.stderr
    assert [row["version"] for row in last_json(listing)["items"]] == [run["version"]]
    assert last_json(listing)["active"] is None

    activated = shelfwatch("edge", "models", "activate", run["version"], *common, "--json")
    assert activated.returncode == 0, activated.stderr
    assert last_json(activated)["active"] == run["version"]

    rollback = shelfwatch("edge", "models", "rollback", *common)
    assert rollback.returncode == 1 and "no previous model version" in rollback.stderr


def test_edge_train_refuses_with_clear_errors(tmp_path: Path, tiny_trainer: Trainer) -> None:
    data_dir = tmp_path / "device"
    store = DatasetStore(data_dir, DatasetRulesConfig())
    fill_store(store, per_label=2)
    store.close()
    not_ready = shelfwatch("edge", "train", "--data-dir", str(data_dir), "--trainer-url", tiny_trainer.url)
    assert not_ready.returncode == 1 and "not ready" in not_ready.stderr
    no_trainer = shelfwatch("edge", "train", "--data-dir", str(data_dir))
    assert no_trainer.returncode == 1 and "trainer.url" in no_trainer.stderr
    missing = shelfwatch("edge", "models", "list", "--data-dir", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not (tmp_path / "nope").exists()
