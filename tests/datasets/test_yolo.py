"""YOLO reading: layouts, names, polygons, and bad lines refused with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.datasets.formats import detect_format, read_dataset
from edge.errors import DatasetError
from tests.datasets.conftest import write_image
from tests.helpers.hostile import yaml_alias_bomb


def make(root: Path, lines: str, names: str = "names: [gap, full]\n", layout: str = "split-first") -> Path:
    (root / "data.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(names)
    images, labels = (
        (root / "train" / "images", root / "train" / "labels")
        if layout == "split-first"
        else (root / "images" / "train", root / "labels" / "train")
    )
    write_image(images / "a.jpg")
    labels.mkdir(parents=True, exist_ok=True)
    (labels / "a.txt").write_text(lines)
    return root


def test_boxes_polygons_and_both_layouts(tmp_path: Path) -> None:
    lines = "0 0.5 0.5 0.2 0.4\n\n1 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6\n"
    for layout in ("split-first", "images-first"):
        root = make(tmp_path / layout, lines, layout=layout)
        assert detect_format(root) == "yolo"
        ds = read_dataset(root, "yolo")
        (sample,) = ds.samples
        assert sample.split == "train"
        assert [b.label for b in sample.boxes] == ["gap", "full"]
        assert sample.boxes[0].as_tuple() == pytest.approx((0.4, 0.3, 0.6, 0.7))
        assert sample.boxes[1].as_tuple() == pytest.approx((0.1, 0.2, 0.3, 0.6)), "polygon -> its bounding box"


def test_names_as_mapping_and_flat_layout_without_labels(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("nc: 2\nnames: {0: gap, 1: full}\n")
    write_image(tmp_path / "images" / "x.png")
    write_image(tmp_path / "valid" / "images" / "y.jpg", seed=1)
    ds = read_dataset(tmp_path, "yolo")
    assert ds.label_names == ["gap", "full"]
    assert {s.name: (s.split, s.boxes) for s in ds.samples} == {
        "images/x.png": ("auto", []),
        "valid/images/y.jpg": ("val", []),
    }


def test_classes_txt_instead_of_data_yaml(tmp_path: Path) -> None:
    make(tmp_path, "1 0.5 0.5 0.1 0.1\n")
    (tmp_path / "data.yaml").unlink()
    (tmp_path / "classes.txt").write_text("gap\nfull\n")
    assert read_dataset(tmp_path, "yolo").samples[0].boxes[0].label == "full"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2 0.5 0.5 0.1 0.1", r"a\.txt:2: class id 2 is out of range"),
        ("-1 0.5 0.5 0.1 0.1", r"a\.txt:2: class id -1 is out of range"),
        ("0 0.5 0.5 0.1", r"a\.txt:2: malformed YOLO line"),
        ("0 0.5 0.5 0.1 0.1 0.9", r"a\.txt:2: malformed YOLO line"),
        ("0 0.5 abc 0.1 0.1", r"a\.txt:2: malformed YOLO line .*not all numbers"),
        ("0.5 0.5 0.5 0.1 0.1", r"a\.txt:2: class id '0.5' is not an integer"),
        ("0 250 120 40 30", r"a\.txt:2: coordinates must be normalised"),
        ("0 0.5 0.5 0 0.1", r"a\.txt:2: the box has no area"),
        ("0 nan 0.5 0.1 0.1", r"a\.txt:2: malformed YOLO line .*not finite"),
    ],
)
def test_bad_label_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    make(tmp_path, f"0 0.5 0.5 0.2 0.2\n{line}\n")
    with pytest.raises(DatasetError, match=message):
        read_dataset(tmp_path, "yolo")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("names: [a, b\n", "malformed YAML"),
        ("nc: 3\nnames: [a, b]\n", "'nc' is 3 but 'names' has 2"),
        ("names: {0: a, 2: b}\n", "without gaps"),
        ("names: [a, a]\n", "more than once"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_bad_data_yaml(tmp_path: Path, yaml_text: str, message: str) -> None:
    make(tmp_path, "0 0.5 0.5 0.2 0.2\n", names=yaml_text)
    with pytest.raises(DatasetError, match=message):
        read_dataset(tmp_path, "yolo")


def test_label_file_without_image_is_refused(tmp_path: Path) -> None:
    make(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "train" / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DatasetError, match=r"label files without an image: .*ghost\.txt"):
        read_dataset(tmp_path, "yolo")


def test_image_symlinked_from_outside_is_refused(tmp_path: Path) -> None:
    root = make(tmp_path / "ds", "0 0.5 0.5 0.2 0.2\n")
    outside = write_image(tmp_path / "secret.jpg", seed=3)
    (root / "train" / "images" / "b.jpg").symlink_to(outside)
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        read_dataset(root, "yolo")


def test_no_images_and_no_names(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names: [a]\n")
    with pytest.raises(DatasetError, match="no YOLO images found"):
        read_dataset(tmp_path, "yolo")
    (tmp_path / "data.yaml").unlink()
    write_image(tmp_path / "images" / "a.jpg")
    with pytest.raises(DatasetError, match=r"no data\.yaml"):
        read_dataset(tmp_path, "yolo")


def test_tags_sidecar_naming_an_unknown_image_is_refused(tmp_path: Path) -> None:
    make(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "tags.csv").write_text("image,tags\ntrain/images/a.jpg,gap;full\n")
    assert read_dataset(tmp_path, "yolo").samples[0].tags == ["gap", "full"]
    (tmp_path / "tags.csv").write_text("image,tags\ntrain/images/zzz.jpg,gap\n")
    with pytest.raises(DatasetError, match=r"zzz\.jpg"):
        read_dataset(tmp_path, "yolo")
    (tmp_path / "tags.csv").write_text("image,tags\n../a.jpg,gap\n")
    with pytest.raises(DatasetError, match=r"tags\.csv:2: .*'\.\.'"):
        read_dataset(tmp_path, "yolo")


def test_an_alias_bomb_in_data_yaml_is_refused_before_it_expands(tmp_path: Path) -> None:
    # A few hundred bytes whose `names` nest aliases (10**4 copies of a 64-character name here; the file
    # nested 8 deep): safe_load shares the objects, then str() of the "name" expanded them into a huge label.
    text = yaml_alias_bomb(depth=4, width=10)
    assert len(text) < 1000
    make(tmp_path, "0 0.5 0.5 0.2 0.2\n", names=text)
    with pytest.raises(DatasetError, match=r"data\.yaml: malformed YAML: aliases \(\*name\) are not allowed"):
        read_dataset(tmp_path, "yolo")


@pytest.mark.parametrize("names", ["names: [[a, b], c]\n", "names: {0: [a], 1: b}\n", "names: [a, null]\n"])
def test_a_class_name_that_is_not_a_scalar_is_refused(tmp_path: Path, names: str) -> None:
    make(tmp_path, "0 0.5 0.5 0.2 0.2\n", names=names)
    with pytest.raises(DatasetError, match=r"data\.yaml: class name .* must be text"):
        read_dataset(tmp_path, "yolo")


def test_an_oversized_data_yaml_is_refused_unread(tmp_path: Path) -> None:
    make(tmp_path, "0 0.5 0.5 0.2 0.2\n", names="names: [a, b]\n" + "# padding\n" * 30_000)
    with pytest.raises(DatasetError, match=r"data\.yaml: \d+ bytes is more than the 256 KiB"):
        read_dataset(tmp_path, "yolo")
