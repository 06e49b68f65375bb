"""The trainer's subcommands of `shelfwatch` (train, evaluate, trainer serve).

Registered through the `shelfwatch.commands` entry point. Registration imports nothing heavy; torch is imported
only when a command runs, and a device without it gets a clear message.
"""

from __future__ import annotations

from typing import Any

TRAINER_COMMAND_MODULES: list[str] = [
    "trainer.commands.train_cmd",
    "trainer.commands.evaluate_cmd",
    "trainer.commands.serve_cmd",
]


def register(sub: Any) -> None:
    """Add the trainer's commands to the `shelfwatch` parser, and trainer.yaml to `shelfwatch config`."""
    import importlib

    from edge.config.kinds import register_config_kind
    from trainer.config import TrainerConfig  # pydantic only: no torch

    register_config_kind("trainer", TrainerConfig)
    for name in TRAINER_COMMAND_MODULES:
        importlib.import_module(name).register(sub)
