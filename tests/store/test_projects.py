"""Projects in the store, and the migration of a data dir written before projects existed (schema 1)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from edge.datasets.model import Box
from edge.errors import AnnotationError, ConflictError, NotFoundError
from edge.store import DatasetStore
from edge.store.schema import SCHEMA_VERSION
from tests.helpers.store import dataset_fingerprint
from tests.store.helpers import image_bytes

V1_DATA_DIR = Path(__file__).parent / "data" / "v1_data_dir"


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    s = DatasetStore(tmp_path / "data")
    yield s
    s.close()


def test_a_data_dir_written_by_the_old_code_migrates_into_the_default_project(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(V1_DATA_DIR, data)
    with sqlite3.connect(data / "shelfwatch.db") as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 1
        old_labels = conn.execute("SELECT id, name, description, color FROM labels ORDER BY id").fetchall()
        old_images = conn.execute("SELECT id, sha256, filename, camera, split FROM images ORDER BY id").fetchall()
        old_boxes = conn.execute("SELECT image_id, label_id, x1, y1, x2, y2 FROM boxes ORDER BY id").fetchall()
        old_tags = conn.execute("SELECT image_id, label_id FROM image_tags ORDER BY image_id").fetchall()

    with DatasetStore(data) as store:
        [default] = store.list_projects()
        assert (default.id, default.name, default.task, default.is_default) == (1, "default", None, True)
        assert (default.labels, default.images) == (3, 6)
        labels = store.list_labels()
        assert [(lab.id, lab.name, lab.description, lab.color) for lab in labels] == old_labels
        assert {lab.name: (lab.images, lab.boxes) for lab in labels} == {
            "low_stock": (1, 2),
            "none": (1, 0),
            "Price Tag": (0, 1),
        }
        records, total = store.list_images(newest_first=False)
        assert total == 6
        assert [(r.id, r.sha256, r.filename, r.camera, r.split) for r in records] == old_images
        assert records[0].boxes == [Box("low_stock", 0.1, 0.2, 0.5, 0.6), Box("Price Tag", 0.6, 0.6, 0.7, 0.7)]
        assert records[1].tags == ["none"] and records[2].tags == ["low_stock"]
        for rec in records:
            assert store.image_path(rec.id).read_bytes()[:2] == b"\xff\xd8"
        assert store.get_setting("studio.task") == "detection"
        zones = store.get_zones("aisle3")
        assert zones is not None and zones[0].id == "left"
        summary = store.summary()
        assert summary["task"] == "detection" and summary["boxes"] == 3 and summary["tagged"] == 3
        assert summary["project"] == {"id": 1, "name": "default", "task": "auto"}
        # Work goes on in the migrated project and beside it.
        store.create_label("empty")
        other = store.create_project("Fridges", "classification", [("low_stock", "fridge shelf almost empty")])
        assert store.list_labels(project=other.id)[0].name == "low_stock"
        fingerprint = dataset_fingerprint(store)

    with sqlite3.connect(data / "shelfwatch.db") as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT image_id, label_id, x1, y1, x2, y2 FROM boxes ORDER BY id").fetchall() == old_boxes
        assert conn.execute("SELECT image_id, label_id FROM image_tags ORDER BY image_id").fetchall() == old_tags
    with DatasetStore(data) as again:  # a second open migrates nothing more
        assert dataset_fingerprint(again) == fingerprint
        assert [p.name for p in again.list_projects()] == ["default", "Fridges"]


def test_a_new_store_has_only_the_default_project(store: DatasetStore) -> None:
    [default] = store.list_projects()
    assert default.as_dict() | {"created": ""} == {
        "id": 1,
        "name": "default",
        "task": "auto",
        "default": True,
        "created": "",
        "label_count": 0,
        "images": 0,
    }


def test_create_project_with_labels_and_refusals(store: DatasetStore) -> None:
    made = store.create_project(
        "Dairy aisle", "detection", [("empty", "no product on the shelf"), ("price tag", "the price label")]
    )
    assert (made.name, made.task, made.labels, made.is_default) == ("Dairy aisle", "detection", 2, False)
    assert [(lab.name, lab.description) for lab in store.list_labels(project="dairy AISLE")] == [
        ("empty", "no product on the shelf"),
        ("price tag", "the price label"),
    ]
    assert store.list_labels() == []  # the default project is untouched
    with pytest.raises(ConflictError, match="already exists"):
        store.create_project("DAIRY AISLE", "classification")
    with pytest.raises(AnnotationError, match="task must be one of classification, detection"):
        store.create_project("Frozen", "segmentation")
    with pytest.raises(ConflictError, match="label 'a' already exists"):
        store.create_project("Frozen", "classification", [("a", ""), ("A", "")])
    assert [p.name for p in store.list_projects()] == ["default", "Dairy aisle"]  # all or nothing
    with pytest.raises(NotFoundError, match="project 'nope' does not exist"):
        store.list_labels(project="nope")
    with pytest.raises(NotFoundError, match="project 42 does not exist"):
        store.summary(project=42)


def test_projects_keep_their_own_labels_images_and_readiness(store: DatasetStore) -> None:
    cls = store.create_project("Shelves", "classification", [("low", ""), ("none", "")])
    det = store.create_project("Boxes", "detection", [("low", "")])
    same = image_bytes(1)
    in_cls = store.add_image(same, project=cls.id)
    in_det = store.add_image(same, project="Boxes")
    assert in_cls.id != in_det.id and in_det.duplicate_of is None  # one photo may serve two projects
    store.set_annotations(in_det.id, [], [Box("low", 0.1, 0.1, 0.4, 0.4)])
    store.set_annotations(in_cls.id, ["low"], [])
    assert store.list_images(project=cls.id)[1] == 1 and store.list_images()[1] == 0
    assert store.summary(project=cls.id)["task"] == "classification"  # the project's task, although boxes exist
    assert store.summary(project=det.id)["task"] == "detection"
    assert store.summary(project=det.id)["per_label"] == {"low": {"images": 1, "boxes": 1}}
    assert store.default_task(project=cls.id) == "classification"
    with pytest.raises(AnnotationError, match="'none' is not a label"):
        store.set_annotations(in_det.id, ["none"], [])  # a label of the other project
    with pytest.raises(NotFoundError, match=f"image {in_cls.id} does not exist in project 'Boxes'"):
        store.get_image(in_cls.id, project=det.id)
    # Deleting one project's copy keeps the file the other still uses.
    assert store.delete_images([in_det.id], project=det.id) == 1
    assert store.image_path(in_cls.id).read_bytes() == same
    assert store.delete_images([in_cls.id], project=det.id) == 0
    assert store.auto_split(project=cls.id) == {"train": 1, "val": 0, "test": 0, "auto": 0}
    exported = store.export_dataset(project=cls.id)
    assert [lab.name for lab in exported.labels] == ["low", "none"] and len(exported.samples) == 1
