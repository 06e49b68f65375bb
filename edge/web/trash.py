"""The trash: a deleted label (with the tags and boxes it took along) or deleted images come back with one click.

Nothing is lost by one click: before a label or images are deleted, what the delete removes is written to
`<data_dir>/trash/<entry>/` (entry.json, and the image files for images); `POST /api/v1/trash/<id>/restore` puts it
back (a label with its description and colour and its tags and boxes on the images that still exist; images as new
images with their file name, camera, time, split, tags, boxes and "nothing to box" mark) and empties the entry. The
newest TRASH_LIMIT entries are kept; older ones are removed when a new one arrives. Routes: `GET /api/v1/trash` (the
current project's), `POST /api/v1/trash/<id>/restore`, `DELETE /api/v1/trash/<id>`; page `/trash`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, jsonify

from edge.datasets.model import Box
from edge.errors import ConflictError, NotFoundError
from edge.timestamps import utc_now_iso, utc_stamp
from edge.web.projects import project_ref
from edge.web.security import requires, template_page
from edge.web.services import current_services

if TYPE_CHECKING:
    from edge.store import DatasetStore

log = logging.getLogger(__name__)

bp = Blueprint("trash", __name__)
TRASH_DIR = "trash"
TRASH_LIMIT = 100
ENTRY_FILE = "entry.json"


def _new_entry_id() -> str:
    """A trash entry id whose name sorts in deletion order: the second, then the nanoseconds within it.

    The newest-first listing sorts folder names; a one-second stamp plus random hex put two deletes of one second in
    random order.
    """
    return f"{utc_stamp()}-{time.time_ns() % 1_000_000_000:09d}-{secrets.token_hex(2)}"


def _root(store: DatasetStore) -> Path:
    root = Path(store.data_dir) / TRASH_DIR
    root.mkdir(parents=True, exist_ok=True)
    return root


def _box_dict(box: Box) -> dict[str, Any]:
    return {"label": box.label, "x1": box.x1, "y1": box.y1, "x2": box.x2, "y2": box.y2}


def _write(folder: Path, entry: dict[str, Any]) -> None:
    tmp = folder / (ENTRY_FILE + ".tmp")
    tmp.write_text(json.dumps(entry), encoding="utf-8")
    os.replace(tmp, folder / ENTRY_FILE)


def _prune(root: Path) -> None:
    entries = sorted((p for p in root.iterdir() if (p / ENTRY_FILE).is_file()), key=lambda p: p.name, reverse=True)
    for old in entries[TRASH_LIMIT:]:
        shutil.rmtree(old, ignore_errors=True)
    for half in root.glob("*.staging"):  # a delete that failed before its entry was written
        shutil.rmtree(half, ignore_errors=True)


@contextmanager
def keeping_label(store: DatasetStore, name: str, project: int | str | None) -> Iterator[dict[str, str]]:
    """Around a label delete: the label and every tag and box of it go to the trash once the delete succeeded.

    Yields a dict that holds the trash entry's `id` after the block."""
    record = store.get_project(project)
    label = store.get_label(name, project=record.id)
    uses: list[dict[str, Any]] = []
    page = 1
    while True:
        images, total = store.list_images(page=page, page_size=200, label=label.name, project=record.id)
        for image in images:
            tags = [t for t in image.tags if t == label.name]
            found = [_box_dict(b) for b in image.boxes if b.label == label.name]
            if tags or found:
                uses.append({"image": image.id, "tags": tags, "boxes": found})
        if page * 200 >= total or not images:
            break
        page += 1
    kept: dict[str, str] = {}
    yield kept
    entry_id = _new_entry_id()
    kept["id"] = entry_id
    folder = _root(store) / entry_id
    folder.mkdir()
    boxes = sum(len(u["boxes"]) for u in uses)
    _write(
        folder,
        {
            "id": entry_id,
            "kind": "label",
            "created": utc_now_iso(),
            "project": record.id,
            "summary": f"label {label.name} ({len(uses)} image(s), {boxes} box(es))",
            "label": {"name": label.name, "description": label.description, "color": label.color},
            "uses": uses,
        },
    )
    _prune(folder.parent)


@contextmanager
def keeping_images(store: DatasetStore, ids: list[int], project: int | str | None) -> Iterator[dict[str, str]]:
    """Around an image delete: the images' files and annotations go to the trash once the delete succeeded.

    Yields a dict that holds the trash entry's `id` after the block (none when no image existed)."""
    root = _root(store)
    entry_id = _new_entry_id()
    staging = root / f"{entry_id}.staging"
    staging.mkdir()
    kept: list[dict[str, Any]] = []
    result: dict[str, str] = {}
    project_id: int | None = None
    try:
        for image_id in sorted(set(ids)):
            try:
                image = store.get_image(image_id, project=project)
                path = store.image_path(image_id, project=project)
            except NotFoundError:
                continue
            if project_id is None:
                project_id = store.image_project(image_id).id
            file_name = f"{image.id}.{image.ext}"
            shutil.copyfile(path, staging / file_name)
            kept.append(
                {
                    "file": file_name,
                    "was": image.id,
                    "filename": image.filename,
                    "camera": image.camera,
                    "captured_at": image.captured_at,
                    "split": image.split,
                    "tags": list(image.tags),
                    "boxes": [_box_dict(b) for b in image.boxes],
                    "nothing_to_box": image.nothing_to_box,
                }
            )
        yield result
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not kept:
        shutil.rmtree(staging, ignore_errors=True)
        return
    _write(
        staging,
        {
            "id": entry_id,
            "kind": "images",
            "created": utc_now_iso(),
            "project": project_id,
            "summary": f"{len(kept)} image(s)",
            "images": kept,
        },
    )
    os.replace(staging, root / entry_id)
    result["id"] = entry_id
    _prune(root)


