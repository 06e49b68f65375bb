"""`shelfwatch run -c edge.yaml`: the device agent in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


def cmd_run(args: argparse.Namespace) -> int:
    from edge.agent import Agent, AgentOptions
    from edge.config import load_yaml_config
    from edge.config.model import EdgeConfig

    config = load_yaml_config(args.config, EdgeConfig)
    if args.log_level == "info":  # the command line's default: let edge.yaml's log_level decide
        logging.getLogger().setLevel(getattr(logging, config.log_level.upper(), logging.INFO))
    options = AgentOptions(web=not args.no_web, stats_interval=args.stats_interval)
    agent = Agent(config, options)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.start()
        while not stop.wait(1.0):
            pass
    finally:
        agent.stop()  # also after a failed start: release cameras, say offline, keep the outbox
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the device agent (cameras, inference, MQTT, web) until stopped")
    p.add_argument("-c", "--config", required=True, help="edge.yaml")
    p.add_argument("--no-web", action="store_true", help="do not start the web studio")
    p.add_argument("--stats-interval", type=float, default=10.0, help="seconds between MQTT stats messages")
    p.set_defaults(func=cmd_run)
