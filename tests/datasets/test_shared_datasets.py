"""The real datasets in ../shared read as their documented formats."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from edge.datasets.formats import detect_format, read_dataset, write_dataset


def test_empty_shelf_reads_as_yolo_and_survives_coco(shared_dir: Path, tmp_path: Path) -> None:
    root = shared_dir / "datasets" / "empty_shelf"
    assert detect_format(root) == "yolo"
    ds = read_dataset(root, "yolo")
    assert len(ds.samples) == 252
    assert ds.label_names == ["empty_shelf"]
    # One box per non-empty label line; the files lack a final newline, so `cat *.txt | wc -l` undercounts (491).
    lines = sum(
        1 for f in (root / "train" / "labels").glob("*.txt") for line in f.read_text().splitlines() if line.strip()
    )
    assert lines == 743
    assert ds.counts() == {"empty_shelf": {"images": 0, "boxes": 743}}
    assert {s.split for s in ds.samples} == {"train"}
    assert all(0 <= b.x1 < b.x2 <= 1 and 0 <= b.y1 < b.y2 <= 1 for s in ds.samples for b in s.boxes)

    write_dataset(ds, tmp_path / "coco", "coco")
    back = read_dataset(tmp_path / "coco", "coco")
    assert len(back.samples) == 252
    assert back.counts() == {"empty_shelf": {"images": 0, "boxes": 743}}


def test_grocery5_reads_as_folders_with_its_five_classes(shared_dir: Path) -> None:
    root = shared_dir / "datasets" / "grocery5"
    assert detect_format(root) == "folders"
    ds = read_dataset(root, "folders")
    assert ds.label_names == ["Avocado", "Banana", "Carrots", "Kiwi", "Lemon"]
    # Counted from the folders themselves (shared/ gained test/, other visits, after this test was written).
    on_disk = {
        split.name: sum(1 for f in split.rglob("*") if f.suffix.lower() in {".jpg", ".jpeg", ".png"})
        for split in root.iterdir()
        if split.is_dir()
    }
    assert on_disk["train"] == 217 and on_disk["val"] == 26
    assert Counter(s.split for s in ds.samples) == on_disk
    assert len(ds.samples) == sum(on_disk.values())
    assert all(len(s.tags) == 1 for s in ds.samples)

    # Its train.txt is a header-less CSV (path, class id, coarse id) naming ids through classes.csv: same labels.
    from_csv = read_dataset(root / "train.txt", "csv", labels=root / "classes.csv")
    folder_tags = {s.name: s.tags for s in ds.samples if s.split == "train"}
    assert {s.name: s.tags for s in from_csv.samples} == folder_tags
