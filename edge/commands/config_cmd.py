"""`shelfwatch config validate|show|schema`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import BaseModel

from edge.commands import command_group
from edge.config import dump_yaml_config, load_yaml_config
from edge.config.kinds import CONFIG_KINDS, guess_kind
from edge.errors import ConfigError


def _model_for(kind: str) -> type[BaseModel]:
    return CONFIG_KINDS[kind]


def _guess_kind(path: str, kind: str | None) -> str:
    return kind or guess_kind(path)


def cmd_validate(args: argparse.Namespace) -> int:
    kind = _guess_kind(args.file, args.kind)
    try:
        cfg = load_yaml_config(args.file, _model_for(kind))
    except ConfigError as err:
        for line in str(err).splitlines():
            sys.stderr.write(f"{line}\n")
        if args.json:
            from edge.cli import print_json

            print_json({"valid": False, "file": args.file, "kind": kind, "errors": str(err).splitlines()})
        return 1
    warnings = _warnings(kind, cfg, args.file)
    for w in warnings:
        sys.stderr.write(f"{w}\n")
    if args.json:
        from edge.cli import print_json

        print_json({"valid": True, "file": args.file, "kind": kind, "warnings": warnings})
    else:
        print(f"{args.file}: valid {kind} config")
    del cfg
    return 0


def _warnings(kind: str, cfg: Any, path: str) -> list[str]:
    """What is valid but worth saying (an edge config's skills naming projects the store lacks)."""
    if kind != "edge":
        return []
    from pathlib import Path

    from edge.skills.check import project_warnings

    return project_warnings(cfg, Path(path).read_text(encoding="utf-8"), path)


def cmd_show(args: argparse.Namespace) -> int:
    kind = _guess_kind(args.file, args.kind)
    cfg = load_yaml_config(args.file, _model_for(kind))
    sys.stdout.write(dump_yaml_config(cfg))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(_model_for(args.kind).model_json_schema(), indent=2))
    return 0


def register(sub: Any) -> None:
    """Add `shelfwatch config`; `--kind` accepts every kind registered by the time the command line is parsed."""
    csub = command_group(sub, "config", "validate and inspect configuration files")
    v = csub.add_parser("validate", help="check a config file; errors carry YAML line numbers")
    v.add_argument("file")
    v.add_argument("--kind", choices=CONFIG_KINDS, help="default: guessed from the file name")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_validate)
    s = csub.add_parser("show", help="print the effective config (defaults filled in, secrets masked)")
    s.add_argument("file")
    s.add_argument("--kind", choices=CONFIG_KINDS)
    s.set_defaults(func=cmd_show)
    j = csub.add_parser("schema", help="print the JSON schema of a config file")
    j.add_argument("--kind", choices=CONFIG_KINDS, default="edge")
    j.set_defaults(func=cmd_schema)
