"""`shelfwatch fleet simulate` against a real Mosquitto: small N, every device connected, no event lost,
latencies reported; `--rollout` brings every device to a real signed bundle after a canary stage, and a tampered
bundle makes the canaries fail and halts the rollout with the other devices untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.fleet.conftest import PackedBundle
from tests.helpers.broker import Broker

REPO = Path(__file__).resolve().parents[2]


def _simulate(broker: Broker, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "edge", "fleet", "simulate", "--broker", f"127.0.0.1:{broker.port}", "--json", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_simulated_devices_connect_and_lose_no_event(broker: Broker) -> None:
    result = _simulate(broker, "--devices", "30", "--seconds", "4", "--event-interval", "0.5")
    assert result["connected"] == 30
    assert result["events_sent"] > 100  # 30 devices, one event per 0.5 s each on average, for 4 s
    assert result["lost"] == 0 and result["events_received"] == result["events_sent"]
    assert result["latency_p50_ms"] is not None and result["latency_p95_ms"] >= result["latency_p50_ms"]


def test_rollout_reaches_every_device_after_the_canaries(broker: Broker, bundle_v2: PackedBundle) -> None:
    result = _simulate(
        broker,
        *("--devices", "40", "--seconds", "2", "--rollout", "--bundle", str(bundle_v2.archive)),
        *("--signing-key", str(bundle_v2.signing_key), "--canary-share", "0.05"),
    )
    rollout = result["rollout"]
    assert rollout["outcome"] == "completed", rollout
    assert rollout["canaries"] == 2  # 5% of 40
    assert rollout["on_new_version"] == 40 and rollout["failed"] == 0
    assert rollout["seconds_to_all"] >= rollout["canary_seconds"] > 0
    assert result["lost"] == 0


def test_tampered_bundle_fails_the_canaries_and_halts(broker: Broker, bundle_v2: PackedBundle) -> None:
    result = _simulate(
        broker,
        *("--devices", "40", "--seconds", "1", "--rollout", "--tampered", "--bundle", str(bundle_v2.archive)),
        *("--signing-key", str(bundle_v2.signing_key), "--canary-share", "0.1"),
    )
    rollout = result["rollout"]
    assert rollout["outcome"] == "halted" and 1 <= rollout["failed"] <= 4, rollout  # the first failure halts
    assert rollout["canaries"] == 4
    assert rollout["on_new_version"] == 0
    assert rollout["others_untouched"] == 36  # no non-canary was even asked to switch
    assert any("sha256" in r for r in rollout["failed_reasons"]), rollout
