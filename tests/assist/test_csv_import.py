"""CSV import as the seeds describe it: the dialog names the image column and an optional label column whose
numbers 0, 1, 2 are the project's labels in order."""

from __future__ import annotations

import io
import zipfile

from tests.assist.conftest import GREEN, RED, Rig, colour_jpeg


def archive(rows: list[tuple[str, str, str]], header: str = "photo,note,cls") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        lines = [header]
        for name, note, label in rows:
            zf.writestr(f"pics/{name}", colour_jpeg(RED if label == "0" else GREEN, sum(map(ord, name))))
            lines.append(f"pics/{name},{note},{label}")
        zf.writestr("table.csv", "\n".join(lines) + "\n")
    return buf.getvalue()


def post(rig: Rig, data: bytes, **fields: str) -> object:
    return rig.admin.post(
        "/api/v1/dataset/import",
        data={"file": (io.BytesIO(data), "seed.zip"), **fields},
        content_type="multipart/form-data",
    )


def test_numbers_in_the_chosen_label_column_are_the_projects_labels_in_order(rig: Rig) -> None:
    for name in ("red", "green"):
        rig.admin.post("/api/v1/labels", json={"name": name})
    rows = [("a.jpg", "x", "0"), ("b.jpg", "y", "1"), ("c.jpg", "z", "1")]
    resp = post(rig, archive(rows), image_column="photo", label_column="cls")
    assert resp.status_code == 201, resp.get_json()  # type: ignore[attr-defined]
    tags = sorted((r.filename or "", tuple(r.tags)) for r in rig.store.list_images(page_size=50)[0])
    assert [t for _, t in tags] == [("red",), ("green",), ("green",)]
    assert [lab.name for lab in rig.store.list_labels()] == ["red", "green"]  # no "0"/"1" labels appeared


def test_no_label_column_imports_untagged_and_a_bad_column_changes_nothing(rig: Rig) -> None:
    rows = [("d.jpg", "x", "0"), ("e.jpg", "y", "1")]
    bad = post(rig, archive(rows), image_column="picture", label_column="cls")
    assert bad.status_code == 400 and "no column named 'picture'" in bad.get_json()["error"]  # type: ignore[attr-defined]
    assert rig.store.list_images()[1] == 0
    resp = post(rig, archive(rows), image_column="photo", label_column="none")
    assert resp.status_code == 201
    images, total = rig.store.list_images()
    assert total == 2 and all(r.tags == [] for r in images)


def test_renaming_or_deleting_a_trained_label_says_what_happens_to_versions(rig: Rig, bundles: object) -> None:
    for name in ("red", "green", "blue"):
        rig.admin.post("/api/v1/labels", json={"name": name})
    rig.models.install(bundles.plain, activate=True, project=1)  # type: ignore[attr-defined]
    body = rig.admin.get("/api/v1/labels/red/versions").get_json()
    assert body["versions"] == [{"version": "cls-plain", "number": 1, "active": True}]
    assert "v1 (running) learned 'red'" in body["rename"] and "train a new version" in body["delete"]
    untrained = rig.admin.get("/api/v1/labels/blue/versions").get_json()
    assert untrained["versions"] == [] and untrained["rename"] is None
    assert rig.admin.get("/api/v1/labels/purple/versions").status_code == 404
