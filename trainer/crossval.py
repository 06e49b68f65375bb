"""Honest numbers for small datasets: grouped, stratified k-fold cross-validation.

With 15 photos an 80/10/10 split tests on one or two photos per label, and the metrics move by 30 points with the
seed. Below `KFOLD_BELOW` photos (distinct photos: copies of one photo and the zone crops of one image count once)
the pipeline evaluates by k-fold instead: the photos are dealt into k folds, stratified by label, every photo in
exactly one fold and all items of one photo in the same fold; each fold is tested once by a model fitted on the
other folds (with validation carved out of those, the same way); the report gives every headline metric's mean and
spread over the folds and the confusion matrix / PR curve of all out-of-fold predictions pooled; the shipped model
is then fitted on every image. A dataset that brings its own test split is evaluated on it (hold-out).

Everything here is pure (indices in, indices out) and deterministic for a seed.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

KFOLD_BELOW = 50  # photos; from here on a hold-out split tests on enough photos to be read alone
MIN_FOLDS = 2
VALIDATION_SHARE = 0.125  # of a fit's training photos, as the hold-out split carves validation from train


def photo_count(groups: Sequence[str]) -> int:
    """Distinct photos among the items (items of one photo share its group)."""
    return len(set(groups))


def _group_strata(groups: Sequence[str], strata: Sequence[int], items: Sequence[int]) -> dict[int, list[str]]:
    """Stratum -> its groups (sorted), a group going with the stratum most of its items carry."""
    members: dict[str, list[int]] = defaultdict(list)
    for i in items:
        members[groups[i]].append(strata[i])
    by_stratum: dict[int, list[str]] = defaultdict(list)
    for group in sorted(members):
        counts = Counter(members[group])
        top = max(counts.values())
        by_stratum[min(s for s, c in counts.items() if c == top)].append(group)
    return dict(by_stratum)


def folds_for(groups: Sequence[str], strata: Sequence[int], wanted: int) -> int:
    """k: `wanted`, fewer when a label has fewer photos (each fold should test every label); 0 below two. Negative
    strata (a detector's photos with nothing to box) are dealt like labels but do not lower k."""
    per_stratum = _group_strata(groups, strata, range(len(groups)))
    smallest = min((len(g) for s, g in per_stratum.items() if s >= 0), default=0)
    k = min(wanted, smallest)
    return k if k >= MIN_FOLDS else 0


def kfold_splits(groups: Sequence[str], strata: Sequence[int], k: int, seed: int) -> list[list[int]]:
    """The test items of each of k folds: every item in exactly one, the items of one group in the same one.

    Per stratum (label), its groups are shuffled and dealt round-robin, continuing where the previous stratum
    stopped, so folds differ by at most one group per label and in size by at most one group overall.
    """
    if k < MIN_FOLDS:
        raise ValueError(f"k-fold needs at least {MIN_FOLDS} folds, got {k}")
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    next_fold = 0
    for _, stratum_groups in sorted(_group_strata(groups, strata, range(len(groups))).items()):
        for j in rng.permutation(len(stratum_groups)):
            fold_of[stratum_groups[j]] = next_fold
            next_fold = (next_fold + 1) % k
    folds: list[list[int]] = [[] for _ in range(k)]
    for i, group in enumerate(groups):
        folds[fold_of[group]].append(i)
    return folds


def carve_validation(
    items: Sequence[int], groups: Sequence[str], strata: Sequence[int], seed: int, share: float = VALIDATION_SHARE
) -> tuple[list[int], list[int]]:
    """(train, val) of `items`: about `share` of each label's groups (at least one where it has two) to val."""
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for _, stratum_groups in sorted(_group_strata(groups, strata, items).items()):
        n = len(stratum_groups)
        take = max(1, round(share * n)) if n >= 2 else 0
        held.update(stratum_groups[j] for j in rng.permutation(n)[:take])
    return [i for i in items if groups[i] not in held], [i for i in items if groups[i] in held]


def spread(values: Sequence[float]) -> dict[str, float]:
    """mean, standard deviation (population: the folds are all there is), min and max."""
    return {
        "mean": float(statistics.fmean(values)),
        "std": float(statistics.pstdev(values)),
        "min": float(min(values)),
        "max": float(max(values)),
    }


def summarise_folds(per_fold: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean and spread over folds of each of `keys` (those every fold reports as a number)."""
    out = {}
    for key in keys:
        values = [f[key] for f in per_fold if isinstance(f.get(key), int | float)]
        if values and len(values) == len(per_fold):
            out[key] = spread([float(v) for v in values])
    return out
