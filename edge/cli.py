"""The `shelfwatch` command line: one console script, subcommands contributed by command modules.

Each module in COMMAND_MODULES (and each `shelfwatch.commands` entry point, which is how the trainer adds its
commands without the edge package importing it) exposes `register(subparsers)`. Registration must stay cheap:
heavy imports (cv2, onnxruntime, torch) happen inside the command functions.

Output conventions: a `--json` command prints one JSON object as the last line of stdout; errors go to stderr
with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from edge import __version__
from edge.errors import ShelfwatchError

log = logging.getLogger(__name__)

COMMAND_MODULES = [
    "edge.commands.config_cmd",
    "edge.commands.demo_cmd",
    "edge.commands.bundle_cmd",
    "edge.commands.dataset_cmd",
    "edge.commands.projects_cmd",
    "edge.commands.users_cmd",
    "edge.commands.run_cmd",
    "edge.commands.bench_cmd",
    "edge.commands.edge_cmd",
    "edge.commands.fleet_cmd",
]


def print_json(obj: Any) -> None:
    """Print one JSON object on the last line of stdout (the --json convention)."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def print_result(args: argparse.Namespace, obj: Any, text: str) -> None:
    """The command's result: one JSON line with --json (`args.json`), else the text for a person."""
    if getattr(args, "json", False):
        print_json(obj)
    else:
        print(text)


def setup_logging(level: str = "info") -> None:
    """One logging setup for every command; noisy libraries are muted here and nowhere else."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("werkzeug", "PIL", "urllib3", "amqtt", "transitions", "passlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="shelfwatch", description="Shelfwatch edge vision appliance.")
    parser.add_argument("--version", action="version", version=f"shelfwatch {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for ep in entry_points(group="shelfwatch.commands"):
        try:
            ep.load()(sub)
        except ImportError as err:  # an optional part that is not installed: say so, keep the rest working
            log.debug("command plugin %s not available: %s", ep.name, err)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of `python -m edge`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        rc = args.func(args)
    except ShelfwatchError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return int(rc or 0)
