"""Projects over the real studio: create and list, `project` on dataset/image/label/annotation routes, refusals."""

from __future__ import annotations

import io
from typing import Any

import pytest

from tests.web.conftest import SignedIn, jpeg_bytes

BOX = {"label": "gap", "x1": 0.1, "y1": 0.2, "x2": 0.5, "y2": 0.6}


def create(admin: SignedIn, **body: Any) -> Any:
    return admin.post("/api/v1/projects", json=body)


def upload(admin: SignedIn, seed: int, project: str | int | None = None, *, as_query: bool = False) -> Any:
    data: dict[str, Any] = {"file": [(io.BytesIO(jpeg_bytes(seed)), f"img{seed}.jpg")]}
    url = "/api/v1/images"
    if project is not None and as_query:
        url += f"?project={project}"
    elif project is not None:
        data["project"] = str(project)
    return admin.post(url, data=data, content_type="multipart/form-data")


def test_create_and_list_projects(admin: SignedIn) -> None:
    resp = create(
        admin,
        name="Dairy aisle",
        task="detection",
        labels=[{"name": "gap", "description": "an empty slot"}, {"name": "price tag", "description": ""}],
    )
    assert resp.status_code == 201, resp.json
    made = resp.json
    assert isinstance(made["id"], int) and (made["name"], made["task"]) == ("Dairy aisle", "detection")
    assert [(lab["name"], lab["description"]) for lab in made["labels"]] == [
        ("gap", "an empty slot"),
        ("price tag", ""),
    ]
    listed = admin.get("/api/v1/projects").json["items"]
    assert [(p["name"], p["task"], p["default"]) for p in listed] == [
        ("default", "auto", True),
        ("Dairy aisle", "detection", False),
    ]
    assert admin.get(f"/api/v1/projects/{made['id']}").json["name"] == "Dairy aisle"
    assert admin.get("/api/v1/projects/dairy%20aisle").json["id"] == made["id"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "X", "task": "segmentation"},
        {"name": "X", "task": "auto"},
        {"name": "X"},
        {"name": "", "task": "detection"},
        {"name": "X", "task": "detection", "labels": [{"name": "a/b"}]},
        {"name": "X", "task": "detection", "labels": "gap"},
        {"name": "12", "task": "detection"},
    ],
)
def test_a_bad_project_is_400_and_creates_nothing(admin: SignedIn, body: dict[str, Any]) -> None:
    resp = create(admin, **body)
    assert resp.status_code == 400, resp.json
    assert resp.json["error"]
    assert [p["name"] for p in admin.get("/api/v1/projects").json["items"]] == ["default"]


def test_a_bad_task_names_the_field(admin: SignedIn) -> None:
    resp = create(admin, name="X", task="segmentation")
    assert resp.status_code == 400 and "task" in resp.json["error"]


def test_a_duplicate_name_is_409(admin: SignedIn) -> None:
    assert create(admin, name="Fridges", task="classification").status_code == 201
    resp = create(admin, name="fridges", task="detection")
    assert resp.status_code == 409 and "already exists" in resp.json["error"]
    assert create(admin, name="default", task="detection").status_code == 409


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/api/v1/projects/nope", None),
        ("GET", "/api/v1/images?project=nope", None),
        ("GET", "/api/v1/labels?project=999", None),
        ("POST", "/api/v1/labels?project=nope", {"name": "gap"}),
        ("POST", "/api/v1/labels", {"name": "gap", "project": "nope"}),
        ("GET", "/api/v1/dataset/summary?project=nope", None),
        ("POST", "/api/v1/dataset/split", {"project": 999}),
        ("GET", "/api/v1/dataset/export?project=nope", None),
    ],
)
def test_an_unknown_project_is_404(admin: SignedIn, method: str, url: str, body: Any) -> None:
    kw = {"json": body} if body is not None else {}
    resp = admin.get(url) if method == "GET" else admin._unsafe(method, url, **kw)
    assert resp.status_code == 404, resp.json
    assert "project" in resp.json["error"] and "does not exist" in resp.json["error"]
    assert admin.get("/api/v1/labels").json["items"] == []


def test_an_upload_to_an_unknown_project_is_404_and_stores_nothing(admin: SignedIn) -> None:
    resp = upload(admin, 1, "nope")
    assert resp.status_code == 404 and "project 'nope'" in resp.json["error"]
    assert admin.get("/api/v1/images").json["total"] == 0


def test_routes_without_project_work_on_the_default_project(admin: SignedIn) -> None:
    other = create(admin, name="Other", task="detection", labels=[{"name": "gap"}]).json
    assert admin.post("/api/v1/labels", json={"name": "gap", "description": "default's own"}).status_code == 201
    image = upload(admin, 1).json["items"][0]
    put = admin.put(f"/api/v1/images/{image['id']}/annotations", json={"tags": [], "boxes": [BOX]})
    assert put.status_code == 200, put.json
    labels = admin.get("/api/v1/labels").json["items"]
    assert [(lab["name"], lab["description"], lab["boxes"]) for lab in labels] == [("gap", "default's own", 1)]
    assert admin.get("/api/v1/images").json["total"] == 1
    summary = admin.get("/api/v1/dataset/summary").json
    assert summary["project"]["name"] == "default" and summary["boxes"] == 1
    # ...and the other project saw none of it.
    assert admin.get(f"/api/v1/images?project={other['id']}").json["total"] == 0
    assert admin.get("/api/v1/labels?project=Other").json["items"][0]["boxes"] == 0
    assert admin.get("/api/v1/projects").json["items"][0]["images"] == 1


