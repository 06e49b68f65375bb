"""The issue's example end to end: `shelfwatch run` as a process on a folder camera of real shelf photos, a real
Mosquitto with mosquitto_sub, and a real local HTTP receiver for the webhook.

The models are trained by the project's trainer (`shelfwatch train`) with the smallest settings that still tell real
photos apart, once per test session: `shelf-gaps` a detector on 30 empty_shelf files (10 photos x 3 copies; the
default EfficientNet-Lite0 with its installed weights, 8 epochs at 192 px: a SqueezeNet one at 128 px found empty
shelf in nearly every photo on some machines), `products` a classifier of two grocery5 fruits (SqueezeNet 1.1 from
the shared ImageNet weights, 2 epochs at 64 px).
The camera then shows real empty_shelf photos (never trained on) that this detector finds much empty shelf in
(coverage >= 0.3 at the example's min_score 0.3) and ones it finds none in, in turn.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest
import yaml

from edge.pipeline.zone_scoring import Zone
from edge.skills.geometry import coverage
from tests.agent.test_restart import query
from tests.helpers.broker import free_port, persistent_broker
from tests.helpers.mqtt_sub import MqttSubscriber
from tests.helpers.toggling import PeriodicToggler
from tests.helpers.waiting import wait_until
from tests.helpers.webhook_receiver import WebhookReceiver
from tests.skills.conftest import EMPTY_SHELF, EXAMPLE, install_projects

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
FRUIT = SHARED / "datasets" / "grocery5" / "train" / "Fruit"
WEIGHTS = SHARED / "weights" / "squeezenet1_1_torchvision" / "squeezenet1_1_imagenet_norm_fp32.npz"
TRAIN_IMAGES = 30  # empty_shelf train files (10 photos x 3 augmented copies) the detector learns from
SECRET = "hook-s3cret"
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Trained:
    """The example's two projects as `shelfwatch train` made them, and the photos the camera shows."""

    detector: Path
    classifier: Path
    public_key: Path
    gap: list[Path]  # photos the detector finds empty shelf covering >= 0.3 of the frame in
    stocked: list[Path]  # photos it finds no empty shelf in


def shelfwatch_train(*args: str | Path | int, squeezenet: bool = True) -> dict:
    """One `shelfwatch train` run (hold-out, no INT8; SqueezeNet 1.1 from the shared weights, else the default
    backbone with its installed weights); its JSON line."""
    cmd = [sys.executable, "-m", "trainer", "train", *map(str, args)]
    if squeezenet:
        cmd += ["--backbone", "squeezenet1_1", "--weights", str(WEIGHTS)]
    cmd += ["--evaluation", "holdout", "--threads", "2", "--seed", "0"]
    cmd += ["--no-int8", "--no-progress", "--json"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def found_coverage(model: object, photo: Path) -> float:
    """The share of the frame the detector's boxes of at least the example's min_score (0.3) cover."""
    boxes = model.predict(cv2.imread(str(photo)), score_threshold=0.3)  # type: ignore[attr-defined]
    whole = Zone("frame", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)), ())
    return coverage(whole, [tuple(b.bbox) for b in boxes if b.label == "empty_shelf"])


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    for need in (EMPTY_SHELF, FRUIT / "Banana", FRUIT / "Lemon", WEIGHTS):
        if not need.exists():
            pytest.skip(f"{need} not found (../shared is absent): the example's models are trained from it")
    root = tmp_path_factory.mktemp("trained")
    shelf = root / "shelf"
    (shelf / "train" / "images").mkdir(parents=True)
    (shelf / "train" / "labels").mkdir()
    shutil.copyfile(EMPTY_SHELF.parent.parent / "data.yaml", shelf / "data.yaml")
    photos = sorted(EMPTY_SHELF.glob("*.jpg"))
    for photo in photos[:TRAIN_IMAGES]:
        shutil.copyfile(photo, shelf / "train" / "images" / photo.name)
        label = EMPTY_SHELF.parent / "labels" / f"{photo.stem}.txt"
        shutil.copyfile(label, shelf / "train" / "labels" / label.name)
    products = root / "products"
    for fruit in ("Banana", "Lemon"):
        (products / fruit.lower()).mkdir(parents=True)
        for photo in sorted((FRUIT / fruit).glob("*.jpg"))[:8]:
            shutil.copyfile(photo, products / fruit.lower() / photo.name)
    bundles = root / "bundles"  # both signed with bundles/keys (the trainer's key beside --out)
    shelfwatch_train("--data", shelf, "--format", "yolo", "--task", "detection", "--out", bundles / "shelf-gaps",
                     "--name", "shelf-gaps", "--epochs", 8, "--input-size", 192, "--min-per-label", 2,
                     squeezenet=False)  # fmt: skip
    shelfwatch_train("--data", products, "--format", "folders", "--task", "classification", "--out",
                     bundles / "products", "--name", "products", "--epochs", 2, "--input-size", 64,
                     "--min-per-label", 5)  # fmt: skip
    from edge.runtime.wrappers import load_model

    detector = load_model(bundles / "shelf-gaps", "onnxruntime", 1)
    unseen = photos[TRAIN_IMAGES::3]  # other photos than the trained ones (their copies are adjacent)
    ranked = sorted(unseen, key=lambda p: found_coverage(detector, p))
    gap = [p for p in ranked[::-1] if found_coverage(detector, p) >= 0.3][:3]
    stocked = [p for p in ranked if found_coverage(detector, p) <= 0.05][:3]
    assert gap and stocked, "the trained detector tells no shelf photos apart"
    return Trained(bundles / "shelf-gaps", bundles / "products", bundles / "keys" / "bundle-signing.pub", gap, stocked)


