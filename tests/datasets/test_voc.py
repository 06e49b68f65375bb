"""Pascal VOC reading: 1-based pixel coordinates, splits, tags, and malformed XML refused naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.datasets.formats import detect_format, read_dataset
from edge.errors import DatasetError
from tests.datasets.conftest import write_image

XML = """<annotation>
  <filename>{filename}</filename>
  <size><width>100</width><height>50</height><depth>3</depth></size>
  <object><name>gap</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>100</xmax><ymax>50</ymax></bndbox></object>
  <object><name>full</name><bndbox><xmin>11</xmin><ymin>6</ymin><xmax>50</xmax><ymax>25</ymax></bndbox></object>
  <tags><tag>blurry</tag></tags>
</annotation>
"""


def make(root: Path, xml: str | None = None, filename: str = "a.jpg") -> Path:
    write_image(root / "JPEGImages" / "a.jpg", 100, 50)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "Annotations" / "a.xml").write_text(xml if xml is not None else XML.format(filename=filename))
    return root


def test_one_based_inclusive_pixels_tags_and_splits(tmp_path: Path) -> None:
    make(tmp_path)
    write_image(tmp_path / "JPEGImages" / "b.jpg", seed=2)
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("a\n")
    (tmp_path / "ImageSets" / "Main" / "trainval.txt").write_text("a\nb\n")
    assert detect_format(tmp_path) == "voc"
    ds = read_dataset(tmp_path, "voc")
    assert ds.label_names == ["blurry", "full", "gap"], "sorted without labels.txt"
    by_name = {s.name: s for s in ds.samples}
    a = by_name["JPEGImages/a.jpg"]
    assert a.split == "val" and a.tags == ["blurry"]
    assert a.boxes[0].as_tuple() == pytest.approx((0.0, 0.0, 1.0, 1.0)), "xmin=1..xmax=W covers the image"
    assert a.boxes[1].as_tuple() == pytest.approx((0.1, 0.1, 0.5, 0.5))
    assert by_name["JPEGImages/b.jpg"].boxes == [], "an image without XML is kept, unannotated"


def test_labels_txt_gives_the_order(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "labels.txt").write_text("gap\nfull\nblurry\n")
    assert read_dataset(tmp_path, "voc").label_names == ["gap", "full", "blurry"]


def test_truncated_xml_names_the_file(tmp_path: Path) -> None:
    make(tmp_path, XML.format(filename="a.jpg")[:150])
    with pytest.raises(DatasetError, match=r"a\.xml: malformed or truncated XML"):
        read_dataset(tmp_path, "voc")


def test_entities_are_refused(tmp_path: Path) -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><annotation>&x;</annotation>'
    make(tmp_path, bomb)
    with pytest.raises(DatasetError, match="DTDs and entities are not allowed"):
        read_dataset(tmp_path, "voc")


def test_missing_image_and_escaping_filename(tmp_path: Path) -> None:
    make(tmp_path, filename="zzz.jpg")
    (tmp_path / "JPEGImages" / "a.jpg").unlink()
    with pytest.raises(DatasetError, match=r"a\.xml: image file 'zzz.jpg' is missing"):
        read_dataset(tmp_path, "voc")
    (tmp_path / "Annotations" / "a.xml").write_text(XML.format(filename="../../etc/passwd"))
    with pytest.raises(DatasetError, match=r"a\.xml: .*'\.\.'"):
        read_dataset(tmp_path, "voc")


def test_bad_coordinates_name_the_file(tmp_path: Path) -> None:
    make(tmp_path, XML.format(filename="a.jpg").replace("<xmax>50</xmax>", "<xmax>fifty</xmax>"))
    with pytest.raises(DatasetError, match=r"a\.xml: <xmax> is not a number"):
        read_dataset(tmp_path, "voc")
    make(tmp_path, XML.format(filename="a.jpg").replace("<xmax>50</xmax>", "<xmax>5</xmax>"))
    with pytest.raises(DatasetError, match=r"a\.xml: object 'full' has an empty box"):
        read_dataset(tmp_path, "voc")


def test_image_in_two_split_files_is_refused(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("a\n")
    with pytest.raises(DatasetError, match=r"test\.txt:1: 'a' is also listed in train\.txt"):
        read_dataset(tmp_path, "voc")
