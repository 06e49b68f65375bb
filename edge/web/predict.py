"""The seeds' Predict: an image in, the running model's answer out."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, jsonify, request

from edge.datasets.imagesize import header_size, sniff_format
from edge.errors import ImageTooLargeError
from edge.web.http import ApiError
from edge.web.runtime_common import active_model, config

log = logging.getLogger(__name__)

bp = Blueprint("predict", __name__)


def _image_bytes() -> bytes:
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "no image in the multipart field 'file'")
        return upload.read()
    return request.get_data(cache=False)


def _refuse_too_many_pixels(data: bytes) -> None:
    """413 when the header declares more pixels than `dataset.max_pixels`, before decoding allocates them."""
    limit = int(config().dataset.max_pixels)
    ext = sniff_format(data)
    declared = header_size(data, ext) if ext is not None else None
    if declared is not None and declared[0] * declared[1] > limit:
        width, height = declared
        raise ImageTooLargeError(
            f"the image is {width}x{height} pixels, over the limit of {limit} (dataset.max_pixels)"
        )


def _threshold() -> float | None:
    raw = request.args.get("threshold")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError as err:
        raise ApiError(400, f"threshold must be a number between 0 and 1, got {raw!r}") from err
    if not 0.0 <= value <= 1.0:
        raise ApiError(400, f"threshold must be between 0 and 1, got {value:g}")
    return value


@bp.post("/api/v1/predict")
def predict() -> Any:
    """Classification -> {"label", "score", "label_scores"}; detection -> {"detections": [{"label", "score", "bbox"}]}.

    Body: multipart `file` or the raw image bytes. `?threshold=` overrides a detector's score threshold.
    Both answers also carry `model` {name, version, task} and `inference_ms`.
    """
    import cv2
    import numpy as np

    threshold = _threshold()
    data = _image_bytes()
    if not data:
        raise ApiError(400, "no image: send the image as multipart field 'file' or as the request body")
    model = active_model()  # 409 before decoding when there is nothing to predict with
    # A small compressed file can declare a huge image: a 160 KB PNG decoded to 300 MB before this check.
    _refuse_too_many_pixels(data)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ApiError(400, "the image cannot be decoded (send a JPEG, PNG, BMP or WebP file)")
    manifest = model.manifest
    started = time.perf_counter()
    body: dict[str, Any]
    if manifest.task == "classification":
        body = model.predict(image).as_dict()
    else:
        detections = model.predict(image, score_threshold=threshold)
        body = {
            "detections": [
                {"label": d.label, "score": round(float(d.score), 4), "bbox": [round(float(v), 4) for v in d.bbox]}
                for d in detections
            ]
        }
    body["model"] = {"name": manifest.name, "version": manifest.version, "task": manifest.task}
    body["inference_ms"] = round((time.perf_counter() - started) * 1000.0, 2)
    return jsonify(body)
