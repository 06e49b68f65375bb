"""The image library (upload, paged grid, detail, delete) and the tagging page with its annotations API."""

from __future__ import annotations

import logging
from pathlib import Path, PurePath
from typing import Annotated, Any

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request, send_file
from pydantic import BaseModel, Field, field_validator, model_validator
from werkzeug.exceptions import RequestEntityTooLarge

from edge.datasets.imaging import MAX_FRAME_PIXELS, decode_image
from edge.datasets.model import SPLITS, Box
from edge.errors import ImageError, NotFoundError
from edge.store.images import write_atomic
from edge.web.http import ROW_ID_MAX, ROW_ID_MIN, ApiError, bool_arg, int_arg, read_model
from edge.web.projects import project_ref
from edge.web.security import requires
from edge.web.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("images", __name__)
NAV = [("images.library", "Library", 20), ("images.tag", "Tag", 30)]

THUMB_WIDTH = 360
THUMBS_DIR = "web_thumbs"
MAX_PAGE_SIZE = 500


class BoxBody(BaseModel):
    label: str = Field(min_length=1, max_length=64)
    x1: float = Field(ge=0.0, le=1.0)
    y1: float = Field(ge=0.0, le=1.0)
    x2: float = Field(ge=0.0, le=1.0)
    y2: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> BoxBody:
        if not self.x1 < self.x2:
            raise ValueError(f"x1={self.x1:g} must be less than x2={self.x2:g}")
        if not self.y1 < self.y2:
            raise ValueError(f"y1={self.y1:g} must be less than y2={self.y2:g}")
        return self


class AnnotationsBody(BaseModel):
    tags: list[str] = Field(default_factory=list, max_length=100)
    boxes: list[BoxBody] = Field(default_factory=list, max_length=1000)
    nothing_to_box: bool = False


class IdsBody(BaseModel):
    ids: list[Annotated[int, Field(ge=ROW_ID_MIN, le=ROW_ID_MAX)]] = Field(min_length=1, max_length=10_000)


class SplitBody(IdsBody):
    split: str

    @field_validator("split")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}")
        return v


@bp.get("/library")
@requires("viewer")
def library() -> str:
    """The paged image grid with filters, upload and bulk actions."""
    labels = [lab.as_dict() for lab in current_services().store.list_labels(project=project_ref())]
    return render_template("library.html", labels=labels)


@bp.get("/tag")
@bp.get("/tag/<int:image_id>")
@requires("viewer")
def tag(image_id: int | None = None) -> str:
    """The tagging page; without an id it opens the oldest untagged image."""
    store = current_services().store
    project = project_ref()
    if image_id is None:
        untagged, _ = store.list_images(page=1, page_size=1, tagged=False, newest_first=False, project=project)
        first, _ = store.list_images(page=1, page_size=1, newest_first=False, project=project)
        image_id = untagged[0].id if untagged else (first[0].id if first else None)
        labels = [lab.as_dict() for lab in store.list_labels(project=project)]
    else:
        store.get_image(image_id, project=project)  # 404 page for an unknown id
        labels = [lab.as_dict() for lab in store.list_labels(project=store.image_project(image_id).id)]
    return render_template("tag.html", image_id=image_id, labels=labels)


@bp.get("/api/v1/images")
@requires("viewer")
def list_images() -> Any:
    """One page of images: {items, page, page_size, total}; filters tagged, label, split, camera."""
    page = int_arg("page", 1)
    page_size = int_arg("page_size", 48, high=MAX_PAGE_SIZE)
    split = request.args.get("split") or None
    if split is not None and split not in SPLITS:
        raise ApiError(400, f"split must be one of {', '.join(SPLITS)}")
    order = request.args.get("order", "newest")
    if order in ("uncertainty", "similarity") or request.args.get("inbox"):
        from edge.web.assist import review_page  # the review queue and the inbox (model-assisted labelling)

        return review_page()
    if order not in ("newest", "oldest"):
        raise ApiError(400, "order must be newest, oldest, uncertainty or similarity")
    items, total = current_services().store.list_images(
        page=page,
        page_size=page_size,
        tagged=bool_arg("tagged"),
        label=request.args.get("label") or None,
        split=split,
        camera=request.args.get("camera") or None,
        newest_first=order == "newest",
        project=project_ref(),
    )
    return jsonify({"items": [r.as_dict() for r in items], "page": page, "page_size": page_size, "total": total})


@bp.post("/api/v1/images")
@requires("labeller")
def upload_images() -> Any:
    """Upload one or many images (multipart field `file`); all are validated before any is stored."""
    try:
        files = request.files.getlist("file")
    except RequestEntityTooLarge as err:
        # Werkzeug answers 413 both for a body over MAX_CONTENT_LENGTH and for too many multipart parts.
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        if request.content_length is not None and (limit is None or request.content_length <= limit):
            parts = request.max_form_parts
            raise ApiError(413, f"the upload has more than {parts} files: send at most {parts} per request") from err
        raise
    if not files:
        raise ApiError(400, "no image in the multipart field 'file'")
    batch: list[tuple[str, bytes]] = []
    for upload in files:
        # Only the base name is kept: a browser or client may send a path, and it must not travel further.
        name = PurePath((upload.filename or "upload").replace("\\", "/")).name or "upload"
        batch.append((name, upload.read()))
    records = current_services().store.add_images(batch, project=project_ref())
    duplicates = sum(1 for (_, _), r in zip(batch, records, strict=True) if r.duplicate_of == r.id)
    log.info("uploaded %s images (%s already stored)", len(records), duplicates)
    return jsonify({"items": [r.as_dict() for r in records], "stored": len(records) - duplicates}), 201


