"""Classification samples, zone crops, grouped stratified splits, minimums and augmentation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edge.config.model import ZoneConfig
from edge.datasets.model import Box, Dataset, LabelInfo, Sample
from edge.vocabulary import NONE_LABEL
from tests.trainer.helpers import coloured_dataset, rect_zone
from trainer.data import (
    augment,
    classification_samples,
    group_key,
    load_image,
    sample_image,
    split_classification,
)
from trainer.errors import TrainingError


def test_group_key_keeps_roboflow_copies_together() -> None:
    a = group_key("1-100_jpg.rf.1795b376a0e86a11b059f69506b37f5b.jpg")
    b = group_key("train/images/1-100_jpg.rf.601d4660c10d8c5f58b2dd9721a95b18.jpg")
    assert a == b == "1-100"
    assert group_key("shelf/cam1_0001.jpg") == "shelf/cam1_0001"


def test_tags_make_samples_and_odd_images_are_counted(tmp_path: Path) -> None:
    ds = coloured_dataset(tmp_path, per_label=2)
    ds.samples.append(Sample(tmp_path / "x.png", "x.png"))
    ds.samples.append(Sample(tmp_path / "y.png", "y.png", tags=["red", "blue"]))
    labels, samples, warnings = classification_samples(ds)
    assert labels == ["red", "green", "blue"]
    assert len(samples) == 6
    assert any("no usable tag" in w for w in warnings)
    assert any("several tags" in w for w in warnings)


def test_zone_crops_take_box_labels_or_none(tmp_path: Path) -> None:
    zones = [rect_zone("left", 0.0, 0.0, 0.5, 1.0), rect_zone("right", 0.5, 0.0, 1.0, 1.0)]
    ds = Dataset(labels=[LabelInfo("empty"), LabelInfo("ok")])
    ds.samples = [
        Sample(tmp_path / "a.jpg", "a.jpg", boxes=[Box("empty", 0.05, 0.1, 0.45, 0.9)]),
        Sample(tmp_path / "b.jpg", "b.jpg", tags=["ok"]),  # no boxes: the image's tag holds for every zone
        Sample(tmp_path / "c.jpg", "c.jpg"),  # nothing: skipped
    ]
    labels, samples, warnings = classification_samples(ds, zones)
    got = {(s.name, labels[s.label]) for s, _ in samples}
    assert got == {("a.jpg#left", "empty"), ("a.jpg#right", NONE_LABEL), ("b.jpg#left", "ok"), ("b.jpg#right", "ok")}
    assert labels[-1] == NONE_LABEL
    left = next(s for s, _ in samples if s.name == "a.jpg#left")
    assert left.crop == (0.0, 0.0, 0.5, 1.0) and left.group == "a"
    assert any("2 zone crops" in w for w in warnings)


def test_stratified_split_8_1_1_and_deterministic(tmp_path: Path) -> None:
    ds = coloured_dataset(tmp_path, per_label=10)
    labels, samples, warnings = classification_samples(ds)
    data = split_classification(labels, samples, seed=3, warnings=warnings)
    assert data.split_source == "stratified"
    for name in labels:
        assert (data.counts("train")[name], data.counts("val")[name], data.counts("test")[name]) == (8, 1, 1)
    again = split_classification(labels, samples, seed=3)
    assert [s.path for s in again.test] == [s.path for s in data.test]
    other = split_classification(labels, samples, seed=4)
    assert [s.path for s in other.test] != [s.path for s in data.test]
    assert any("tiny test set" in w for w in data.warnings)


def test_copies_never_straddle_splits(tmp_path: Path) -> None:
    ds = Dataset(labels=[LabelInfo("a"), LabelInfo("b")])
    for label in ("a", "b"):
        for photo in range(10):
            for copy in range(3):
                name = f"{label}{photo}_jpg.rf.{copy:032x}.jpg"
                ds.samples.append(Sample(tmp_path / name, name, tags=[label]))
    labels, samples, _ = classification_samples(ds)
    data = split_classification(labels, samples, seed=0)
    groups = [{s.group for s in part} for part in (data.train, data.val, data.test)]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    assert Counter(s.group for s in data.test).most_common(1)[0][1] == 3  # all three copies together


def test_dataset_split_is_used(tmp_path: Path) -> None:
    ds = coloured_dataset(tmp_path, per_label=10)
    for i, s in enumerate(ds.samples):
        s.split = "val" if i % 10 >= 8 else "train"  # the grocery5 layout: train/ and val/ folders
    labels, samples, _ = classification_samples(ds)
    data = split_classification(labels, samples, seed=0)
    assert data.split_source == "dataset"
    assert sum(data.counts("test").values()) == 6  # the dataset's val became the test set
    assert all(v >= 1 for v in data.counts("val").values())  # validation carved out of train
    assert {s.path for s in data.test}.isdisjoint({s.path for s in data.train + data.val})


def test_a_split_of_only_training_images_is_split_here(tmp_path: Path) -> None:
    """A YOLO root with just train/ holds nothing out: the trainer makes its own held-out test set."""
    ds = coloured_dataset(tmp_path, per_label=10)
    for s in ds.samples:
        s.split = "train"
    labels, samples, _ = classification_samples(ds)
    data = split_classification(labels, samples, seed=0)
    assert data.split_source == "stratified"
    assert all(v >= 1 for v in data.counts("test").values())
    assert {s.path for s in data.test}.isdisjoint({s.path for s in data.train + data.val})


def test_too_few_images_refused_with_counts(tmp_path: Path) -> None:
    ds = coloured_dataset(tmp_path, per_label=4)
    labels, samples, _ = classification_samples(ds)
    with pytest.raises(TrainingError, match=r"too few images per label \('red': 4, 'green': 4, 'blue': 4\)"):
        split_classification(labels, samples)
    data = split_classification(labels, samples, min_per_label=3)
    assert all(v >= 1 for v in data.counts("test").values())
    one = Dataset(labels=[LabelInfo("red")], samples=[s for s in ds.samples if s.tags == ["red"]])
    with pytest.raises(TrainingError, match="at least 2 labels"):
        split_classification(*classification_samples(one)[:2])


def test_augment_keeps_a_plausible_image_and_is_seeded(tmp_path: Path) -> None:
    ds = coloured_dataset(tmp_path, per_label=1)
    image = load_image(ds.samples[0].path)
    a = augment(image, np.random.default_rng(1))
    b = augment(image, np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert a.dtype == np.uint8 and a.ndim == 3
    assert a.shape[0] >= 0.65 * image.shape[0] and a.shape[1] >= 0.65 * image.shape[1]
    assert not np.array_equal(augment(image, np.random.default_rng(2)), a)


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(TrainingError, match=r"cannot decode image .*broken\.jpg"):
        load_image(bad)
    ds = coloured_dataset(tmp_path / "ok", per_label=1)
    _, samples, _ = classification_samples(ds)
    crop = sample_image(samples[0][0].__class__(samples[0][0].path, 0, "g", (0.0, 0.0, 0.5, 0.5)))
    assert crop.shape[:2] == (24, 28)


def test_zone_crops_use_the_datasets_own_none_class(tmp_path: Path) -> None:
    """The studio's `none` label (any case) is the class of uncovered zones, not a second NONE class."""
    zones = [rect_zone("top", 0.0, 0.0, 1.0, 0.5), rect_zone("bottom", 0.0, 0.5, 1.0, 1.0)]
    ds = Dataset(labels=[LabelInfo("low_stock"), LabelInfo("none")])
    ds.samples = [
        Sample(tmp_path / "a.jpg", "a.jpg", boxes=[Box("low_stock", 0.0, 0.0, 1.0, 0.5)]),
        Sample(tmp_path / "b.jpg", "b.jpg", tags=["none"]),
    ]
    labels, samples, _ = classification_samples(ds, zones)
    assert labels == ["low_stock", "none"]
    got = {(s.name, labels[s.label]) for s, _ in samples}
    assert got == {
        ("a.jpg#top", "low_stock"),
        ("a.jpg#bottom", "none"),
        ("b.jpg#top", "none"),
        ("b.jpg#bottom", "none"),
    }


