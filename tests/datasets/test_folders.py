"""Folder-per-class reading: leaf folders are labels, split folders, grouping folders, sidecars."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.datasets.formats import detect_format, read_dataset
from edge.errors import DatasetError
from tests.datasets.conftest import write_image


def test_split_and_grouping_folders_like_grocery5(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "Fruit" / "Banana" / "b1.jpg", seed=1)
    write_image(tmp_path / "train" / "Vegetables" / "Carrots" / "c1.jpg", seed=2)
    write_image(tmp_path / "val" / "Fruit" / "Banana" / "b2.jpg", seed=3)
    write_image(tmp_path / "train" / ".hidden" / "h.jpg", seed=4)
    (tmp_path / "classes.csv").write_text("Class Name (str),Class ID (int)\nBanana,6\n")
    (tmp_path / "train.txt").write_text("train/Fruit/Banana/b1.jpg, 6, 2\n")
    assert detect_format(tmp_path) == "folders"
    ds = read_dataset(tmp_path, "folders")
    assert ds.label_names == ["Banana", "Carrots"]
    assert {s.name: (s.tags, s.split) for s in ds.samples} == {
        "train/Fruit/Banana/b1.jpg": (["Banana"], "train"),
        "train/Vegetables/Carrots/c1.jpg": (["Carrots"], "train"),
        "val/Fruit/Banana/b2.jpg": (["Banana"], "val"),
    }


def test_flat_classes_loose_images_and_sidecars(tmp_path: Path) -> None:
    write_image(tmp_path / "zebra" / "z.png", seed=1)
    write_image(tmp_path / "ant" / "a.jpg", seed=2)
    write_image(tmp_path / "loose.jpg", seed=3)
    (tmp_path / "labels.txt").write_text("zebra\nant\n")
    (tmp_path / "tags.csv").write_text("image,tags\nant/a.jpg,ant;zebra\n")
    ds = read_dataset(tmp_path, "folders")
    assert ds.label_names == ["zebra", "ant"]
    assert {s.name: (s.tags, s.split) for s in ds.samples} == {
        "zebra/z.png": (["zebra"], "auto"),
        "ant/a.jpg": (["ant", "zebra"], "auto"),
        "loose.jpg": ([], "auto"),
    }


def test_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="no images found"):
        read_dataset(tmp_path, "folders")


def test_symlinked_class_folder_outside_is_refused(tmp_path: Path) -> None:
    write_image(tmp_path / "outside" / "secret.jpg")
    write_image(tmp_path / "ds" / "cat" / "c.jpg", seed=1)
    (tmp_path / "ds" / "dog").mkdir()
    (tmp_path / "ds" / "dog" / "d.jpg").symlink_to(tmp_path / "outside" / "secret.jpg")
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        read_dataset(tmp_path / "ds", "folders")


def test_broken_image_link_is_a_missing_file(tmp_path: Path) -> None:
    write_image(tmp_path / "cat" / "c.jpg")
    (tmp_path / "cat" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with pytest.raises(DatasetError, match=r"gone\.jpg is missing"):
        read_dataset(tmp_path, "folders")
