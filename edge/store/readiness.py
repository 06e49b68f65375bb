"""Is a dataset ready to train? A verdict with reasons, usable with or without a store.

Rules (docs/DATASET.md, defaults from `DatasetRulesConfig`): at least `min_images` tagged images in all; every label
needs `min_per_label_classification` images (classification) or `min_boxes_per_label_detection` boxes (detection);
classification needs two labels at least. Warnings, which never block: labels far rarer than the largest one
(suggest merging them into a NONE/other class), no NONE/other class for classification, and
near-duplicate images (they make a dataset look bigger than it is).
"""

from __future__ import annotations

from collections.abc import Mapping

from edge.config import DatasetRulesConfig
from edge.vocabulary import Task, is_none_class

__all__ = ["Task", "readiness"]


def readiness(
    per_label_counts: Mapping[str, Mapping[str, int]],
    task: Task,
    rules: DatasetRulesConfig | None = None,
    *,
    tagged_images: int | None = None,
    near_duplicates: int = 0,
    unit: str | None = None,
) -> tuple[bool, list[str], list[str]]:
    """Verdict for per-label counts ({label: {"images": n, "boxes": n}}): (ready, problems, warnings)."""
    rules = rules or DatasetRulesConfig()
    problems: list[str] = []
    warnings: list[str] = []
    # unit: what one example is: boxes (detection), images (classification), or zone "crops" (a classifier trained
    # on the zones' crops, where one image gives one example per zone).
    unit = unit or ("boxes" if task == "detection" else "images")
    minimum = rules.min_boxes_per_label_detection if task == "detection" else rules.min_per_label_classification
    counts = {name: int(c.get(unit, 0)) for name, c in per_label_counts.items()}
    if task == "detection":
        # A detector learns boxes of objects; a NONE/other tag marks a photo with none of them (a negative), never
        # a box: it needs no boxes of its own (issue 11: `none` with 0 boxes blocked a detector).
        counts = {name: n for name, n in counts.items() if not is_none_class(name)}
    if tagged_images is None:
        # Without the store's own figure, an image is assumed to carry one label (true for classification).
        tagged_images = sum(int(c.get("images", 0)) for c in per_label_counts.values())

    if tagged_images < rules.min_images:
        problems.append(
            f"{tagged_images} tagged images; at least {rules.min_images} are needed "
            f"(tag {rules.min_images - tagged_images} more)"
        )
    if not counts:
        problems.append("no labels yet: create the labels you want the model to learn")
    elif task == "classification" and len(counts) < 2:
        problems.append(
            "classification needs at least 2 labels; add a NONE/other class for images that show none of the others"
        )
    for name, n in sorted(counts.items()):
        if n < minimum:
            problems.append(
                f"label {name!r} has {n} {unit}; at least {minimum} are needed ({minimum - n} more, "
                "or delete the label)"
            )

    largest = max(counts.values(), default=0)
    if largest > 0 and len(counts) > 1:
        for name, n in sorted(counts.items()):
            if n < rules.rare_label_ratio * largest:
                warnings.append(
                    f"label {name!r} is rare ({n} {unit} against {largest} for the largest label): add more examples "
                    "or merge it into a NONE/other class"
                )
    if task == "classification" and counts and not any(is_none_class(n) for n in counts):
        warnings.append("no NONE/other label: add one for images that show none of the other labels")
    if near_duplicates:
        warnings.append(
            (
                "1 image is a near-duplicate of another"
                if near_duplicates == 1
                else f"{near_duplicates} images are near-duplicates of others"
            )
            + ": they add little and can make the test split look better than the model is"
        )
    return (not problems, problems, warnings)
