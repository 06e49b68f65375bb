"""Nothing lost by one click: a deleted label (with its tags and boxes) or deleted images come back from the trash."""

from __future__ import annotations

import io

from tests.web.conftest import SignedIn, Studio, jpeg_bytes

BOX = {"label": "gap", "x1": 0.1, "y1": 0.2, "x2": 0.5, "y2": 0.6}


def upload(admin: SignedIn, seed: int, project: int | None = None) -> int:
    data = {"file": [(io.BytesIO(jpeg_bytes(seed)), f"Shelf-{seed}.jpg")]}
    url = "/api/v1/images" + (f"?project={project}" if project else "")
    resp = admin.post(url, data=data, content_type="multipart/form-data")
    assert resp.status_code == 201, resp.json
    return int(resp.json["items"][0]["id"])


def test_a_deleted_label_comes_back_with_its_tags_and_boxes(admin: SignedIn, studio: Studio) -> None:
    for name, desc in (("gap", "an empty slot"), ("None", "none of the others")):
        assert admin.post("/api/v1/labels", json={"name": name, "description": desc}).status_code == 201
    a, b = upload(admin, 1), upload(admin, 2)
    assert admin.put(f"/api/v1/images/{a}/annotations", json={"tags": ["gap"], "boxes": [BOX]}).status_code == 200
    assert admin.put(f"/api/v1/images/{b}/annotations", json={"tags": ["None"], "boxes": [BOX]}).status_code == 200

    refused = admin.delete("/api/v1/labels/gap")  # in use: 409 with the reason, nothing in the trash
    assert refused.status_code == 409
    assert admin.get("/api/v1/trash").json["items"] == []
    gone = admin.delete("/api/v1/labels/gap?force=true")
    assert gone.status_code == 200 and gone.json["trash"]
    assert studio.store.get_annotations(a).tags == [] and studio.store.get_annotations(b).boxes == []
    (entry,) = admin.get("/api/v1/trash").json["items"]
    assert entry["kind"] == "label" and "gap" in entry["summary"] and "2 image(s), 2 box(es)" in entry["summary"]

    restored = admin.post(f"/api/v1/trash/{entry['id']}/restore")
    assert restored.status_code == 200 and restored.json["images"] == 2
    label = studio.store.get_label("gap")
    assert label.description == "an empty slot"
    assert studio.store.get_annotations(a).tags == ["gap"]
    assert [x.label for x in studio.store.get_annotations(b).boxes] == ["gap"]
    assert studio.store.get_annotations(b).tags == ["None"]  # names keep their case
    assert admin.get("/api/v1/trash").json["items"] == []
    assert admin.post(f"/api/v1/trash/{entry['id']}/restore").status_code == 404


def test_deleted_images_come_back_with_their_annotations(admin: SignedIn, studio: Studio) -> None:
    assert admin.post("/api/v1/labels", json={"name": "gap"}).status_code == 201
    ids = [upload(admin, seed) for seed in (3, 4, 5)]
    assert admin.put(f"/api/v1/images/{ids[0]}/annotations", json={"tags": [], "boxes": [BOX]}).status_code == 200
    gone = admin.post("/api/v1/images/delete", json={"ids": ids[:2]})
    assert gone.status_code == 200 and gone.json["deleted"] == 2 and gone.json["trash"]
    assert studio.store.list_images()[1] == 1
    one = admin.delete(f"/api/v1/images/{ids[2]}")
    assert one.status_code == 200 and one.json["trash"]
    items = admin.get("/api/v1/trash").json["items"]
    assert [i["summary"] for i in items] == ["1 image(s)", "2 image(s)"]  # newest first

    restored = admin.post(f"/api/v1/trash/{gone.json['trash']}/restore").json
    assert len(restored["ids"]) == 2
    records = [studio.store.get_image(i) for i in restored["ids"]]
    assert sorted(r.filename or "" for r in records) == ["Shelf-3.jpg", "Shelf-4.jpg"]
    boxed = next(r for r in records if r.filename == "Shelf-3.jpg")
    assert [(x.label, round(x.x1, 3)) for x in boxed.boxes] == [("gap", 0.1)]
    # Removed for good: gone from the trash, its files too.
    assert admin.delete(f"/api/v1/trash/{one.json['trash']}").status_code == 200
    assert admin.get("/api/v1/trash").json["items"] == []
    assert not (studio.store.data_dir / "trash" / one.json["trash"]).exists()
    assert admin.post("/api/v1/trash/..%2Fx/restore").status_code == 404


def test_a_photo_marked_nothing_to_box_comes_back_marked(admin: SignedIn, studio: Studio) -> None:
    assert admin.post("/api/v1/labels", json={"name": "gap"}).status_code == 201
    marked, boxed = upload(admin, 6), upload(admin, 7)
    assert admin.put(f"/api/v1/images/{marked}/annotations", json={"nothing_to_box": True}).status_code == 200
    assert admin.put(f"/api/v1/images/{boxed}/annotations", json={"tags": [], "boxes": [BOX]}).status_code == 200
    gone = admin.post("/api/v1/images/delete", json={"ids": [marked, boxed]})
    assert gone.status_code == 200 and gone.json["trash"]
    restored = admin.post(f"/api/v1/trash/{gone.json['trash']}/restore").json
    records = {r.filename: r for r in (studio.store.get_image(i) for i in restored["ids"])}
    assert records["Shelf-6.jpg"].nothing_to_box and records["Shelf-6.jpg"].tagged
    assert not records["Shelf-7.jpg"].nothing_to_box and len(records["Shelf-7.jpg"].boxes) == 1
    summary = admin.get("/api/v1/dataset/summary").json
    assert summary["tagged"] == 2 and summary["untagged"] == 0


def test_restoring_a_label_keeps_a_later_nothing_to_box_mark(admin: SignedIn, studio: Studio) -> None:
    for name in ("gap", "promo"):
        assert admin.post("/api/v1/labels", json={"name": name}).status_code == 201
    image = upload(admin, 8)
    assert admin.put(f"/api/v1/images/{image}/annotations", json={"tags": ["promo"], "boxes": []}).status_code == 200
    gone = admin.delete("/api/v1/labels/promo?force=true")
    assert gone.status_code == 200 and gone.json["trash"]
    # Meanwhile the photo is looked at again and marked as having nothing to box.
    assert admin.put(f"/api/v1/images/{image}/annotations", json={"nothing_to_box": True}).status_code == 200
    assert admin.post(f"/api/v1/trash/{gone.json['trash']}/restore").status_code == 200
    again = studio.store.get_annotations(image)
    assert again.tags == ["promo"] and again.nothing_to_box, "the tag came back and the mark stayed"
