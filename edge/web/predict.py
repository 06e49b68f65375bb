"""Predict: an image in, the running model's answer out."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, jsonify, request

from edge.datasets.imaging import decode_image
from edge.web.http import ApiError, fraction_arg
from edge.web.runtime_common import active_model, config
from edge.web.security import requires

log = logging.getLogger(__name__)

bp = Blueprint("predict", __name__)


def _image_bytes() -> bytes:
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "no image in the multipart field 'file'")
        return upload.read()
    return request.get_data(cache=False)


@bp.post("/api/v1/predict")
@requires("viewer")
def predict() -> Any:
    """Classification -> {"label", "score", "label_scores"}; detection -> {"detections": [{"label", "score", "bbox"}]}.

    Body: multipart `file` or the raw image bytes. `?threshold=` overrides a detector's score threshold.
    Both answers also carry `model` {name, version, task} and `inference_ms`.
    """
    threshold = fraction_arg("threshold", None)
    data = _image_bytes()
    if not data:
        raise ApiError(400, "no image: send the image as multipart field 'file' or as the request body")
    model = active_model()  # 409 before decoding when there is nothing to predict with
    # A small compressed file can declare a huge image (a 930 KB TIFF declares 30000x30000): the header is checked
    # against dataset.max_pixels before any decoder runs; ImageError is a 400, ImageTooLargeError a 413.
    _, image = decode_image(data, "the image", max_pixels=int(config().dataset.max_pixels))
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