@bp.get("/api/v1/images/<int:image_id>")
@requires("viewer")
def get_image(image_id: int) -> Any:
    """One image's record with its annotations."""
    return jsonify(current_services().store.get_image(image_id, project=project_ref()).as_dict())


@bp.get("/api/v1/images/<int:image_id>/file")
@requires("viewer")
def image_file(image_id: int) -> Response:
    """The stored image file."""
    store = current_services().store
    record = store.get_image(image_id, project=project_ref())
    path = store.image_path(image_id)
    if not path.is_file():
        raise NotFoundError(f"the file of image {image_id} is missing")
    resp = send_file(path, mimetype=_mimetype(record.ext), etag=record.sha256, max_age=3600, conditional=True)
    return resp


@bp.get("/api/v1/images/<int:image_id>/thumb.jpg")
@requires("viewer")
def image_thumb(image_id: int) -> Response:
    """A small JPEG of the image for grids (cached on disk by content hash)."""
    store = current_services().store
    record = store.get_image(image_id, project=project_ref())
    cache = Path(store.data_dir) / THUMBS_DIR / f"{record.sha256}.jpg"
    if not cache.is_file():
        source = store.image_path(image_id)
        if not source.is_file():
            raise NotFoundError(f"the file of image {image_id} is missing")
        _make_thumb(source, cache)
    return send_file(cache, mimetype="image/jpeg", etag=record.sha256, max_age=86400, conditional=True)


def _make_thumb(source: Path, target: Path) -> None:
    import cv2

    try:
        _, image = decode_image(source.read_bytes(), source.name, max_pixels=MAX_FRAME_PIXELS)
    except ImageError as err:
        raise ApiError(500, f"the stored image {source.name} cannot be decoded: {err}") from err
    h, w = image.shape[:2]
    if w > THUMB_WIDTH:
        image = cv2.resize(image, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 82])
    if not ok:
        raise ApiError(500, f"cannot make a thumbnail of {source.name}")
    # A unique temp file per writer: the grid may ask for the same thumbnail on several threads at once.
    write_atomic(target, encoded.tobytes())


def _mimetype(ext: str) -> str:
    return {
        "jpg": "image/jpeg",
        "png": "image/png",
        "bmp": "image/bmp",
        "webp": "image/webp",
        "tif": "image/tiff",
    }.get(ext, "application/octet-stream")


def _delete(ids: list[int]) -> int:
    """Delete images and their cached thumbnails; how many existed."""
    store = current_services().store
    project = project_ref()
    hashes = []
    for image_id in set(ids):
        try:
            hashes.append(store.get_image(image_id, project=project).sha256)
        except NotFoundError:
            continue
    from edge.web.trash import keeping_images

    with keeping_images(store, ids, project) as kept:  # files and annotations go to the trash (restore: /trash)
        deleted = int(store.delete_images(ids, project=project))
    g.trash_entry = kept.get("id")
    for sha256 in hashes:
        (Path(store.data_dir) / THUMBS_DIR / f"{sha256}.jpg").unlink(missing_ok=True)
    return deleted


@bp.delete("/api/v1/images/<int:image_id>")
@requires("labeller")
def delete_image(image_id: int) -> Any:
    """Delete one image with its annotations."""
    if _delete([image_id]) == 0:
        raise NotFoundError(f"image {image_id} does not exist")
    return jsonify({"deleted": 1, "trash": g.get("trash_entry")})


@bp.post("/api/v1/images/delete")
@requires("labeller")
def delete_many() -> Any:
    """Bulk delete: {"ids": [...]} -> {"deleted": n} (ids that do not exist are skipped)."""
    body = read_model(IdsBody)
    deleted = _delete(body.ids)
    return jsonify({"deleted": deleted, "trash": g.get("trash_entry")})


@bp.post("/api/v1/images/split")
@requires("labeller")
def set_split() -> Any:
    """Put images into a split by hand: {"ids": [...], "split": "train"|"val"|"test"|"auto"}."""
    body = read_model(SplitBody)
    current_services().store.set_split(body.ids, body.split, project=project_ref())
    return jsonify({"updated": len(set(body.ids)), "split": body.split})


@bp.get("/api/v1/images/<int:image_id>/annotations")
@requires("viewer")
def get_annotations(image_id: int) -> Any:
    """The image's tags and boxes (normalised x1, y1, x2, y2)."""
    return jsonify(current_services().store.get_annotations(image_id, project=project_ref()).as_dict())


@bp.put("/api/v1/images/<int:image_id>/annotations")
@requires("labeller")
def put_annotations(image_id: int) -> Any:
    """Replace the image's tags, boxes and nothing_to_box mark; 400 for coordinates outside 0..1, x1 >= x2, y1 >= y2,
    unknown labels or boxes with nothing_to_box."""
    body = read_model(AnnotationsBody)
    boxes = [Box(b.label, b.x1, b.y1, b.x2, b.y2) for b in body.boxes]
    saved = current_services().store.set_annotations(
        image_id, body.tags, boxes, project=project_ref(), nothing_to_box=body.nothing_to_box
    )
    return jsonify(saved.as_dict())
