"""Suggestions stored apart from annotations, computed in the background for new images by the active version on
real onnxruntime, accepted only through the accept API; bulk suggest and accept; the review queue's orders."""

from __future__ import annotations

import io
from typing import Any

from edge.assist import room
from tests.assist.conftest import GREEN, RED, Rig, colour_jpeg
from tests.helpers.waiting import wait_until


def upload(rig: Rig, images: list[bytes]) -> list[int]:
    files = [(io.BytesIO(data), f"img-{i}.jpg") for i, data in enumerate(images)]
    resp = rig.admin.post("/api/v1/images", data={"file": files}, content_type="multipart/form-data")
    assert resp.status_code == 201, resp.get_json()
    return [item["id"] for item in resp.get_json()["items"]]


def labels(rig: Rig, *names: str) -> None:
    for name in names:
        assert rig.admin.post("/api/v1/labels", json={"name": name}).status_code == 201


def activate(rig: Rig, bundle: Any) -> None:
    rig.models.install(bundle, activate=True, project=1)


def test_no_active_version_is_404_and_new_images_get_suggestions_in_the_background(rig: Rig, bundles: Any) -> None:
    labels(rig, "red", "green")
    [first] = upload(rig, [colour_jpeg(RED, 1)])
    resp = rig.admin.get(f"/api/v1/images/{first}/suggestions")
    assert resp.status_code == 404
    assert "no active model version" in resp.get_json()["error"]

    activate(rig, bundles.plain)
    ids = upload(rig, [colour_jpeg(RED, 2), colour_jpeg(GREEN, 3)])
    # computed off the request thread, for the new images only
    assert wait_until(lambda: all(room.get(rig.store, i) is not None for i in ids), timeout=30)
    assert room.get(rig.store, first) is None
    body = rig.admin.get(f"/api/v1/images/{ids[1]}/suggestions").get_json()
    assert body["model"] == {"project": 1, "version": "cls-plain", "number": 1}
    assert body["tags"][0]["label"] == "green" and body["tags"][0]["score"] > 0.9
    assert [t["label"] for t in body["tags"]] == ["green", "red"]
    assert body["boxes"] == []
    assert "similar" not in body  # the bundle exports no embedding
    # suggestions are not annotations
    assert rig.store.get_image(ids[1]).tags == []
    # an older image is suggested for on demand
    assert rig.admin.get(f"/api/v1/images/{first}/suggestions").get_json()["tags"][0]["label"] == "red"


def test_accept_turns_a_suggestion_into_annotations_only_on_request(rig: Rig, bundles: Any) -> None:
    labels(rig, "red", "green")
    activate(rig, bundles.plain)
    [image] = upload(rig, [colour_jpeg(RED, 4)])
    assert rig.admin.get(f"/api/v1/images/{image}/suggestions").status_code == 200
    resp = rig.admin.post(f"/api/v1/images/{image}/suggestions/accept", json={})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["tags"] == ["red"]
    assert resp.get_json()["accepted"] == {"tags": 1, "boxes": 0}
    assert rig.store.get_image(image).tags == ["red"]
    # a named tag is taken whatever its score; an unknown one is refused and changes nothing
    resp = rig.admin.post(f"/api/v1/images/{image}/suggestions/accept", json={"tags": ["green"]})
    assert resp.get_json()["tags"] == ["red", "green"]
    bad = rig.admin.post(f"/api/v1/images/{image}/suggestions/accept", json={"tags": ["blue"]})
    assert bad.status_code == 400 and "not among the suggested" in bad.get_json()["error"]
    assert rig.admin.post(f"/api/v1/images/{image}/suggestions/accept", json={"boxes": "some"}).status_code == 400
    assert rig.store.get_image(image).tags == ["red", "green"]
    # above a min_score nothing is accepted when the best tag scores less
    [other] = upload(rig, [colour_jpeg((120, 120, 130), 5)])
    rig.admin.get(f"/api/v1/images/{other}/suggestions")
    resp = rig.admin.post(f"/api/v1/images/{other}/suggestions/accept", json={"min_score": 0.99})
    assert resp.get_json()["accepted"] == {"tags": 0, "boxes": 0}


def test_detection_boxes_by_index_or_all_above_min_score(rig: Rig, bundles: Any) -> None:
    labels(rig, "empty", "stocked")
    activate(rig, bundles.detector)
    import cv2
    import numpy as np

    image = np.full((64, 64, 3), 255, dtype=np.uint8)
    image[:, :32] = 0  # dark left half: "empty" there
    _, buf = cv2.imencode(".png", image)
    [image_id] = upload(rig, [buf.tobytes()])
    body = rig.admin.get(f"/api/v1/images/{image_id}/suggestions").get_json()
    assert body["boxes"][0]["label"] == "empty" and body["boxes"][0]["score"] > 0.9
    assert body["boxes"][0]["x2"] <= 0.5
    assert set(body["boxes"][0]) == {"label", "score", "x1", "y1", "x2", "y2", "similar", "similar_source"}
    assert body["boxes"][0]["similar_source"] == "appearance"  # the tiny bundle exports no feature map
    assert body["boxes"][0]["similar"] == {}  # no box drawn by a person yet: nothing to be similar to
    resp = rig.admin.post(f"/api/v1/images/{image_id}/suggestions/accept", json={"boxes": [0]})
    assert len(resp.get_json()["boxes"]) == 1
    assert rig.admin.post(f"/api/v1/images/{image_id}/suggestions/accept", json={"boxes": [99]}).status_code == 400
    # "all" above 0.9 adds the confident boxes that are not there yet
    resp = rig.admin.post(f"/api/v1/images/{image_id}/suggestions/accept", json={"boxes": "all", "min_score": 0.9})
    boxes = resp.get_json()["boxes"]
    assert all(b["label"] in ("empty", "stocked") for b in boxes)
    assert len(boxes) == sum(1 for b in body["boxes"] if b["score"] >= 0.9)


