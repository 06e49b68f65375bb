"""Helpers shared by the trainer's commands: the torch check, zones files and the terminal progress bar."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

from edge.errors import validation_message
from trainer.errors import TrainingError

if TYPE_CHECKING:
    from edge.config.model import ZoneConfig
    from trainer.pipeline import Progress


def require_torch() -> None:
    """Refuse clearly on a machine without the trainer's dependencies (a device)."""
    try:
        import torch  # noqa: F401
    except ImportError as err:
        raise TrainingError(
            "training needs torch, which is not installed here: pip install 'shelfwatch[trainer]' "
            "(devices run bundles without it)"
        ) from err


def read_zones(path: str | None) -> list[ZoneConfig] | None:
    """Zones from a YAML or JSON file: a list of {id, polygon} or a mapping with a `zones` list."""
    if not path:
        return None
    import yaml
    from pydantic import ValidationError

    from edge.config.model import ZoneConfig

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        data: Any = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise TrainingError(f"cannot read zones file {file}: {err}") from err
    if isinstance(data, dict):
        data = data.get("zones")
    if not isinstance(data, list) or not data:
        raise TrainingError(f"zones file {file} must hold a non-empty list of zones (id, polygon)")
    try:
        return [ZoneConfig.model_validate(z) for z in data]
    except ValidationError as err:
        raise TrainingError(f"zones file {file}: {validation_message(err, limit=1)}") from err


class ProgressBar:
    """A progress bar on stderr (stage, epoch, loss, ETA) drawn by tqdm; plain lines when stderr is not a terminal.

    tqdm draws and throttles the terminal bar; when stderr is a file or a pipe (CI, journald) it writes one line per
    tenth of the run and per stage instead of a bar that a log cannot show.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.bar: tqdm | None = None
        self.last_stage = ""
        self.last_decile = -1

    def _postfix(self, p: Progress) -> str:
        parts = []
        if p.epoch is not None:
            parts.append(f"epoch {p.epoch}/{p.epochs}")
        if p.loss is not None:
            parts.append(f"loss {p.loss:.4f}")
        if p.eta_seconds is not None:
            parts.append(f"ETA {p.eta_seconds:.0f}s")
        if p.message:
            parts.append(p.message)
        return "  ".join(parts)

    def __call__(self, p: Progress) -> None:
        if self.tty:
            if self.bar is None:
                self.bar = tqdm(total=1000, file=self.stream, bar_format="{l_bar}{bar}| {postfix}", mininterval=0.1)
            self.bar.set_description_str(p.stage, refresh=False)
            self.bar.set_postfix_str(self._postfix(p), refresh=False)
            self.bar.update(max(0, int(1000 * p.fraction) - self.bar.n))
            if p.stage == "done":
                self.bar.close()
                self.bar = None
            return
        decile = int(p.fraction * 10)
        if p.stage == self.last_stage and decile == self.last_decile and p.stage != "done":
            return
        self.last_stage, self.last_decile = p.stage, decile
        self.stream.write(f"{100 * p.fraction:5.1f}% {p.stage}  {self._postfix(p)}".rstrip() + "\n")
        self.stream.flush()
