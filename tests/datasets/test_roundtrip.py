"""Every format written and read back keeps every image, label, tag, split and (where the format has them) box."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.datasets.formats import FORMATS, detect_format, read_dataset, write_dataset
from edge.datasets.model import Dataset
from edge.errors import DatasetError
from tests.datasets.conftest import LABELS, digest

BOX_FORMATS = ("coco", "yolo", "voc")
TOLERANCE = 1e-4


def by_content(ds: Dataset) -> dict[str, tuple]:
    """sha256 of the image -> (tags, sorted boxes, split): what a round trip must keep."""
    out = {}
    for s in ds.samples:
        boxes = sorted((b.label, *b.as_tuple()) for b in s.boxes)
        out[digest(s.path)] = (sorted(s.tags), boxes, s.split)
    return out


def assert_same(expected: Dataset, actual: Dataset, *, boxes: bool) -> None:
    want, got = by_content(expected), by_content(actual)
    assert set(got) == set(want), "every image comes back, and no other"
    for key, (tags, want_boxes, split) in want.items():
        got_tags, got_boxes, got_split = got[key]
        assert got_tags == tags
        assert got_split == split
        if not boxes:
            assert got_boxes == []
            continue
        assert len(got_boxes) == len(want_boxes)
        for w, g in zip(want_boxes, got_boxes, strict=True):
            assert g[0] == w[0]
            assert g[1:] == pytest.approx(w[1:], abs=TOLERANCE)


def assert_valid_samples(ds: Dataset, root: Path) -> None:
    names = [s.name for s in ds.samples]
    assert len(names) == len(set(names)), "names are unique"
    for s in ds.samples:
        assert s.path.is_absolute() and s.path.is_file()
        assert s.path.is_relative_to(root.resolve())
        assert (root / s.name).resolve() == s.path


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_everything(fmt: str, source_dataset: Dataset, tmp_path: Path) -> None:
    out = tmp_path / f"out-{fmt}"
    write_dataset(source_dataset, out, fmt)
    assert detect_format(out) == fmt
    back = read_dataset(out, fmt)
    assert back.label_names == LABELS, "label order (= numeric ids) is preserved"
    assert_same(source_dataset, back, boxes=fmt in BOX_FORMATS)
    assert_valid_samples(back, out)
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name], "no staging folder is left"


def test_round_trip_keeps_labels_without_images(source_dataset: Dataset, tmp_path: Path) -> None:
    source_dataset.ensure_label("durian")
    for fmt in FORMATS:
        write_dataset(source_dataset, tmp_path / fmt, fmt)
        assert read_dataset(tmp_path / fmt, fmt).label_names == [*LABELS, "durian"]


def test_cross_format_chain_keeps_boxes(source_dataset: Dataset, tmp_path: Path) -> None:
    current = source_dataset
    for step, fmt in enumerate(("yolo", "coco", "voc", "yolo")):
        out = tmp_path / f"{step}-{fmt}"
        write_dataset(current, out, fmt)
        current = read_dataset(out, fmt)
    assert current.label_names == LABELS
    assert_same(source_dataset, current, boxes=True)
    assert sum(len(s.boxes) for s in current.samples) == 7


def test_coco_keeps_label_description_and_colour(source_dataset: Dataset, tmp_path: Path) -> None:
    source_dataset.labels[0].description = "red or green, round"
    source_dataset.labels[0].color = "#ff0000"
    write_dataset(source_dataset, tmp_path / "c", "coco")
    back = read_dataset(tmp_path / "c", "coco")
    assert (back.labels[0].description, back.labels[0].color) == ("red or green, round", "#ff0000")


def test_write_refuses_a_non_empty_folder(source_dataset: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        write_dataset(source_dataset, out, "yolo")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_write_into_an_existing_empty_folder(source_dataset: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    write_dataset(source_dataset, out, "csv")
    assert len(read_dataset(out, "csv").samples) == len(source_dataset.samples)


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_write_leaves_nothing(fmt: str, source_dataset: Dataset, tmp_path: Path) -> None:
    source_dataset.samples[-1].path.unlink()
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="missing"):
        write_dataset(source_dataset, out, fmt)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


def test_folders_refuses_labels_that_are_not_folder_names(source_dataset: Dataset, tmp_path: Path) -> None:
    source_dataset.ensure_label("a/b")
    with pytest.raises(DatasetError, match="folder name"):
        write_dataset(source_dataset, tmp_path / "out", "folders")
    assert not (tmp_path / "out").exists()


def test_unknown_format_is_refused(source_dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset format"):
        write_dataset(source_dataset, tmp_path / "out", "tfrecord")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        read_dataset(tmp_path, "tfrecord")


def test_option_for_another_format_is_refused(source_dataset: Dataset, tmp_path: Path) -> None:
    write_dataset(source_dataset, tmp_path / "y", "yolo")
    with pytest.raises(DatasetError, match="path_column"):
        read_dataset(tmp_path / "y", "yolo", path_column="file")
    assert len(read_dataset(tmp_path / "y", "yolo", path_column=None).samples) == 9


def test_detect_format_refuses_what_it_cannot_tell(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="cannot tell"):
        detect_format(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        detect_format(tmp_path / "nope")


@pytest.mark.parametrize("fmt", FORMATS)
def test_files_without_suffix_get_one_from_their_content(fmt: str, source_dataset: Dataset, tmp_path: Path) -> None:
    for i, sample in enumerate(source_dataset.samples):
        bare = tmp_path / "blobs" / f"{i:02d}{digest(sample.path)[:12]}"
        bare.parent.mkdir(exist_ok=True)
        sample.path.rename(bare)
        sample.path, sample.name = bare, bare.name
    write_dataset(source_dataset, tmp_path / "out", fmt)
    back = read_dataset(tmp_path / "out", fmt)
    assert len(back.samples) == len(source_dataset.samples)
    assert {Path(s.name).suffix for s in back.samples} == {".jpg", ".png"}
    assert_same(source_dataset, back, boxes=fmt in BOX_FORMATS)