def test_bulk_suggest_with_progress_then_accept_all_above_and_queue_orders(rig: Rig, bundles: Any) -> None:
    labels(rig, "red", "green")
    images = [colour_jpeg(RED, 10 + i) for i in range(4)] + [colour_jpeg(GREEN, 20 + i) for i in range(4)]
    ids = upload(rig, images)  # before any version is active: no suggestions
    assert rig.admin.post("/api/v1/suggestions/bulk").status_code == 404
    activate(rig, bundles.embedded)
    resp = rig.admin.post("/api/v1/suggestions/bulk")
    assert resp.status_code == 202 and resp.get_json()["total"] == 8
    assert wait_until(lambda: rig.admin.get("/api/v1/suggestions/bulk").get_json()["state"] == "done", timeout=60)
    job = rig.admin.get("/api/v1/suggestions/bulk").get_json()
    assert job["done"] == job["total"] == 8

    summary = rig.admin.get("/api/v1/suggestions?min_score=0.9").get_json()
    assert summary["untagged"] == 8 and summary["suggested"] == 8 and summary["above"] == 8
    # hand-label two, then similarity shows beside the suggestion
    rig.admin.put(f"/api/v1/images/{ids[0]}/annotations", json={"tags": ["red"], "boxes": []})
    rig.admin.put(f"/api/v1/images/{ids[4]}/annotations", json={"tags": ["green"], "boxes": []})
    body = rig.admin.get(f"/api/v1/images/{ids[1]}/suggestions").get_json()
    assert body["similar"]["red"] > 0.9 > body["similar"]["green"]

    queue = rig.admin.get("/api/v1/images?order=uncertainty&tagged=false").get_json()
    margins = [room.get(rig.store, item["id"]).margin for item in queue["items"]]  # type: ignore[union-attr]
    assert queue["total"] == 6 and margins == sorted(margins)
    by_similarity = rig.admin.get("/api/v1/images?order=similarity&tagged=false").get_json()["items"]
    sims = [item["similarity"] for item in by_similarity]
    assert sims == sorted(sims, reverse=True) and all(s is not None for s in sims)
    assert rig.admin.get("/api/v1/images?order=sideways").status_code == 400

    resp = rig.admin.post("/api/v1/suggestions/accept", json={"min_score": 0.9})
    assert resp.get_json()["images"] == 6
    tagged = {i: rig.store.get_image(i).tags for i in ids}
    assert all(tagged[i] == ["red"] for i in ids[:4]) and all(tagged[i] == ["green"] for i in ids[4:])


def shelf_jpeg(gap_bgr: tuple[int, int, int], seed: int, width: int = 160, height: int = 120) -> bytes:
    """A shelf photo: the left half a dark gap of one colour, the right half bright stock (with noise)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.float32)
    image[:, : width // 2] = gap_bgr
    image[:, width // 2 :] = (215, 220, 225)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def test_each_suggested_box_has_a_similarity_to_the_drawn_boxes_and_orders_the_queue(rig: Rig, bundles: Any) -> None:
    from edge.datasets.model import Box

    labels(rig, "empty", "stocked")
    activate(rig, bundles.detector)
    blue_gap, red_gap = (90, 25, 20), (20, 25, 90)  # BGR: both dark, so the detector calls both "empty"
    drawn = upload(rig, [shelf_jpeg(blue_gap, 1), shelf_jpeg(blue_gap, 2)])
    for image_id in drawn:  # a person drew the blue gaps
        rig.store.set_annotations(image_id, [], [Box("empty", 0.02, 0.05, 0.48, 0.95)])
    like, unlike = upload(rig, [shelf_jpeg(blue_gap, 3), shelf_jpeg(red_gap, 4)])

    def gap_and_stock(image_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        body = rig.admin.get(f"/api/v1/images/{image_id}/suggestions").get_json()
        assert all("embedding" not in b for b in body["boxes"])  # the descriptor stays on the device
        assert "similar" not in body  # a detection bundle exports no image embedding
        above = [b for b in body["boxes"] if b["score"] >= body["threshold"]]
        gap = next(b for b in above if b["label"] == "empty" and b["x2"] < 0.5)
        stock = next(b for b in above if b["label"] == "stocked" and b["x1"] > 0.5)
        return gap, stock

    gap, stock = gap_and_stock(like)
    assert set(gap["similar"]) == {"empty"}  # only "empty" has drawn boxes
    assert gap["similar"]["empty"] > 0.9 and gap["similar"]["empty"] > stock["similar"]["empty"] + 0.2
    other_gap, _ = gap_and_stock(unlike)
    assert gap["similar"]["empty"] > other_gap["similar"]["empty"] + 0.1  # a gap of another colour is less alike

    queue = rig.admin.get("/api/v1/images?order=similarity&tagged=false").get_json()
    assert [item["id"] for item in queue["items"]] == [like, unlike]
    assert queue["items"][0]["similarity"] == gap["similar"]["empty"]
