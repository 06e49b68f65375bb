"""Grouped, stratified k-fold on generated item lists: every item tested once, no photo on both sides, seeded."""

from __future__ import annotations

from collections import Counter

import pytest

from trainer.crossval import carve_validation, folds_for, kfold_splits, photo_count, summarise_folds


def _items(photos_per_label: dict[int, int], copies: int = 3) -> tuple[list[str], list[int]]:
    """Items as (group, stratum) lists: every photo appears `copies` times (augmented copies, zone crops)."""
    groups, strata = [], []
    for label, photos in photos_per_label.items():
        for p in range(photos):
            for _ in range(copies):
                groups.append(f"label{label}-photo{p}")
                strata.append(label)
    return groups, strata


@pytest.mark.parametrize(("per_label", "k"), [({0: 5, 1: 5, 2: 5}, 5), ({0: 7, 1: 12}, 5), ({0: 3, 1: 9}, 3)])
def test_every_item_is_tested_exactly_once_and_no_photo_is_on_both_sides(per_label: dict[int, int], k: int) -> None:
    groups, strata = _items(per_label)
    folds = kfold_splits(groups, strata, k, seed=0)
    assert len(folds) == k
    tested = [i for fold in folds for i in fold]
    assert sorted(tested) == list(range(len(groups)))  # each item once
    for fold in folds:
        held = {groups[i] for i in fold}
        trained = {groups[i] for i in range(len(groups)) if i not in set(fold)}
        assert not held & trained  # copies of one photo never on both sides
        # stratified: every label is tested in every fold, and folds differ by at most one photo per label
        assert {strata[i] for i in fold} == set(per_label)
    for label in per_label:
        photos = [len({groups[i] for i in fold if strata[i] == label}) for fold in folds]
        assert max(photos) - min(photos) <= 1
    sizes = [len({groups[i] for i in fold}) for fold in folds]
    assert max(sizes) - min(sizes) <= 1


def test_same_seed_same_folds_other_seed_other_folds() -> None:
    groups, strata = _items({0: 8, 1: 8})
    assert kfold_splits(groups, strata, 4, seed=3) == kfold_splits(groups, strata, 4, seed=3)
    assert kfold_splits(groups, strata, 4, seed=3) != kfold_splits(groups, strata, 4, seed=4)


def test_folds_shrink_to_the_rarest_label_and_refuse_below_two() -> None:
    groups, strata = _items({0: 10, 1: 3})
    assert photo_count(groups) == 13
    assert folds_for(groups, strata, 5) == 3
    groups, strata = _items({0: 10, 1: 1})
    assert folds_for(groups, strata, 5) == 0
    with pytest.raises(ValueError, match="at least 2 folds"):
        kfold_splits(groups, strata, 1, seed=0)


def test_validation_is_carved_by_photo_from_each_label() -> None:
    groups, strata = _items({0: 8, 1: 16})
    items = list(range(len(groups)))
    train, val = carve_validation(items, groups, strata, seed=0)
    assert sorted(train + val) == items
    assert not {groups[i] for i in train} & {groups[i] for i in val}
    photos = Counter(strata[i] for i in {groups[i]: i for i in val}.values())
    assert photos == {0: 1, 1: 2}  # an eighth of each label's photos, at least one
    assert carve_validation(items, groups, strata, seed=0) == (train, val)


def test_summary_gives_mean_and_spread_of_numbers_every_fold_has() -> None:
    summary = summarise_folds(
        [{"accuracy": 0.5, "note": "x"}, {"accuracy": 1.0, "note": "y"}], ["accuracy", "note", "missing"]
    )
    assert summary == {"accuracy": {"mean": 0.75, "std": 0.25, "min": 0.5, "max": 1.0}}
