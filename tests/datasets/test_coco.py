"""COCO reading: layouts, header sizes, Roboflow quirks, and bad input refused with a clear error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.datasets.formats import detect_format, read_dataset
from edge.errors import DatasetError
from tests.datasets.conftest import write_image


def coco_doc(file_name: str = "images/a.jpg", **image_fields: Any) -> dict[str, Any]:
    image = {"id": 1, "file_name": file_name, "width": 100, "height": 50, **image_fields}
    return {
        "images": [image],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 5, 40, 20]}],
        "categories": [{"id": 3, "name": "gap"}, {"id": 1, "name": "full"}],
    }


def make(root: Path, doc: dict[str, Any], name: str = "annotations.json") -> Path:
    write_image(root / "images" / "a.jpg", 100, 50)
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(doc))
    return root


def test_pixel_boxes_are_normalised_and_categories_ordered_by_id(tmp_path: Path) -> None:
    ds = read_dataset(make(tmp_path, coco_doc()), "coco")
    assert ds.label_names == ["full", "gap"]
    (sample,) = ds.samples
    assert sample.name == "images/a.jpg" and sample.split == "auto"
    (box,) = sample.boxes
    assert box.label == "gap"
    assert box.as_tuple() == pytest.approx((0.1, 0.1, 0.5, 0.5))


def test_missing_width_height_are_read_from_the_image_header(tmp_path: Path) -> None:
    doc = coco_doc()
    del doc["images"][0]["width"], doc["images"][0]["height"]
    ds = read_dataset(make(tmp_path, doc), "coco")
    assert (ds.samples[0].width, ds.samples[0].height) == (100, 50)
    assert ds.samples[0].boxes[0].as_tuple() == pytest.approx((0.1, 0.1, 0.5, 0.5))


def test_tags_extension_field(tmp_path: Path) -> None:
    ds = read_dataset(make(tmp_path, coco_doc(tags=["full", "blurry"])), "coco")
    assert ds.samples[0].tags == ["full", "blurry"]
    assert ds.label_names == ["full", "gap", "blurry"]


def test_explicit_annotations_file_and_file_as_source(tmp_path: Path) -> None:
    make(tmp_path, coco_doc(), name="labels/mine.json")
    assert len(read_dataset(tmp_path, "coco", annotations="labels/mine.json").samples) == 1
    (tmp_path / "annotations").mkdir()
    (tmp_path / "labels" / "mine.json").rename(tmp_path / "annotations" / "instances_val2017.json")
    ds = read_dataset(tmp_path / "annotations" / "instances_val2017.json", "coco")
    assert [(s.name, s.split) for s in ds.samples] == [("images/a.jpg", "val")]
    (tmp_path / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(DatasetError, match="no COCO annotations file"):
        read_dataset(tmp_path, "coco")


def test_roboflow_per_split_layout_drops_the_placeholder_category(tmp_path: Path) -> None:
    for split, folder in (("train", "train"), ("val", "valid")):
        write_image(tmp_path / folder / f"{split}.jpg", 100, 50)
        doc = {
            "images": [{"id": 0, "file_name": f"{split}.jpg", "width": 100, "height": 50}],
            "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [0, 0, 50, 50]}],
            "categories": [
                {"id": 0, "name": "shelves", "supercategory": "none"},
                {"id": 1, "name": "empty", "supercategory": "shelves"},
            ],
        }
        (tmp_path / folder / "_annotations.coco.json").write_text(json.dumps(doc))
    assert detect_format(tmp_path) == "coco"
    ds = read_dataset(tmp_path, "coco")
    assert ds.label_names == ["empty"]
    assert {s.name: s.split for s in ds.samples} == {"train/train.jpg": "train", "valid/val.jpg": "val"}


def test_truncated_json_names_the_file_and_position(tmp_path: Path) -> None:
    make(tmp_path, coco_doc())
    text = (tmp_path / "annotations.json").read_text()
    (tmp_path / "annotations.json").write_text(text[: len(text) // 2])
    with pytest.raises(DatasetError, match=r"annotations\.json: malformed or truncated JSON at line 1"):
        read_dataset(tmp_path, "coco")


def test_unknown_category_id(tmp_path: Path) -> None:
    doc = coco_doc()
    doc["annotations"][0]["category_id"] = 7
    with pytest.raises(DatasetError, match=r"annotations\[0\]: unknown category id 7"):
        read_dataset(make(tmp_path, doc), "coco")


def test_annotation_for_an_unknown_image(tmp_path: Path) -> None:
    doc = coco_doc()
    doc["annotations"][0]["image_id"] = 99
    with pytest.raises(DatasetError, match="image_id 99"):
        read_dataset(make(tmp_path, doc), "coco")


@pytest.mark.parametrize(
    ("file_name", "message"),
    [("../outside.jpg", r"contains '\.\.'"), ("/etc/passwd", "is absolute"), ("C:\\x.jpg", "is absolute")],
)
def test_paths_escaping_the_folder_are_refused(tmp_path: Path, file_name: str, message: str) -> None:
    write_image(tmp_path / "outside.jpg")
    root = tmp_path / "ds"
    with pytest.raises(DatasetError, match=message):
        read_dataset(make(root, coco_doc(file_name)), "coco")


def test_symlink_escaping_the_folder_is_refused(tmp_path: Path) -> None:
    outside = write_image(tmp_path / "outside.jpg")
    root = make(tmp_path / "ds", coco_doc("images/link.jpg"))
    (root / "images" / "link.jpg").symlink_to(outside)
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        read_dataset(root, "coco")


def test_missing_image_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"images/gone\.jpg.*missing"):
        read_dataset(make(tmp_path, coco_doc("images/gone.jpg")), "coco")


def test_box_outside_the_image_is_refused(tmp_path: Path) -> None:
    doc = coco_doc()
    doc["annotations"][0]["bbox"] = [200, 100, 10, 10]
    with pytest.raises(DatasetError, match="no area inside the 100x50 image"):
        read_dataset(make(tmp_path, doc), "coco")


def test_not_a_coco_document(tmp_path: Path) -> None:
    make(tmp_path, coco_doc())
    (tmp_path / "annotations.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="not a COCO annotations file"):
        read_dataset(tmp_path, "coco")


def _with(doc: dict[str, Any], part: str, **fields: Any) -> dict[str, Any]:
    doc[part][0].update(fields)
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_with(coco_doc(), "images", id=[1]), r"images\[0\] 'id' must be an integer or a string, found \[1\]"),
        (_with(coco_doc(), "images", id={"a": 1}), r"images\[0\] 'id' must be an integer or a string"),
        (_with(coco_doc(), "annotations", image_id=[1]), r"annotations\[0\] 'image_id' must be an integer"),
        (_with(coco_doc(), "annotations", category_id=[3]), r"annotations\[0\] 'category_id' must be an integer"),
        (_with(coco_doc(), "categories", id=[3]), r"categories\[0\] 'id' must be an integer or a string"),
        (_with(coco_doc(), "categories", name=["gap"]), r"categories\[0\] 'name' must be text"),
        (_with(coco_doc(), "images", file_name=["a.jpg"]), r"images\[0\] 'file_name' must be text"),
        (_with(coco_doc(), "annotations", bbox=None, segmentation=[1, 2, 3, 4]), r"must be a list of polygons"),
        (_with(coco_doc(), "annotations", bbox=None, segmentation=[["a", "b"]]), r"at least 3 x,y number pairs"),
        (_with(coco_doc(), "annotations", bbox=None, segmentation=[[]]), r"at least 3 x,y number pairs"),
        (_with(coco_doc(), "annotations", bbox=None, segmentation=[[1, 2, 3]]), r"at least 3 x,y number pairs"),
        (coco_doc(file_name="x" * 300 + ".jpg"), r"images\[0\]: image path 'x+'\.\.\. has a name longer than 255"),
        (coco_doc(file_name="a\x00.jpg"), r"images\[0\]: image path .* contains a NUL byte"),
    ],
)
def test_malformed_shapes_are_refused_naming_the_field(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    # Each of these was a TypeError, ValueError or OSError (a 500 on the device's and the trainer's import).
    make(tmp_path, doc)
    with pytest.raises(DatasetError, match=message):
        read_dataset(tmp_path, "coco")


def test_polygons_without_a_bbox_give_their_bounding_box(tmp_path: Path) -> None:
    doc = _with(coco_doc(), "annotations", bbox=None, segmentation=[[10, 5, 50, 5, 50, 25, 10, 25]])
    ds = read_dataset(make(tmp_path, doc), "coco")
    box = ds.samples[0].boxes[0]
    assert (box.label, box.x1, box.y1, box.x2, box.y2) == ("gap", 0.1, 0.1, 0.5, 0.5)
