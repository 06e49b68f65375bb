"""A model's suggestions for images: tags or boxes with scores, the margin between its best answers, and the
embedding when the bundle exports one (manifest `outputs.embedding`, the name of an [N, D] output tensor).

Classification: every label with its probability, best first; margin = best - second best. Detection: the boxes
scoring at least SUGGEST_FLOOR (below the model's threshold too, so a person sees what the model almost found),
best first, each with a vector for its similarity to drawn boxes (`embedding`, kept with the suggestion, never sent
to a client) and where it came from (`similar_source`): "model" when the bundle exports its trunk's feature map
(manifest `outputs.feature_map`, [N, C, h, w]): the mean of the map's cells inside the box, the box placed through
the same letterbox or stretch the model's input used, unit length; else "appearance" (edge.assist.appearance, a
descriptor of the box's pixels). margin = the smallest distance of a box score to the model's score threshold (1.0
without boxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.assist.appearance import descriptor, encode
from edge.runtime.preprocess import Letterbox, preprocess
from edge.runtime.wrappers import ClassificationModel, DetectionModel, as_bgr

SUGGEST_FLOOR = 0.05  # detection boxes scoring less are not suggested
MAX_BOXES = 100
_FEATURE_MODELS: dict[str, DetectionModel] = {}  # version -> a model that suggested with its feature map


@dataclass
class Suggestion:
    """What the model suggests for one image."""

    version: str
    tags: list[dict[str, Any]] = field(default_factory=list)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    margin: float | None = None
    embedding: np.ndarray | None = None


def embedding_output(model: ClassificationModel | DetectionModel, key: str = "embedding") -> str | None:
    """The bundle's embedding (or, key="feature_map", feature map) tensor name when its manifest declares one that
    the engine has."""
    extra = model.manifest.outputs.model_extra or {}
    name = extra.get(key)
    if isinstance(name, str) and name in model.engine.output_names:
        return name
    return None


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so a dot product is the cosine."""
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _infer_raw(
    model: ClassificationModel | DetectionModel, images: Sequence[np.ndarray]
) -> list[dict[str, np.ndarray]]:
    """The engine's outputs for each chunk of at most max_batch images."""
    chunks = []
    for start in range(0, len(images), model.max_batch):
        tensor, _ = preprocess([as_bgr(im) for im in images[start : start + model.max_batch]], model.manifest.input)
        chunks.append(model.engine.infer({model.manifest.input.tensor: tensor}))
    return chunks


def feature_model(version: str) -> DetectionModel | None:
    """The detection model of `version` that last suggested with its feature map in this process, if any."""
    return _FEATURE_MODELS.get(version)


def remember_feature_model(version: str, model: Any) -> bool:
    """Keep `version`'s detection model for pooling drawn boxes when its bundle exports a feature map (the newest
    two versions; the models stay loaded while kept here). False when the model has no feature map."""
    if not isinstance(model, DetectionModel) or not embedding_output(model, "feature_map"):
        return False
    _FEATURE_MODELS.pop(version, None)
    _FEATURE_MODELS[version] = model
    while len(_FEATURE_MODELS) > 2:
        _FEATURE_MODELS.pop(next(iter(_FEATURE_MODELS)))
    return True


def feature_versions() -> list[str]:
    """Versions whose feature-map model has suggested in this process."""
    return list(_FEATURE_MODELS)


def pooled(fmap: np.ndarray, placement: Letterbox, box: Sequence[float]) -> np.ndarray:
    """The unit-length mean of a [C, h, w] map's cells inside a box normalised to the image (at least one cell)."""
    _, h, w = fmap.shape
    x1, x2 = box[0] * placement.valid_w * w, box[2] * placement.valid_w * w
    y1, y2 = box[1] * placement.valid_h * h, box[3] * placement.valid_h * h
    c0 = min(w - 1, max(0, int(np.floor(x1))))
    r0 = min(h - 1, max(0, int(np.floor(y1))))
    c1 = max(c0 + 1, min(w, int(np.ceil(x2))))
    r1 = max(r0 + 1, min(h, int(np.ceil(y2))))
    return normalised(fmap[:, r0:r1, c0:c1].mean(axis=(1, 2))[None])[0]


def box_features(
    model: DetectionModel, images_bgr: Sequence[np.ndarray], boxes: Sequence[Sequence[Sequence[float]]]
) -> list[list[np.ndarray]]:
    """Per image, each of its boxes' pooled feature-map vector (the bundle must declare outputs.feature_map)."""
    name = embedding_output(model, "feature_map")
    if name is None:
        raise ValueError(f"bundle {model.version} exports no feature map")
    out: list[list[np.ndarray]] = []
    for start in range(0, len(images_bgr), model.max_batch):
        chunk = [as_bgr(im) for im in images_bgr[start : start + model.max_batch]]
        tensor, placements = preprocess(chunk, model.manifest.input)
        maps = np.asarray(model.engine.infer({model.manifest.input.tensor: tensor})[name], dtype=np.float32)
        for i, placement in enumerate(placements):
            out.append([pooled(maps[i], placement, b) for b in boxes[start + i]])
    return out


def suggest(model: ClassificationModel | DetectionModel, images_bgr: Sequence[np.ndarray]) -> list[Suggestion]:
    """The model's suggestion for each image (BGR uint8, any size)."""
    if not images_bgr:
        return []
    emb_name = embedding_output(model)
    version = model.version
    if isinstance(model, ClassificationModel):
        out: list[Suggestion] = []
        logits_name = model.manifest.outputs.logits  # type: ignore[union-attr]
        for outputs in _infer_raw(model, images_bgr):
            probs = model.probabilities(outputs[logits_name])
            embeddings = normalised(outputs[emb_name]) if emb_name else None
            for i, row in enumerate(probs):
                order = np.argsort(-row)
                tags = [{"label": model.labels[j], "score": round(float(row[j]), 4)} for j in order]
                margin = float(row[order[0]] - row[order[1]]) if len(order) > 1 else float(row[order[0]])
                out.append(
                    Suggestion(version, tags, [], round(margin, 4), None if embeddings is None else embeddings[i])
                )
        return out
    threshold = model.manifest.thresholds.score
    detections = model.predict_batch(list(images_bgr), score_threshold=SUGGEST_FLOOR)
    embeddings = None
    if emb_name:
        embeddings = np.concatenate([normalised(o[emb_name]) for o in _infer_raw(model, images_bgr)])
    ranked_all = [sorted(found, key=lambda d: -d.score)[:MAX_BOXES] for found in detections]
    by_model = None
    if isinstance(model, DetectionModel) and embedding_output(model, "feature_map"):
        by_model = box_features(model, images_bgr, [[d.bbox for d in r] for r in ranked_all])
        remember_feature_model(version, model)
    out = []
    for i, ranked in enumerate(ranked_all):
        boxes = [
            {
                "label": d.label,
                "score": round(float(d.score), 4),
                "x1": round(float(d.bbox[0]), 5),
                "y1": round(float(d.bbox[1]), 5),
                "x2": round(float(d.bbox[2]), 5),
                "y2": round(float(d.bbox[3]), 5),
                "embedding": encode(descriptor(images_bgr[i], d.bbox) if by_model is None else by_model[i][k]),
                "similar_source": "appearance" if by_model is None else "model",
            }
            for k, d in enumerate(ranked)
        ]
        margin = min((abs(float(d.score) - threshold) for d in ranked), default=1.0)
        out.append(
            Suggestion(version, [], boxes, round(float(margin), 4), None if embeddings is None else embeddings[i])
        )
    return out
