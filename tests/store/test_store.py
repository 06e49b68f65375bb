"""The dataset store against real SQLite files and real image files."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import pytest

from edge.config import DatasetRulesConfig, ZoneConfig
from edge.datasets.model import Box, Dataset, LabelInfo, Sample
from edge.errors import (
    AnnotationError,
    ConflictError,
    DatasetError,
    ImageError,
    ImageTooLargeError,
    NotFoundError,
    ShelfwatchError,
    StoreError,
)
from edge.store import DatasetStore, image_rows
from edge.store.images import TEMP_PREFIX
from edge.store.schema import SCHEMA_VERSION
from tests.helpers.store import dataset_fingerprint, stored_bytes
from tests.store.helpers import encode, image_array, image_bytes


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    s = DatasetStore(tmp_path / "data")
    yield s
    s.close()


def stored_files(store: DatasetStore) -> list[Path]:
    return sorted(p for p in store.images_dir.rglob("*") if p.is_file())


def row_count(store: DatasetStore, table: str) -> int:
    with sqlite3.connect(store.db_path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# -- opening ------------------------------------------------------------------------------------------------------


def test_new_store_uses_wal_foreign_keys_and_records_its_schema(store: DatasetStore) -> None:
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    assert store._db._conn is not None
    assert store._db._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    DatasetStore(tmp_path).close()
    with sqlite3.connect(tmp_path / "shelfwatch.db") as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(StoreError, match="schema version 99"):
        DatasetStore(tmp_path)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shelfwatch.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        DatasetStore(tmp_path)


def test_a_closed_store_says_so(store: DatasetStore) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_labels()


def test_reopening_finds_everything(tmp_path: Path) -> None:
    with DatasetStore(tmp_path) as first:
        first.create_label("low", "little stock left", "#112233")
        rec = first.add_image(image_bytes(1), filename="one.jpg", camera="aisle3", split="train")
        first.set_annotations(rec.id, ["low"], [Box("low", 0.1, 0.2, 0.3, 0.4)])
        first.set_setting("web.theme", {"dark": True})
        first.set_zones("aisle3", [ZoneConfig(id="a", polygon=[(0, 0), (1, 0), (1, 1)])])
        fingerprint = dataset_fingerprint(first)
    with DatasetStore(tmp_path) as again:
        got = again.get_image(rec.id)
        assert (got.filename, got.camera, got.split, got.tags) == ("one.jpg", "aisle3", "train", ["low"])
        assert got.boxes == [Box("low", 0.1, 0.2, 0.3, 0.4)]
        assert stored_bytes(again, rec.id) == image_bytes(1)
        assert again.list_labels()[0].description == "little stock left"
        assert again.get_setting("web.theme") == {"dark": True}
        zones = again.get_zones("aisle3")
        assert zones is not None and zones[0].id == "a"
        assert dataset_fingerprint(again) == fingerprint


# -- images -------------------------------------------------------------------------------------------------------


def test_add_image_stores_the_file_by_content_hash(store: DatasetStore) -> None:
    data = image_bytes(1, ".png", width=40, height=30)
    when = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    rec = store.add_image(data, filename="shelf.png", camera="aisle3", captured_at=when)
    assert (rec.width, rec.height, rec.split, rec.duplicate_of) == (40, 30, "auto", None)
    assert rec.captured_at == "2026-05-01T10:00:00.000Z"
    assert store.image_path(rec.id) == store.images_dir / rec.sha256[:2] / f"{rec.sha256}.png"
    assert stored_bytes(store, rec.id) == data
    assert len(rec.phash) == 16
    as_dict = rec.as_dict()
    assert as_dict["id"] == rec.id and as_dict["boxes"] == [] and as_dict["tagged"] is False
    assert store.add_image(image_bytes(2)).filename is None
    with pytest.raises(ImageError, match=r"^image: "):
        store.add_image(b"junk")


def test_exact_duplicate_returns_the_stored_record_and_stores_nothing(store: DatasetStore) -> None:
    first = store.add_image(image_bytes(1), filename="a.jpg")
    again = store.add_image(image_bytes(1), filename="copy.jpg")
    assert again.id == first.id
    assert again.duplicate_of == first.id
    assert again.filename == "a.jpg"
    assert store.list_images()[1] == 1
    assert len(stored_files(store)) == 1


def test_near_duplicate_is_stored_and_points_at_the_closest_image(store: DatasetStore) -> None:
    original = store.add_image(image_bytes(1), filename="a.jpg")
    store.add_image(image_bytes(2), filename="other.jpg")
    brighter = store.add_image(encode(cv2.add(image_array(1), 30), ".jpg", 70), filename="a-bright.jpg")
    assert brighter.id != original.id
    assert brighter.duplicate_of == original.id
    assert store.get_image(brighter.id).duplicate_of == original.id
    summary = store.summary()
    assert summary["near_duplicates"] == [[brighter.id, original.id]]
    assert any("near-duplicate" in w for w in summary["warnings"])


def test_near_duplicate_distance_zero_reports_only_identical_hashes(tmp_path: Path) -> None:
    with DatasetStore(tmp_path, DatasetRulesConfig(near_duplicate_distance=0)) as strict:
        strict.add_image(image_bytes(1))
        rec = strict.add_image(encode(cv2.add(image_array(2), 30), ".png"))
        assert rec.duplicate_of is None


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"not an image at all", ImageError),
        (image_bytes(1)[:300], ImageError),  # truncated
        (image_bytes(1, ".png", width=400, height=400), ImageTooLargeError),  # over max_image_mb below
    ],
)
def test_refused_images_store_nothing(tmp_path: Path, data: bytes, error: type[Exception]) -> None:
    with DatasetStore(tmp_path, DatasetRulesConfig(max_image_mb=0.1)) as small:
        with pytest.raises(error, match=r"upload\.jpg"):
            small.add_image(data, filename="upload.jpg")
        assert small.list_images()[1] == 0
        assert stored_files(small) == []


def test_too_many_pixels_is_too_large(tmp_path: Path) -> None:
    with DatasetStore(tmp_path, DatasetRulesConfig(max_pixels=1000)) as small:
        with pytest.raises(ImageTooLargeError, match="64x48"):
            small.add_image(image_bytes(1), filename="x.jpg")


def test_add_images_is_all_or_nothing(store: DatasetStore) -> None:
    good = [(f"ok{i}.jpg", image_bytes(i)) for i in range(3)]
    with pytest.raises(ImageError, match=r"broken\.jpg"):
        store.add_images([*good, ("broken.jpg", b"\xff\xd8\xff garbage")])
    assert store.list_images()[1] == 0
    assert stored_files(store) == []
    records = store.add_images(good, camera="c1", split="train")
    assert [r.filename for r in records] == ["ok0.jpg", "ok1.jpg", "ok2.jpg"]
    assert {r.camera for r in records} == {"c1"} and {r.split for r in records} == {"train"}


def test_a_failure_while_storing_rolls_back_rows_and_files(
    store: DatasetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_image(image_bytes(1))
    with pytest.raises(AnnotationError):
        store.add_images([("a.jpg", image_bytes(2))], split="nonsense")
    # Fail inside the transaction, after the first file was written: a NOT NULL violation on the second insert.
    real_insert = image_rows.insert
    calls = {"n": 0}

    def failing_insert(*args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise sqlite3.IntegrityError("simulated failure")
        return real_insert(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(image_rows, "insert", failing_insert)
    with pytest.raises(sqlite3.IntegrityError):
        store.add_images([("b.jpg", image_bytes(3)), ("c.jpg", image_bytes(4))])
    monkeypatch.setattr(image_rows, "insert", real_insert)
    assert store.list_images()[1] == 1
    assert len(stored_files(store)) == 1


def test_no_temp_files_remain_after_adding(store: DatasetStore) -> None:
    for i in range(5):
        store.add_image(image_bytes(i))
    assert not [p for p in store.images_dir.rglob(f"{TEMP_PREFIX}*")]
    assert len(stored_files(store)) == 5


def test_unknown_images_raise_not_found(store: DatasetStore) -> None:
    for call in (store.get_image, store.image_path, lambda i: stored_bytes(store, i), store.get_annotations):
        with pytest.raises(NotFoundError, match="image 42"):
            call(42)
    with pytest.raises(NotFoundError, match="image 42"):
        store.set_annotations(42, [], [])


def test_paging_and_filters(store: DatasetStore) -> None:
    store.create_label("low")
    store.create_label("ok")
    ids = [store.add_image(image_bytes(i), camera="a" if i < 7 else "b").id for i in range(12)]
    store.set_annotations(ids[0], ["low"], [])
    store.set_annotations(ids[1], [], [Box("low", 0, 0, 0.5, 0.5)])
    store.set_annotations(ids[2], ["ok"], [])
    store.set_split(ids[:3], "train")

    page1, total = store.list_images(page=1, page_size=5)
    page3, _ = store.list_images(page=3, page_size=5)
    assert total == 12
    assert [r.id for r in page1] == ids[::-1][:5]  # newest first
    assert [r.id for r in page3] == ids[:2][::-1]
    assert store.list_images(page=4, page_size=5) == ([], 12)
    oldest, _ = store.list_images(page_size=2, newest_first=False)
    assert [r.id for r in oldest] == ids[:2]

    assert store.list_images(tagged=True)[1] == 3
    assert store.list_images(tagged=False)[1] == 9
    assert {r.id for r in store.list_images(label="low")[0]} == {ids[0], ids[1]}
    assert store.list_images(label="LOW")[1] == 2  # label names are case-insensitive
    assert store.list_images(split="train")[1] == 3
    assert store.list_images(camera="b")[1] == 5
    assert store.list_images(camera="a", tagged=True, label="ok")[1] == 1
    with_boxes = store.list_images(label="low", tagged=True)[0]
    assert next(r for r in with_boxes if r.id == ids[1]).boxes == [Box("low", 0, 0, 0.5, 0.5)]
    with pytest.raises(NotFoundError, match="label 'nope'"):
        store.list_images(label="nope")
    with pytest.raises(AnnotationError, match="split"):
        store.list_images(split="validation")
    # Out-of-range paging is clamped, not an error.
    assert len(store.list_images(page=0, page_size=100_000)[0]) == 12


def test_delete_removes_rows_annotations_and_unused_files(store: DatasetStore) -> None:
    store.create_label("low")
    keep = store.add_image(image_bytes(1))
    gone = [store.add_image(image_bytes(i)).id for i in (2, 3)]
    store.set_annotations(gone[0], ["low"], [Box("low", 0.1, 0.1, 0.2, 0.2)])
    near = store.add_image(encode(cv2.add(image_array(2), 30), ".png"))
    assert near.duplicate_of == gone[0]
    paths = [store.image_path(i) for i in gone]
    assert store.delete_images([*gone, 999]) == 2
    assert not any(p.exists() for p in paths)
    assert store.image_path(keep.id).exists()
    assert row_count(store, "image_tags") == 0 and row_count(store, "boxes") == 0
    assert store.get_image(near.id).duplicate_of is None  # its original is gone
    assert store.list_labels()[0].images == 0
    assert not list(store.images_dir.rglob(f"{TEMP_PREFIX}*"))
    assert store.delete_images([]) == 0
    # The same content can come back after deletion (a new row and file; the brightened copy is its near-duplicate).
    back = store.add_image(image_bytes(2))
    assert back.id not in gone and back.duplicate_of == near.id
    assert store.image_path(back.id).exists()


def test_set_split_validates_split_and_ids(store: DatasetStore) -> None:
    a = store.add_image(image_bytes(1)).id
    store.set_split([a], "val")
    assert store.get_image(a).split == "val"
    with pytest.raises(AnnotationError, match="split 'holdout'"):
        store.set_split([a], "holdout")
    with pytest.raises(NotFoundError, match="77"):
        store.set_split([a, 77], "test")
    assert store.get_image(a).split == "val"


def test_auto_split_is_stratified_by_label_and_keeps_manual_choices(store: DatasetStore) -> None:
    for name in ("ok", "low", "rare"):
        store.create_label(name)
    ids: dict[str, list[int]] = {"ok": [], "low": [], "rare": []}
    seed = 0
    for name, n in (("ok", 40), ("low", 10), ("rare", 5)):
        for _ in range(n):
            image_id = store.add_image(image_bytes(seed)).id
            seed += 1
            store.set_annotations(image_id, [name], [])
            ids[name].append(image_id)
    untagged = store.add_image(image_bytes(999)).id
    manual = ids["ok"][0]
    store.set_split([manual], "val")

    counts = store.auto_split(0.2, seed=1)
    assert sum(counts.values()) == 56 and counts["auto"] == 0 and counts["val"] == 1
    for name, expected_test in (("ok", 8), ("low", 2), ("rare", 1)):
        splits = [store.get_image(i).split for i in ids[name] if i != manual]
        assert splits.count("test") == expected_test, name
        assert splits.count("train") == len(splits) - expected_test
    assert store.get_image(manual).split == "val"
    assert store.get_image(untagged).split == "train"  # a lone image in its stratum goes to train

    # only_auto=False re-splits everything, the manual choice included, and is deterministic for a seed.
    again = store.auto_split(0.2, seed=1, only_auto=False)
    assert again["val"] == 0 and again["test"] == 11
    first = {i: store.get_image(i).split for group in ids.values() for i in group}
    store.auto_split(0.2, seed=1, only_auto=False)
    assert first == {i: store.get_image(i).split for group in ids.values() for i in group}
    with pytest.raises(AnnotationError, match="test_fraction"):
        store.auto_split(1.5)


# -- annotations --------------------------------------------------------------------------------------------------


def test_set_annotations_replaces_both_and_returns_canonical_names(store: DatasetStore) -> None:
    store.create_label("Low stock")
    store.create_label("ok")
    image_id = store.add_image(image_bytes(1)).id
    first = store.set_annotations(image_id, ["low STOCK", "ok", "ok"], [Box("ok", 0.0, 0.0, 1.0, 1.0)])
    assert first.tags == ["Low stock", "ok"]
    second = store.set_annotations(image_id, [], [Box("low stock", 0.25, 0.25, 0.75, 0.5)])
    assert second.tags == [] and second.boxes == [Box("Low stock", 0.25, 0.25, 0.75, 0.5)]
    assert store.get_annotations(image_id) == second
    assert second.as_dict() == {
        "tags": [],
        "boxes": [{"label": "Low stock", "x1": 0.25, "y1": 0.25, "x2": 0.75, "y2": 0.5}],
        "nothing_to_box": False,
    }


def test_nothing_to_box_counts_as_tagged_and_is_exported_without_boxes(store: DatasetStore) -> None:
    """A detection photo with no gaps is marked "nothing to box": tagged in the library, the summary and the
    export (a negative photo, no boxes); drawing a box later clears the mark; the mark refuses boxes."""
    store.create_label("gap")
    empty = store.add_image(image_bytes(1)).id
    untouched = store.add_image(image_bytes(2)).id
    saved = store.set_annotations(empty, [], [], nothing_to_box=True)
    assert saved.nothing_to_box and store.get_annotations(empty).nothing_to_box
    assert store.get_image(empty).tagged and not store.get_image(untouched).tagged
    tagged, _ = store.list_images(page=1, page_size=10, tagged=True)
    assert [r.id for r in tagged] == [empty]
    assert store.summary("detection")["tagged"] == 1
    exported = store.export_dataset(only_tagged=True)
    assert len(exported.samples) == 1 and exported.samples[0].boxes == [] and exported.samples[0].tags == []
    with pytest.raises(AnnotationError, match="nothing_to_box"):
        store.set_annotations(empty, [], [Box("gap", 0.1, 0.1, 0.2, 0.2)], nothing_to_box=True)
    assert store.get_image(empty).nothing_to_box  # refused: nothing changed
    store.set_annotations(empty, [], [Box("gap", 0.1, 0.1, 0.2, 0.2)])
    assert not store.get_image(empty).nothing_to_box
    store.set_annotations(empty, [], [])
    assert not store.get_image(empty).tagged


@pytest.mark.parametrize(
    ("tags", "boxes", "message"),
    [
        (["ghost"], [], "tag 'ghost' is not a label"),
        ([], [Box("ghost", 0.1, 0.1, 0.2, 0.2)], "label 'ghost' does not exist"),
        ([], [Box("low", -0.1, 0.1, 0.2, 0.2)], "x1=-0.1 is outside"),
        ([], [Box("low", 0.1, 0.1, 1.2, 0.2)], "x2=1.2 is outside"),
        ([], [Box("low", 0.5, 0.1, 0.2, 0.2)], "x1=0.5 must be less than x2=0.2"),
        ([], [Box("low", 0.1, 0.3, 0.2, 0.3)], "y1=0.3 must be less than y2=0.3"),
        ([], [Box("low", float("nan"), 0.1, 0.2, 0.2)], "finite number"),
        ([], [Box("low", "0.1", 0.1, 0.2, 0.2)], "finite number"),  # type: ignore[arg-type]
        ([], [{"label": "low"}], "expected a box"),
    ],
)
def test_bad_annotations_are_refused_and_keep_the_old_ones(
    store: DatasetStore, tags: list[str], boxes: list[Box], message: str
) -> None:
    store.create_label("low")
    image_id = store.add_image(image_bytes(1)).id
    kept = store.set_annotations(image_id, ["low"], [Box("low", 0.1, 0.1, 0.9, 0.9)])
    with pytest.raises(AnnotationError, match=message):
        store.set_annotations(image_id, tags, boxes)
    assert store.get_annotations(image_id) == kept


# -- labels -------------------------------------------------------------------------------------------------------


def test_label_lifecycle_with_counts(store: DatasetStore) -> None:
    low = store.create_label("low", "shelf nearly empty")
    none = store.create_label("NONE", "anything else", "#ABCDEF")
    assert low.color.startswith("#") and none.color == "#abcdef"
    image_id = store.add_image(image_bytes(1)).id
    store.set_annotations(image_id, ["low"], [Box("low", 0, 0, 0.5, 0.5), Box("low", 0.5, 0.5, 1, 1)])
    counts = {lab.name: (lab.images, lab.boxes) for lab in store.list_labels()}
    assert counts == {"low": (1, 2), "NONE": (0, 0)}

    renamed = store.update_label("low", new_name="low_stock", description="few products left")
    assert (renamed.name, renamed.description, renamed.images, renamed.boxes) == (
        "low_stock",
        "few products left",
        1,
        2,
    )
    assert store.get_annotations(image_id).tags == ["low_stock"]
    assert store.update_label("low_stock", new_name="LOW_STOCK").name == "LOW_STOCK"  # case change of itself
    assert store.update_label("NONE", color="#000000").color == "#000000"
    assert store.get_label("none").name == "NONE"


def test_label_errors(store: DatasetStore) -> None:
    store.create_label("low")
    store.create_label("ok")
    with pytest.raises(ConflictError, match="'low' already exists"):
        store.create_label("LOW")
    with pytest.raises(ConflictError, match="'ok' already exists"):
        store.update_label("low", new_name="ok")
    with pytest.raises(NotFoundError, match="'ghost'"):
        store.update_label("ghost", description="x")
    with pytest.raises(NotFoundError, match="'ghost'"):
        store.delete_label("ghost")
    for bad in ("", "   ", "a/b", "..", "x" * 65, "tab\there"):
        with pytest.raises(AnnotationError):
            store.create_label(bad)
    with pytest.raises(AnnotationError, match="#rrggbb"):
        store.create_label("blue", color="blue")
    assert [lab.name for lab in store.list_labels()] == ["low", "ok"]


def test_deleting_a_label_in_use_needs_force(store: DatasetStore) -> None:
    store.create_label("low")
    image_id = store.add_image(image_bytes(1)).id
    store.set_annotations(image_id, ["low"], [Box("low", 0, 0, 0.5, 0.5)])
    with pytest.raises(ConflictError, match="used by 1 image tags and 1 boxes"):
        store.delete_label("low")
    assert store.get_annotations(image_id).tags == ["low"]
    store.delete_label("low", force=True)
    assert store.list_labels() == []
    assert store.get_annotations(image_id).boxes == []
    store.create_label("unused")
    store.delete_label("unused")
    assert store.list_labels() == []


# -- dataset ------------------------------------------------------------------------------------------------------


def test_summary_counts_and_verdict_for_classification(store: DatasetStore) -> None:
    store.create_label("low")
    store.create_label("none")
    for i in range(16):
        image_id = store.add_image(image_bytes(i)).id
        store.set_annotations(image_id, ["low" if i % 2 else "none"], [])
    store.add_image(image_bytes(100))
    summary = store.summary()
    assert summary["task"] == "classification"
    assert (summary["images"], summary["tagged"], summary["untagged"]) == (17, 16, 1)
    assert summary["per_label"] == {"low": {"images": 8, "boxes": 0}, "none": {"images": 8, "boxes": 0}}
    assert summary["ready"] is True and summary["problems"] == []
    assert summary["splits"] == {"train": 0, "val": 0, "test": 0, "auto": 17}
    # Asking for detection on the same data: no boxes, not ready, and it says why.
    detection = store.summary("detection")
    assert detection["ready"] is False
    assert any("'low' has 0 boxes" in p for p in detection["problems"])


def test_summary_infers_detection_when_boxes_exist(store: DatasetStore) -> None:
    store.create_label("empty")
    image_id = store.add_image(image_bytes(1)).id
    store.set_annotations(image_id, [], [Box("empty", 0, 0, 0.5, 0.5)])
    summary = store.summary()
    assert summary["task"] == "detection" and summary["boxes"] == 1
    assert summary["ready"] is False
    assert any("1 tagged images" in p for p in summary["problems"])


def _hand_built_dataset(tmp_path: Path) -> Dataset:
    files = tmp_path / "src"
    files.mkdir()
    samples = []
    for i in range(6):
        path = files / f"img{i}.{'png' if i % 2 else 'jpg'}"
        path.write_bytes(image_bytes(50 + i, path.suffix))
        tags = ["ok"] if i < 3 else []
        boxes = [Box("Low", 0.1, 0.1, 0.5, 0.5), Box("Low", -0.001, 0.2, 1.0004, 0.9)] if i >= 3 else []
        samples.append(Sample(path=path, name=f"sub/img{i}{path.suffix}", tags=tags, boxes=boxes, split="train"))
    samples[0].split = "test"
    samples[1].split = "weird"
    return Dataset(labels=[LabelInfo("ok", "all stocked", "#00ff00"), LabelInfo("Low", color="red")], samples=samples)


def test_import_and_export_keep_every_image_label_box_and_split(store: DatasetStore, tmp_path: Path) -> None:
    ds = _hand_built_dataset(tmp_path)
    stats = store.import_dataset(ds)
    assert stats == {"images": 6, "duplicates": 0, "boxes": 6, "tags": 3, "labels": 2}
    labels = store.list_labels()
    assert (labels[0].name, labels[0].description, labels[0].color) == ("ok", "all stocked", "#00ff00")
    assert labels[1].color.startswith("#")  # "red" is no #rrggbb: a palette colour instead
    assert store.summary()["splits"] == {"train": 4, "val": 0, "test": 1, "auto": 1}
    clamped = store.list_images(label="Low", newest_first=False)[0][0].boxes[1]
    assert (clamped.x1, clamped.x2) == (0.0, 1.0)

    out = store.export_dataset()
    assert out.label_names == ["ok", "Low"]
    assert len(out.samples) == 6
    assert len({s.name for s in out.samples}) == 6
    assert all("/" not in s.name and s.path.is_file() for s in out.samples)
    assert sum(len(s.boxes) for s in out.samples) == 6 and sum(len(s.tags) for s in out.samples) == 3
    assert {s.name for s in out.samples} >= {"img0.jpg", "img1.png"}
    assert [s.split for s in out.samples][:2] == ["test", "auto"]
    assert len(store.export_dataset(only_tagged=True).samples) == 6

    # Round trip into a second store: same fingerprint.
    with DatasetStore(tmp_path / "second") as second:
        second.import_dataset(out)
        assert dataset_fingerprint(second) == dataset_fingerprint(store)
        assert second.summary()["per_label"] == store.summary()["per_label"]


def test_importing_twice_counts_duplicates_and_does_not_double_boxes(store: DatasetStore, tmp_path: Path) -> None:
    ds = _hand_built_dataset(tmp_path)
    store.import_dataset(ds)
    again = store.import_dataset(ds)
    assert again == {"images": 0, "duplicates": 6, "boxes": 0, "tags": 0, "labels": 0}
    assert store.summary()["boxes"] == 6


def test_import_gives_annotations_to_an_untagged_copy_already_stored(store: DatasetStore, tmp_path: Path) -> None:
    ds = _hand_built_dataset(tmp_path)
    captured = store.add_image(ds.samples[3].path.read_bytes())
    store.import_dataset(ds)
    assert len(store.get_image(captured.id).boxes) == 2


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("corrupt", "sub/img4.jpg: the PNG header is damaged"),
        ("missing", "cannot read"),
        ("box", "x2=1.5 is outside"),
        ("label", "must not contain"),
    ],
)
def test_a_bad_sample_imports_nothing(store: DatasetStore, tmp_path: Path, damage: str, message: str) -> None:
    ds = _hand_built_dataset(tmp_path)
    if damage == "corrupt":
        ds.samples[4].path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    elif damage == "missing":
        ds.samples[4].path.unlink()
    elif damage == "box":
        ds.samples[4].boxes.append(Box("Low", 0.1, 0.1, 1.5, 0.5))
    else:
        ds.samples[4].tags.append("a/b")
    with pytest.raises(ShelfwatchError, match=message) as caught:
        store.import_dataset(ds)
    assert isinstance(caught.value, DatasetError | AnnotationError)
    assert store.summary()["images"] == 0 and store.list_labels() == []
    assert stored_files(store) == []


def test_fingerprint_changes_with_annotations_and_splits(store: DatasetStore) -> None:
    store.create_label("low")
    image_id = store.add_image(image_bytes(1)).id
    empty = dataset_fingerprint(store)
    store.set_annotations(image_id, ["low"], [])
    tagged = dataset_fingerprint(store)
    store.set_split([image_id], "test")
    assert len({empty, tagged, dataset_fingerprint(store)}) == 3
    store.set_split([image_id], "auto")
    assert dataset_fingerprint(store) == tagged


# -- settings and zones -------------------------------------------------------------------------------------------


def test_settings_hold_json_values(store: DatasetStore) -> None:
    assert store.get_setting("missing", 5) == 5
    store.set_setting("k", [1, "two", {"three": 3.0}])
    store.set_setting("k", {"replaced": True})
    assert store.get_setting("k") == {"replaced": True}
    with pytest.raises(ShelfwatchError, match="JSON"):
        store.set_setting("bad", object())


def test_zones_per_camera(store: DatasetStore) -> None:
    assert store.get_zones("aisle3") is None
    zones = [
        ZoneConfig(id="shelf-a", name="Top", polygon=[(0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)], label="low"),
        ZoneConfig(id="shelf-b", polygon=[(0.5, 0.5), (1, 0.5), (1, 1)]),
    ]
    store.set_zones("aisle3", zones)
    assert store.get_zones("aisle3") == zones
    assert store.get_zones("other") is None
    store.set_zones("aisle3", [])
    assert store.get_zones("aisle3") == []
    with pytest.raises(ConflictError, match="shelf-a"):
        store.set_zones("aisle3", [zones[0], zones[0]])
    assert store.get_zones("aisle3") == []


# -- threads ------------------------------------------------------------------------------------------------------


def test_threads_adding_listing_and_tagging_at_once(store: DatasetStore) -> None:
    store.create_label("low")
    errors: list[BaseException] = []
    added: list[int] = []
    lock = threading.Lock()

    def writer(offset: int) -> None:
        try:
            for i in range(8):
                rec = store.add_image(image_bytes(offset * 100 + i), camera=f"cam{offset}")
                store.set_annotations(rec.id, ["low"], [])
                with lock:
                    added.append(rec.id)
        except BaseException as err:  # collected and re-raised in the main thread
            errors.append(err)

    def reader() -> None:
        try:
            for _ in range(20):
                items, total = store.list_images(page_size=10)
                assert len(items) <= total
                store.summary()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(set(added)) == 32
    assert store.summary()["per_label"]["low"]["images"] == 32
    assert len(stored_files(store)) == 32


def test_two_stores_on_one_data_dir_see_each_other(tmp_path: Path) -> None:
    with DatasetStore(tmp_path) as daemon, DatasetStore(tmp_path) as cli:
        rec = daemon.add_image(image_bytes(1), captured_at=datetime.now(UTC))
        assert cli.get_image(rec.id).sha256 == rec.sha256
        assert cli.add_image(image_bytes(1)).duplicate_of == rec.id