def test_project_by_query_json_or_form_field_scopes_every_dataset_route(admin: SignedIn) -> None:
    pid = create(admin, name="Cooler", task="classification", labels=[{"name": "low"}]).json["id"]
    assert admin.post("/api/v1/labels", json={"name": "none", "project": pid}).status_code == 201
    assert admin.post(f"/api/v1/labels?project={pid}", json={"name": "odd"}).status_code == 201
    assert admin.patch("/api/v1/labels/odd?project=Cooler", json={"description": "rare"}).json["description"] == "rare"
    assert admin.delete(f"/api/v1/labels/odd?project={pid}").status_code == 200
    assert admin.get("/api/v1/labels/odd").status_code == 404  # never in the default project
    first = upload(admin, 2, pid).json["items"][0]  # form field
    second = upload(admin, 3, "Cooler", as_query=True).json["items"][0]
    both = {first["id"], second["id"]}
    listed = admin.get(f"/api/v1/images?project={pid}").json
    assert listed["total"] == 2 and {i["id"] for i in listed["items"]} == both
    assert admin.get("/api/v1/images").json["total"] == 0
    put = admin.put(f"/api/v1/images/{first['id']}/annotations", json={"tags": ["low"], "boxes": []})
    assert put.status_code == 200 and put.json["tags"] == ["low"]  # the image's own project's labels
    assert admin.get(f"/api/v1/images/{first['id']}?project=default").status_code == 404
    assert admin.get(f"/api/v1/images/{first['id']}/annotations?project={pid}").json["tags"] == ["low"]
    summary = admin.get(f"/api/v1/dataset/summary?project={pid}").json
    assert (
        summary["task"] == "classification" and summary["tagged"] == 1 and summary["task_setting"] == "classification"
    )
    assert summary["per_label"]["low"]["images"] == 1
    split = admin.post("/api/v1/dataset/split", json={"project": pid})
    assert split.status_code == 200 and sum(split.json["assigned"].values()) == 2
    assert (
        admin.post("/api/v1/images/split", json={"ids": [first["id"]], "split": "val", "project": pid}).status_code
        == 200
    )
    export = admin.get(f"/api/v1/dataset/export?project={pid}&format=csv")
    assert export.status_code == 200 and export.mimetype == "application/zip"
    deleted = admin.post("/api/v1/images/delete", json={"ids": sorted(both), "project": "default"})
    assert deleted.json["deleted"] == 0  # ids of another project are not the default project's
    assert admin.post("/api/v1/images/delete", json={"ids": sorted(both), "project": pid}).json["deleted"] == 2


def test_readiness_is_judged_for_the_project_task(admin: SignedIn) -> None:
    """Boxes in a classification project do not make it "detection" (the default project's auto would)."""
    pid = create(admin, name="Zones", task="classification", labels=[{"name": "gap"}, {"name": "none"}]).json["id"]
    image = upload(admin, 4, pid).json["items"][0]
    admin.put(f"/api/v1/images/{image['id']}/annotations", json={"tags": [], "boxes": [BOX]})
    summary = admin.get(f"/api/v1/dataset/summary?project={pid}").json
    assert summary["task"] == "classification" and summary["boxes"] == 1
    changed = admin.put("/api/v1/dataset/task", json={"task": "detection", "project": pid})
    assert changed.status_code == 200 and changed.json["task"] == "detection"
    assert admin.get("/api/v1/projects/Zones").json["task"] == "detection"
    refused = admin.put("/api/v1/dataset/task", json={"task": "auto", "project": pid})
    assert refused.status_code == 400 and "auto" in refused.json["error"]
    assert admin.get("/api/v1/dataset/summary").json["task_setting"] == "auto"  # the default project's choice


def test_viewers_may_list_but_only_admins_create(admin: SignedIn, studio: Any) -> None:
    users = studio.services.users
    user = users.create("viewer-1", "a long enough password", role="labeller")
    token, _ = users.issue_token(user.id, "t")
    headers = {"Authorization": f"Bearer {token}"}
    assert admin.client.get("/api/v1/projects", headers=headers).status_code == 200
    resp = admin.client.post("/api/v1/projects", json={"name": "X", "task": "detection"}, headers=headers)
    assert resp.status_code == 403


def test_the_none_class_is_offered_only_where_it_means_something(admin: SignedIn) -> None:
    create(admin, name="Boxes", task="detection", labels=[{"name": "gap"}])
    create(admin, name="Tags", task="classification", labels=[{"name": "low"}])
    assert admin.get("/api/v1/labels?project=Boxes").json["suggested_other"] is None
    assert admin.get("/api/v1/labels?project=Tags").json["suggested_other"]["name"] == "none"
    assert admin.get("/api/v1/labels").json["suggested_other"]["name"] == "none"  # the default project's auto
