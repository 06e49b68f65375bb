"""PUT /api/v1/cameras/<id>/zones: free-text names get generated, unique slug ids; each zone keeps its alert label."""

from __future__ import annotations

from tests.web.conftest import CAMERA_ID, SignedIn, Studio

URL = f"/api/v1/cameras/{CAMERA_ID}/zones"
SQUARE = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]


def test_names_become_unique_ids_and_labels_are_kept(admin: SignedIn, studio: Studio) -> None:
    zones = [
        {"name": "End Cap", "polygon": SQUARE, "label": "empty_slot"},
        {"name": "End Cap", "polygon": SQUARE},
        {"name": "Crème brûlée", "polygon": SQUARE},
        {"name": "!!!", "polygon": SQUARE},
        {"id": "end-cap-3", "name": "Kept", "polygon": SQUARE},
    ]
    resp = admin.put(URL, json={"zones": zones})
    assert resp.status_code == 200, resp.json
    got = resp.json["zones"]
    assert [z["id"] for z in got] == ["end-cap", "end-cap-2", "creme-brulee", "zone", "end-cap-3"]
    assert [z["name"] for z in got][:2] == ["End Cap", "End Cap"]
    assert got[0]["label"] == "empty_slot" and got[1]["label"] is None
    saved = studio.store.get_zones(CAMERA_ID)
    assert saved is not None and saved[0].label == "empty_slot" and saved[0].id == "end-cap"


def test_a_bad_zone_is_refused_with_its_position_and_nothing_changes(admin: SignedIn, studio: Studio) -> None:
    assert admin.put(URL, json={"zones": [{"name": "Top", "polygon": SQUARE}]}).status_code == 200
    bad = admin.put(
        URL, json={"zones": [{"name": "Top", "polygon": SQUARE}, {"name": "Flat", "polygon": [[0, 0], [1, 1]]}]}
    )
    assert bad.status_code == 400 and "zones.1" in bad.json["error"]
    assert [z.id for z in studio.store.get_zones(CAMERA_ID) or []] == ["top"]