def _entries(store: DatasetStore) -> list[dict[str, Any]]:
    rows = []
    for folder in sorted(_root(store).iterdir(), key=lambda p: p.name, reverse=True):
        try:
            rows.append(json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return rows


def _entry(store: DatasetStore, entry_id: str) -> tuple[Path, dict[str, Any]]:
    folder = _root(store) / entry_id
    if "/" in entry_id or entry_id.startswith(".") or not (folder / ENTRY_FILE).is_file():
        raise NotFoundError(f"nothing in the trash is called {entry_id!r}")
    return folder, json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry.get(k) for k in ("id", "kind", "created", "project", "summary")}


def _restore_label(store: DatasetStore, entry: dict[str, Any]) -> dict[str, Any]:
    project = entry["project"]
    label = entry["label"]
    try:
        store.create_label(label["name"], label.get("description") or "", label.get("color"), project=project)
    except ConflictError:
        pass  # a label of that name was made again since: its tags and boxes come back onto it
    restored = skipped = 0
    for use in entry.get("uses", []):
        try:
            current = store.get_annotations(use["image"], project=project)
        except NotFoundError:
            skipped += 1
            continue
        tags = list(current.tags) + [t for t in use["tags"] if t not in current.tags]
        boxes = list(current.boxes) + [Box(**b) for b in use["boxes"]]
        # A photo marked "nothing to box" since keeps its mark unless boxes come back onto it (a box ends the mark).
        marked = current.nothing_to_box and not boxes
        store.set_annotations(use["image"], tags, boxes, project=project, nothing_to_box=marked)
        restored += 1
    return {"restored": entry["summary"], "images": restored, "skipped": skipped}


def _restore_images(store: DatasetStore, folder: Path, entry: dict[str, Any]) -> dict[str, Any]:
    project = entry["project"]
    known = {lab.name for lab in store.list_labels(project=project)}
    ids = []
    for item in entry.get("images", []):
        data = (folder / item["file"]).read_bytes()
        captured = datetime.fromisoformat(item["captured_at"].replace("Z", "+00:00")) if item["captured_at"] else None
        record = store.add_image(
            data, filename=item["filename"], camera=item["camera"], captured_at=captured, project=project
        )
        tags = [t for t in item["tags"] if t in known]
        boxes = [Box(**b) for b in item["boxes"] if b["label"] in known]
        marked = bool(item.get("nothing_to_box")) and not boxes
        if record.duplicate_of is None or record.duplicate_of != record.id:
            store.set_annotations(record.id, tags, boxes, project=project, nothing_to_box=marked)
        if item.get("split") in ("train", "val", "test"):
            store.set_split([record.id], item["split"], project=project)
        ids.append(record.id)
    return {"restored": entry["summary"], "ids": ids}


# The trash of the current project: what was deleted, restore or empty each.
template_page(bp, "/trash", "trash.html")


@bp.get("/api/v1/trash")
@requires("viewer")
def list_trash() -> Any:
    """{"items": [{"id", "kind": "label"|"images", "created", "project", "summary"}]}, newest first, this project's."""
    store = current_services().store
    pid = store.get_project(project_ref()).id
    return jsonify({"items": [_public(e) for e in _entries(store) if e.get("project") == pid]})


@bp.post("/api/v1/trash/<entry_id>/restore")
@requires("labeller")
def restore(entry_id: str) -> Any:
    """Put a trash entry back: {"restored", "images"/"ids", ...}; the entry leaves the trash."""
    store = current_services().store
    folder, entry = _entry(store, entry_id)
    if entry["kind"] == "label":
        result = _restore_label(store, entry)
    else:
        result = _restore_images(store, folder, entry)
    shutil.rmtree(folder, ignore_errors=True)
    log.info("restored %s from the trash (%s)", entry["summary"], entry_id)
    return jsonify(result)


@bp.delete("/api/v1/trash/<entry_id>")
@requires("labeller")
def purge(entry_id: str) -> Any:
    """Remove a trash entry for good."""
    folder, _ = _entry(current_services().store, entry_id)
    shutil.rmtree(folder, ignore_errors=True)
    return jsonify({"deleted": entry_id})