class PhotoToggler(PeriodicToggler):
    """Shows real gap photos and real stocked photos in turn, `period` seconds each, in the camera folder."""

    def __init__(self, folder: Path, trained: Trained, period: float = 3.0) -> None:
        super().__init__(period)
        self.folder, self.trained = folder, trained

    def show(self, photo: Path) -> None:
        tmp = self.folder.parent / "next.jpg"
        shutil.copyfile(photo, tmp)
        os.replace(tmp, self.folder / "shelf.jpg")

    def step(self, n: int) -> None:
        group = self.trained.gap if n % 2 == 0 else self.trained.stocked
        self.show(group[(n // 2) % len(group)])


def spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HOOK_SECRET": SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "-c", str(config), "--no-web"],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_the_example_runs_end_to_end_and_loses_nothing(tmp_path: Path, trained: Trained) -> None:
    data = tmp_path / "data"
    install_projects(data, trained.detector, trained.classifier, trained.public_key)
    folder = tmp_path / "frames"
    folder.mkdir()
    hook_port, mqtt_port = free_port(), free_port()
    raw = yaml.safe_load(
        EXAMPLE.replace("/srv/frames", str(folder)).replace("127.0.0.1:9000", f"127.0.0.1:{hook_port}")
    )
    # The example as written (its hysteresis keys `on`/`off` are YAML booleans: the text goes in unchanged).
    config = tmp_path / "edge.yaml"
    config.write_text(
        EXAMPLE.replace("/srv/frames", str(folder)).replace("127.0.0.1:9000", f"127.0.0.1:{hook_port}")
        + yaml.safe_dump(
            {
                "device_id": "dev1",
                "data_dir": str(data),
                "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "keepalive": 5},
                "model": {"engine": "onnxruntime", "threads": 1, "trusted_keys": [str(trained.public_key)]},
            }
        )
    )
    assert raw["cameras"][0]["skills"][0]["blocks"][2] == {
        "id": "low", "type": "hysteresis", "input": "cov", True: 0.2, False: 0.1, "min_frames": 2,
    }  # fmt: skip
    log = tmp_path / "agent.log"
    receiver = WebhookReceiver(hook_port).start()
    # The broker is stopped and started below while events flow: a persistent one and session keep what it had
    # acknowledged, or queued for the subscriber, in its last moments (the agent forgets an event once acknowledged).
    broker = persistent_broker(tmp_path / "broker", port=mqtt_port).start()
    sub = MqttSubscriber(
        mqtt_port, ["shelfwatch/dev1/#", "homeassistant/#"], client_id="e2e-sub", persistent=True
    ).start()
    webhook_db = data / "webhooks" / "aisle3.gaps.hook.db"

    def events(kind: str | None = None) -> list[dict]:
        out = [m.json() for m in sub.messages("shelfwatch/dev1/events")]
        return [e for e in out if kind is None or e["type"] == kind]

    def hook_ids() -> list[str]:
        return [json.loads(d.body)["id"] for d in receiver.received()]

    def tail() -> str:
        return log.read_text()[-4000:]

    proc = spawn(config, log)
    try:
        with PhotoToggler(folder, trained):
            # 1. low_stock (start and end) and product_gap arrive over MQTT, with their traces.
            assert wait_until(
                lambda: {e["phase"] for e in events("low_stock")} >= {"start", "end"} and bool(events("product_gap")),
                timeout=60,
            ), tail()
            start = next(e for e in events("low_stock") if e["phase"] == "start")
            assert start["skill"] == "gaps" and start["camera"] == "aisle3" and start["zone"] == "shelf-a"
            assert [(t["block"], t["type"]) for t in start["trace"]] == [
                ("det", "detect"), ("cov", "coverage"), ("low", "hysteresis"),
            ]  # fmt: skip
            assert start["trace"][0]["output"][0]["label"] == "empty_shelf"
            assert start["trace"][1]["output"][0]["value"] >= 0.2
            gap = events("product_gap")[0]
            assert gap["skill"] == "which" and gap["phase"] == "once" and gap["score"] >= 0.5
            assert [t["block"] for t in gap["trace"]] == ["det", "kind", "rule", "cool"]
            assert wait_until(lambda: len(hook_ids()) >= 2, timeout=30), tail()

            # 2. The receiver is away for 20 s; afterwards every webhook arrives, in order, once, signed.
            receiver.stop()
            stopped_at = len(events("low_stock"))
            time.sleep(20)
            queued_while_away = len(events("low_stock")) - stopped_at
            assert queued_while_away >= 2, tail()
            receiver.start()
            assert wait_until(lambda: set(e["id"] for e in events("low_stock")) <= set(hook_ids()), timeout=90), tail()

            # 3. Broker and receiver away, the agent SIGKILLed with events in both outboxes.
            receiver.stop()
            broker.stop()
            before = len(query(data / "events.db", "SELECT id FROM events"))
            assert wait_until(lambda: len(query(data / "events.db", "SELECT id FROM events")) >= before + 3, 60)
            assert wait_until(lambda: query(webhook_db, "SELECT COUNT(*) FROM outbox")[0][0] >= 2, 30), tail()
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        logged = query(data / "events.db", "SELECT id, payload FROM events ORDER BY seq")
        low_ids = [i for i, p in logged if json.loads(p)["type"] == "low_stock"]
        assert query(data / "outbox.db", "SELECT COUNT(*) FROM outbox")[0][0] >= 1
        assert query(webhook_db, "SELECT COUNT(*) FROM outbox")[0][0] >= 1

        broker.start()
        receiver.start()
        proc = spawn(config, log)
        assert wait_until(lambda: set(low_ids) <= set(hook_ids()), timeout=90), tail()
        assert wait_until(lambda: {i for i, _ in logged} <= {e["id"] for e in events()}, timeout=60), tail()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.stop()
        broker.stop()
        receiver.stop()

    deliveries = receiver.received()
    ids = hook_ids()
    assert len(ids) == len(set(ids)), "a webhook arrived twice"
    assert ids == low_ids[: len(ids)] and set(low_ids) <= set(ids)  # in order, every one, same ids
    for d in deliveries:
        expected = "sha256=" + hmac.new(SECRET.encode(), d.body, hashlib.sha256).hexdigest()
        assert d.headers["X-Shelfwatch-Signature"] == expected
        assert d.headers["Content-Type"] == "application/json" and d.path == "/hook"
    assert sub.messages("shelfwatch/dev1/aisle3/shelf-a/state") == []  # the skills replace today's zone states
    assert [m.topic for m in sub.messages() if m.topic.startswith("homeassistant/") and m.payload] == []
    mqtt_low = [e["id"] for e in events("low_stock")]
    assert set(mqtt_low) >= set(low_ids)
    for d in deliveries:  # the webhook body is the event JSON that went over MQTT
        assert json.loads(d.body) in events()
