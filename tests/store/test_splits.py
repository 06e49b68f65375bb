"""The train/test assignment as a pure function over rows: no SQLite, no files."""

from __future__ import annotations

import pytest

from edge.errors import AnnotationError
from edge.store.splits import assign_splits


def test_every_candidate_gets_train_or_test_and_the_same_seed_gives_the_same_split() -> None:
    image_labels = {i: {1} for i in range(10)}
    first = assign_splits(image_labels, list(range(10)), 0.2, seed=3)
    assert sorted(i for _, i in first) == list(range(10))
    assert {s for s, _ in first} == {"train", "test"}
    assert sum(s == "test" for s, _ in first) == 2
    assert assign_splits(image_labels, list(range(10)), 0.2, seed=3) == first


def test_a_rare_label_gets_its_share_of_the_test_split() -> None:
    # 20 images of a common label; 5 more carry the common and a rare label: they are stratified by the rare one.
    image_labels = {i: {1} for i in range(20)} | {i: {1, 2} for i in range(20, 25)}
    updates = dict((i, s) for s, i in assign_splits(image_labels, list(range(25)), 0.2, seed=0))
    assert sum(updates[i] == "test" for i in range(20, 25)) == 1
    assert sum(updates[i] == "test" for i in range(20)) == 4


def test_small_strata_keep_a_training_image_and_unlabelled_images_form_their_own() -> None:
    image_labels = {0: {1}, 1: {1}, 2: {2}}
    updates = dict((i, s) for s, i in assign_splits(image_labels, [0, 1, 2, 7, 8], 0.9, seed=0))
    assert updates[2] == "train"  # a stratum of one is never all test
    assert sorted(updates[i] for i in (0, 1)) == ["test", "train"]
    assert sorted(updates[i] for i in (7, 8)) == ["test", "train"]


def test_only_candidates_are_assigned() -> None:
    image_labels = {i: {1} for i in range(6)}
    assert {i for _, i in assign_splits(image_labels, [4, 5], 0.5, seed=0)} == {4, 5}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 2.0])
def test_a_fraction_outside_zero_and_one_is_refused(fraction: float) -> None:
    with pytest.raises(AnnotationError, match="between 0 and 1"):
        assign_splits({}, [], fraction, seed=0)