def test_polygon_zone_crops_match_what_the_device_classifies(tmp_path: Path) -> None:
    """Training crops are cut exactly as the pipeline cuts them: box of the polygon, outside blacked out."""
    import cv2

    from edge.pipeline.zone_scoring import Zone, crop_zone

    image = np.full((60, 80, 3), 200, dtype=np.uint8)
    image[:, :40] = (10, 120, 240)
    path = tmp_path / "tri.png"
    cv2.imwrite(str(path), image)
    triangle = [(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)]
    ds = Dataset(labels=[LabelInfo("ok")], samples=[Sample(path, "tri.png", tags=["ok"])])
    _, samples, _ = classification_samples(ds, [ZoneConfig(id="tri", polygon=triangle)])
    crop = sample_image(samples[0][0])
    expected = crop_zone(load_image(path), Zone("tri", tuple(triangle), ()))
    assert crop.shape == expected.shape and np.array_equal(crop, expected)
    assert (crop[-1, 0] == 0).all() and (crop[crop.shape[0] // 2, crop.shape[1] // 2] != 0).any()


def test_load_image_reads_the_header_first(tmp_path: Path) -> None:
    # The device's one intake: a TIFF declaring 30000x30000 is refused from its header, never decoded.
    from tests.helpers.hostile import tiff_declaring
    from trainer.data import load_image

    bomb = tmp_path / "bomb.tif"
    bomb.write_bytes(tiff_declaring(30000, 30000, complete=False))
    with pytest.raises(TrainingError, match=r"bomb\.tif: 30000x30000 pixels is over the limit"):
        load_image(bomb)
