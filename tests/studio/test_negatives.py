"""Photos marked "nothing to box" reach the detector as negatives: the device's upload (COCO) and the trainer's pull
keep the mark, split_detection trains and tests on them beside the box photos, and k-fold is not turned off by a
handful of them (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.datasets.formats import write_dataset
from edge.datasets.model import Box
from edge.store import DatasetStore
from edge.training.client import UPLOAD_FORMAT
from tests.store.helpers import image_bytes
from trainer.crossval import folds_for, kfold_splits
from trainer.data import NEGATIVE_STRATUM, detection_stratum, group_key, read_any, split_detection
from trainer.service.datasets import _sample_from

BOXED, MARKED, UNTAGGED = 12, 5, 3


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DatasetStore]:
    """A detection project's store: 12 photos with a gap box, 5 marked nothing to box, 3 not looked at yet."""
    s = DatasetStore(tmp_path / "data")
    s.create_label("gap", "an empty stretch of shelf")
    for seed in range(BOXED + MARKED + UNTAGGED):
        record = s.add_image(image_bytes(seed), filename=f"shelf-{seed:02d}.jpg")
        if seed < BOXED:
            s.set_annotations(record.id, [], [Box("gap", 0.1, 0.2, 0.4 + seed / 100, 0.6)])
        elif seed < BOXED + MARKED:
            s.set_annotations(record.id, [], [], nothing_to_box=True)
    yield s
    s.close()


def uploaded(store: DatasetStore, tmp_path: Path) -> Path:
    """What the device's upload_store() sends: the tagged images exported and written as COCO."""
    out = tmp_path / "upload"
    write_dataset(store.export_dataset(only_tagged=True), out, UPLOAD_FORMAT)
    return out


def test_the_upload_carries_the_mark_and_the_trainer_reads_it(store: DatasetStore, tmp_path: Path) -> None:
    exported = store.export_dataset(only_tagged=True)
    assert len(exported.samples) == BOXED + MARKED  # marked photos count as tagged; untagged ones stay home
    assert sum(s.nothing_to_box for s in exported.samples) == MARKED
    read = read_any(uploaded(store, tmp_path), UPLOAD_FORMAT)  # the trainer's side of the upload
    marked = sorted(s.name for s in read.samples if s.nothing_to_box)
    assert len(marked) == MARKED and all(not s.boxes for s in read.samples if s.nothing_to_box)
    assert not any(s.nothing_to_box for s in read.samples if s.boxes)
    # The device's own import of that archive keeps the mark too (an export, re-imported elsewhere).
    other = DatasetStore(tmp_path / "other")
    try:
        other.import_dataset(read)
        images, _ = other.list_images(page=1, page_size=100)
        assert sum(i.nothing_to_box for i in images) == MARKED
        assert all(i.tagged for i in images)
    finally:
        other.close()


def test_the_trainer_pull_reads_the_mark_from_the_image_records(store: DatasetStore, tmp_path: Path) -> None:
    images, _ = store.list_images(page=1, page_size=100)
    samples = [_sample_from(i.as_dict(), tmp_path / f"image-{i.id}.jpg") for i in images if i.tagged]
    assert sum(s.nothing_to_box for s in samples) == MARKED
    assert all(s.boxes for s in samples if not s.nothing_to_box)


def test_split_detection_trains_and_tests_on_negatives(store: DatasetStore, tmp_path: Path) -> None:
    ds = read_any(uploaded(store, tmp_path), UPLOAD_FORMAT)
    split = split_detection(ds, seed=0, min_images=10)
    parts = (split.train, split.val, split.test)
    assert sum(len(p) for p in parts) == BOXED + MARKED  # every boxed and every marked photo, nothing else
    negatives = [s for p in parts for s in p if not s.boxes]
    assert len(negatives) == MARKED and all(s.nothing_to_box for s in negatives)
    assert any(not s.boxes for s in split.train) and any(not s.boxes for s in split.test)
    assert all(any(s.boxes for s in p) for p in (split.train, split.test))
    assert split.labels == ["gap"]
    assert not any("without boxes were not used" in w for w in split.warnings)
    # An image with neither boxes nor the mark (a tag only) is still left out, and the warning says how to use it.
    ds.samples[BOXED].nothing_to_box = False
    ds.samples[BOXED].tags = ["gap"]
    again = split_detection(ds, seed=0, min_images=10)
    assert sum(len(p) for p in (again.train, again.val, again.test)) == BOXED + MARKED - 1
    assert any("1 images without boxes were not used" in w and "nothing to box" in w for w in again.warnings)


def test_a_few_negatives_neither_turn_kfold_off_nor_miss_a_fold(store: DatasetStore, tmp_path: Path) -> None:
    ds = read_any(uploaded(store, tmp_path), UPLOAD_FORMAT)
    split = split_detection(ds, seed=0, min_images=10)
    items = split.train + split.val + split.test
    strata = [detection_stratum(s, {"gap": 0}) for s in items]
    groups = [group_key(s.name) for s in items]
    assert strata.count(NEGATIVE_STRATUM) == MARKED
    assert folds_for(groups, strata, 3) == 3
    # Two negatives are fewer than the folds, yet k stays 3 (the box photos decide it).
    few = [i for i, s in enumerate(strata) if s != NEGATIVE_STRATUM or i in [strata.index(NEGATIVE_STRATUM)]]
    few.append([i for i, s in enumerate(strata) if s == NEGATIVE_STRATUM][1])
    assert folds_for([groups[i] for i in few], [strata[i] for i in few], 3) == 3
    folds = kfold_splits(groups, strata, 3, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(len(items)))
    assert all(any(items[i].boxes for i in f) for f in folds), "every fold tests box photos"
    assert sum(any(not items[i].boxes for i in f) for f in folds) == 3, "5 negatives dealt over the 3 folds"
