"""Subcommands of the `shelfwatch` command line (each module exposes `register(subparsers)`)."""

from __future__ import annotations

from typing import Any


def command_group(sub: Any, name: str, help: str, metavar: str = "ACTION") -> Any:
    """Add `shelfwatch <name> <sub-command>` (a sub-command is required, parsed into `<name>_command`); returns
    the sub-parsers to add the sub-commands to."""
    parser = sub.add_parser(name, help=help)
    group = parser.add_subparsers(dest=f"{name}_command", metavar=metavar)
    group.required = True
    return group
