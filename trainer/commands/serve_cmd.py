"""`shelfwatch trainer serve -c trainer.yaml`: the training service's REST API (docs/TRAINER_API.md)."""

from __future__ import annotations

import argparse
from typing import Any

from edge.commands import command_group


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the config and serve until stopped."""
    from edge.config import load_yaml_config
    from edge.errors import ConfigError
    from trainer.config import TrainerConfig
    from trainer.service.server import serve

    config = load_yaml_config(args.config, TrainerConfig)
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a TCP port (0-65535; 0 picks a free one)")
    serve(config, runner=args.runner, host=args.host, port=args.port)
    return 0


def register(sub: Any) -> None:
    """Add `shelfwatch trainer serve`."""
    trainer_sub = command_group(sub, "trainer", "The training service.", metavar="COMMAND")
    serve = trainer_sub.add_parser("serve", help="Serve the trainer REST API (datasets, jobs, bundles).")
    serve.add_argument("-c", "--config", required=True, help="trainer.yaml")
    serve.add_argument("--host", default=None, help="Override server.host.")
    serve.add_argument("--port", type=int, default=None, help="Override server.port (0 picks a free port).")
    serve.add_argument(
        "--runner",
        default=None,
        help=argparse.SUPPRESS,  # module:function replacing trainer.pipeline:run_training (tests, extensions)
    )
    serve.set_defaults(func=cmd_serve)
    from trainer.commands import worker_cmd

    worker_cmd.register(trainer_sub)
