"""The configuration files `shelfwatch config` knows: `edge` (edge.yaml) here, others registered by their package.

The trainer adds `trainer` (trainer.yaml) from its `shelfwatch.commands` entry point, so the device's code never
imports the trainer's.
"""

from __future__ import annotations

from pydantic import BaseModel

from edge.config.model import EdgeConfig

CONFIG_KINDS: dict[str, type[BaseModel]] = {"edge": EdgeConfig}


def register_config_kind(name: str, model: type[BaseModel]) -> None:
    """Make `--kind NAME` validate, show and print the schema of `model`; a file named like `NAME*.yaml` is guessed."""
    CONFIG_KINDS[name] = model


def guess_kind(path: str) -> str:
    """The kind a config file's name suggests (`trainer.yaml` -> trainer when registered), else `edge`."""
    file_name = path.rsplit("/", 1)[-1]
    return next((kind for kind in CONFIG_KINDS if kind != "edge" and kind in file_name), "edge")
