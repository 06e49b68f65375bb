"""A model's suggestions for images: tags or boxes with scores, the margin between its best answers, and the
embedding when the bundle exports one (manifest `outputs.embedding`, the name of an [N, D] output tensor).

Classification: every label with its probability, best first; margin = best - second best. Detection: the boxes
scoring at least SUGGEST_FLOOR (below the model's threshold too, so a person sees what the model almost found),
best first, each with its appearance descriptor (`embedding`, edge.assist.appearance: detection bundles export no
embedding; kept with the suggestion, never sent to a client); margin = the smallest distance of a box score to the
model's score threshold (1.0 without boxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.assist.appearance import descriptor, encode
from edge.runtime.preprocess import preprocess
from edge.runtime.wrappers import ClassificationModel, DetectionModel, as_bgr

SUGGEST_FLOOR = 0.05  # detection boxes scoring less are not suggested
MAX_BOXES = 100


@dataclass
class Suggestion:
    """What the model suggests for one image."""

    version: str
    tags: list[dict[str, Any]] = field(default_factory=list)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    margin: float | None = None
    embedding: np.ndarray | None = None


def embedding_output(model: ClassificationModel | DetectionModel) -> str | None:
    """The bundle's embedding tensor name when its manifest declares one that the engine has."""
    extra = model.manifest.outputs.model_extra or {}
    name = extra.get("embedding")
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
    out = []
    for i, found in enumerate(detections):
        ranked = sorted(found, key=lambda d: -d.score)[:MAX_BOXES]
        boxes = [
            {
                "label": d.label,
                "score": round(float(d.score), 4),
                "x1": round(float(d.bbox[0]), 5),
                "y1": round(float(d.bbox[1]), 5),
                "x2": round(float(d.bbox[2]), 5),
                "y2": round(float(d.bbox[3]), 5),
                "embedding": encode(descriptor(images_bgr[i], d.bbox)),
            }
            for d in ranked
        ]
        margin = min((abs(float(d.score) - threshold) for d in ranked), default=1.0)
        out.append(
            Suggestion(version, [], boxes, round(float(margin), 4), None if embeddings is None else embeddings[i])
        )
    return out
