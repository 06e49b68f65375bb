"""`shelfwatch trainer worker -c trainer.yaml`: a Celery worker running training jobs (docs/TRAINER_API.md)."""

from __future__ import annotations

import argparse
import logging
from typing import Any


def cmd_worker(args: argparse.Namespace) -> int:
    """Load the config and run one worker (one job at a time) until stopped."""
    from edge.config import load_yaml_config
    from trainer.commands._common import require_torch
    from trainer.config import TrainerConfig
    from trainer.queue.celery_queue import run_worker

    config = load_yaml_config(args.config, TrainerConfig)
    if args.runner is None:
        require_torch()
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    run_worker(config, runner=args.runner, name=args.name)
    return 0


def register(trainer_sub: Any) -> None:
    """Add `shelfwatch trainer worker` under `shelfwatch trainer`."""
    worker = trainer_sub.add_parser("worker", help="Run a Celery worker for training jobs (queue: kind: celery).")
    worker.add_argument("-c", "--config", required=True, help="trainer.yaml (same data_dir/store as the API)")
    worker.add_argument("--name", default=None, help="Worker node name (default trainer-<pid>@<host>).")
    worker.add_argument("--runner", default=None, help=argparse.SUPPRESS)  # tests inject a job runner
    worker.set_defaults(func=cmd_worker)
