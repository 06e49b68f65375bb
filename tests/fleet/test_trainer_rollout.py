"""From training to the fleet: the real trainer service (`shelfwatch trainer serve`, tiny job runner) trains a
job; `shelfwatch fleet rollout --trainer URL --job ID` announces its bundle to a group, and a real device side
fetches it from the trainer with its trainer token (as `trainer.url`/`trainer.token` in edge.yaml arrange),
verifies it with the trainer's public key and activates it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.comms.mqtt import MqttCommunicator
from edge.comms.outbox import Outbox
from edge.config.model import MqttConfig
from edge.fleet.device import FleetFollower
from edge.model_repository import ModelRepository
from tests.fleet.test_device import REPO, _until
from tests.helpers.broker import Broker
from tests.trainer.helpers import coloured_dataset
from tests.trainer.service.conftest import TOKEN, zip_folder
from tests.trainer.service.test_restart import Service, write_config


def test_rollout_of_a_trainer_job_reaches_a_device(tmp_path: Path, broker: Broker) -> None:
    coloured_dataset(tmp_path / "colours", per_label=12)
    colour_zip = zip_folder(tmp_path / "colours")
    trainer = Service(write_config(tmp_path))
    try:
        dataset = trainer.call("POST", "/v1/datasets", colour_zip, "application/zip")["id"]
        job = trainer.call("POST", "/v1/jobs", json.dumps({"dataset": dataset, "task": "classification"}).encode())
        done = trainer.wait(job["id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
        assert done["state"] == "succeeded", done
        public_key = trainer.call("GET", "/v1/signing-key")["public_key"]
        signing_key = tmp_path / "trainer" / "bundles" / "keys" / "bundle-signing.key"

        models = ModelRepository(tmp_path / "device" / "models", [public_key])
        comms = MqttCommunicator(
            MqttConfig(host="127.0.0.1", port=broker.port, discovery=False), "shelf-01", Outbox(tmp_path / "o.db")
        ).start()
        follower = FleetFollower(
            comms, models, device_id="shelf-01", group="north", trusted_keys=[public_key],
            work_dir=tmp_path / "device" / "fleet",
            headers_for=lambda url: {"Authorization": f"Bearer {TOKEN}"} if url.startswith(trainer.url) else {},
        ).start()  # fmt: skip
        try:
            _until(lambda: follower.last is not None)
            time.sleep(0.5)  # its first report reaches the broker before the controller reads the group
            out = subprocess.run(
                [
                    sys.executable, "-m", "edge", "fleet", "rollout", "--group", "north", "--broker",
                    f"127.0.0.1:{broker.port}", "--trainer", trainer.url, "--job", job["id"],
                    "--signing-key", str(signing_key), "--json",
                ],
                cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "TRAINER_TOKEN": TOKEN},
            )  # fmt: skip
            assert out.returncode == 0, out.stderr[-2000:]
            result = json.loads(out.stdout.strip().splitlines()[-1])
            assert result["outcome"] == "completed" and result["canaries"] == ["shelf-01"], result
            manifest = models.active()
            assert manifest is not None and manifest.labels == ["blue", "green", "red"]
            assert follower.last is not None and follower.last.state == "active"
            assert follower.last.version == manifest.version == result["version"]
        finally:
            follower.stop()
            comms.stop(flush_timeout=1)
    finally:
        trainer.proc.send_signal(signal.SIGTERM)
        trainer.proc.wait(timeout=30)
