"""The store side of assisted labelling: suggestions, similarity to labelled examples, accept, queue order, inbox.

Each function opens one store transaction (DatasetStore.assist_tx) and calls edge.store.assist_rows in it.
Similarity: an image's (the classification bundle's embedding, `similar`) and each suggested box's against the
project's human-drawn boxes of each label: the detection model's feature map pooled in the box when the bundle
exports one (the model that suggested, edge.assist.suggest.feature_model), else its appearance
(edge.assist.appearance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from edge.assist import appearance
from edge.assist.suggest import Suggestion, box_features, feature_model, feature_versions
from edge.datasets.imaging import decode_image
from edge.datasets.model import Box
from edge.errors import AnnotationError, NotFoundError
from edge.store import DatasetStore, assist_rows
from edge.store.assist_rows import SuggestionRecord
from edge.store.records import Annotations, ImageRecord

TOP_K = 3  # a label's similarity = the mean cosine to its TOP_K most similar labelled examples
QueueOrder = Literal["uncertainty", "similarity"]
BOX_EXAMPLES = appearance.ExampleCache()


def photo(store: DatasetStore, image_id: int) -> np.ndarray:
    """The image's pixels (BGR), decoded within the store's pixel limit."""
    path = store.image_path(image_id)
    return decode_image(path.read_bytes(), path.name, max_pixels=store.rules.max_pixels)[1]


def save(store: DatasetStore, image_id: int, suggestion: Suggestion) -> None:
    """Keep the suggestion for the image (replacing an older one)."""
    with store.assist_tx(write=True) as conn:
        assist_rows.put(
            conn,
            image_id,
            suggestion.version,
            suggestion.tags,
            suggestion.boxes,
            suggestion.margin,
            suggestion.embedding,
        )


def get(store: DatasetStore, image_id: int) -> SuggestionRecord | None:
    """The image's stored suggestion, or None."""
    with store.assist_tx() as conn:
        return assist_rows.get(conn, image_id)


def pending(
    store: DatasetStore, project_id: int, version: str, *, after_id: int = 0, untagged: bool = False
) -> list[int]:
    """Ids of the project's images (above after_id; only unannotated ones when untagged) lacking a suggestion."""
    with store.assist_tx() as conn:
        return assist_rows.without_suggestion(conn, project_id, version, after_id=after_id, untagged=untagged)


def newest_image_id(store: DatasetStore) -> int:
    """The highest image id in the store (0 when empty)."""
    with store.assist_tx() as conn:
        return assist_rows.max_image_id(conn)


def _examples(store: DatasetStore, project_id: int, version: str) -> dict[str, tuple[list[int], np.ndarray]]:
    with store.assist_tx() as conn:
        raw = assist_rows.labelled_embeddings(conn, project_id, version)
    return {
        label: ([i for i, _ in rows], np.stack([np.frombuffer(b, dtype=np.float32) for _, b in rows]))
        for label, rows in raw.items()
    }


def _similar(
    embedding: np.ndarray, image_id: int, examples: dict[str, tuple[list[int], np.ndarray]]
) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, (ids, matrix) in sorted(examples.items()):
        if matrix.shape[1] != embedding.shape[0]:
            continue
        keep = np.array([i != image_id for i in ids])
        if not keep.any():
            continue
        cosines = np.sort(matrix[keep] @ embedding)[::-1][:TOP_K]
        out[label] = round(float(np.mean(cosines)), 3)
    return out


def similar(store: DatasetStore, project_id: int, record: SuggestionRecord) -> dict[str, float] | None:
    """Per label, the image's similarity to that label's labelled examples (None when the bundle has no embedding)."""
    if record.embedding is None:
        return None
    return _similar(record.embedding, record.image_id, _examples(store, project_id, record.version))


def box_examples(store: DatasetStore, project_id: int, model: Any = None) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Per label, (image id, vector) of every box a person drew in the project: the appearance descriptor, or with
    a detection `model` exporting a feature map, the map pooled in the box (the model run on the box's photo)."""
    from edge.store import image_rows

    with store.assist_tx() as conn:
        boxed = [r for r in image_rows.all_records(conn, project_id) if r.boxes]

    def by_model(image: np.ndarray, boxes: Sequence[Any]) -> list[np.ndarray]:
        return box_features(model, [image], [boxes])[0]

    describe, source = (appearance.descriptors, "appearance") if model is None else (by_model, model.version)
    out: dict[str, list[tuple[int, np.ndarray]]] = {}
    for rec in boxed:
        vectors = BOX_EXAMPLES.of(rec.sha256, lambda rec=rec: photo(store, rec.id), rec.boxes, describe, source)
        for box, vector in zip(rec.boxes, vectors, strict=True):
            if vector is not None:
                out.setdefault(box.label, []).append((rec.id, vector))
    return out


def box_source(record: SuggestionRecord) -> str | None:
    """Where the suggestion's box vectors came from: "appearance", a feature-map bundle's version, or None (no box
    has a vector: a classification suggestion, or one stored before boxes had them)."""
    if not any(isinstance(b.get("embedding"), list) for b in record.boxes):
        return None
    return record.version if any(b.get("similar_source") == "model" for b in record.boxes) else "appearance"


def drawn_examples(store: DatasetStore, project_id: int, sources: Sequence[str]) -> dict[str, Any]:
    """box_examples per source ("appearance" or a version whose feature-map model this process has)."""
    out: dict[str, Any] = {}
    for source in sources:
        model = None if source == "appearance" else feature_model(source)
        if source == "appearance" or model is not None:
            out[source] = box_examples(store, project_id, model)
    return out


def box_similar(
    store: DatasetStore, project_id: int, record: SuggestionRecord, examples: dict[str, Any] | None = None
) -> list[dict[str, float] | None] | None:
    """Per suggested box, per label its similarity to that label's drawn boxes (None when no box has a vector, or
    its vectors are the model's and that model has not run in this process). `examples`: drawn_examples' dict."""
    source = box_source(record)
    if source is None:
        return None
    found = (drawn_examples(store, project_id, [source]) if examples is None else examples).get(source)
    if found is None:
        return None
    return appearance.similar_boxes(record.boxes, found, record.image_id, TOP_K)


def best_box_similarity(sims: Sequence[dict[str, float] | None], boxes: Sequence[dict[str, Any]]) -> float | None:
    """The highest similarity of a suggested box to the drawn boxes of its own label."""
    values = [s[b["label"]] for s, b in zip(sims, boxes, strict=True) if s and b["label"] in s]
    return max(values, default=None)


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def chosen(
    record: SuggestionRecord,
    *,
    tags: Sequence[str] | None,
    boxes: Sequence[int] | Literal["all"] | None,
    min_score: float,
) -> tuple[list[str], list[Box]]:
    """What an accept takes from a suggestion.

    Named `tags` are taken whatever their score (they must be suggested labels); `boxes` as indices are taken
    whatever their score, "all" takes every box scoring at least `min_score`. With neither, the best tag (if it
    scores at least `min_score`) and every box scoring at least `min_score`.
    """
    suggested = {t["label"].casefold(): t for t in record.tags}
    take_tags: list[str] = []
    take_boxes: list[dict[str, Any]] = []
    if tags is None and boxes is None:
        if record.tags and record.tags[0]["score"] >= min_score:
            take_tags.append(record.tags[0]["label"])
        take_boxes = [b for b in record.boxes if b["score"] >= min_score]
    if tags is not None:
        for name in tags:
            if not isinstance(name, str) or name.casefold() not in suggested:
                raise AnnotationError(f"tag {name!r} is not among the suggested labels")
            take_tags.append(suggested[name.casefold()]["label"])
    if boxes == "all":
        take_boxes = [b for b in record.boxes if b["score"] >= min_score]
    elif boxes is not None:
        for index in boxes:
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(record.boxes):
                raise AnnotationError(f"box index {index!r} is not one of the {len(record.boxes)} suggested boxes")
            take_boxes.append(record.boxes[index])
    return take_tags, [Box(b["label"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in take_boxes]


def accept(
    store: DatasetStore,
    image_id: int,
    *,
    tags: Sequence[str] | None = None,
    boxes: Sequence[int] | Literal["all"] | None = None,
    min_score: float,
) -> tuple[Annotations, int, int]:
    """Add the chosen suggestions to the image's annotations (a person's action); returns the new annotations and
    how many tags and boxes were added. A box overlapping an existing box of its label (IoU >= 0.9) is not added
    twice; NotFoundError when the image has no suggestion."""
    with store.assist_tx(write=True) as conn:
        record = assist_rows.get(conn, image_id)
        if record is None:
            raise NotFoundError(f"image {image_id} has no suggestions")
        take_tags, take_boxes = chosen(record, tags=tags, boxes=boxes, min_score=min_score)
        current = store.get_annotations(image_id)
        new_tags = list(current.tags)
        for name in take_tags:
            if name.casefold() not in {t.casefold() for t in new_tags}:
                new_tags.append(name)
        new_boxes = list(current.boxes)
        added_boxes = 0
        for box in take_boxes:
            if any(b.label.casefold() == box.label.casefold() and _iou(b, box) >= 0.9 for b in new_boxes):
                continue
            new_boxes.append(box)
            added_boxes += 1
        result = store.set_annotations(image_id, new_tags, new_boxes)
    return result, len(new_tags) - len(current.tags), added_boxes


def top_score(record: SuggestionRecord) -> float:
    """The best score of a suggestion (its top tag or box), 0 without any."""
    scores = [t["score"] for t in record.tags[:1]] + [b["score"] for b in record.boxes]
    return max(scores, default=0.0)


def queue(
    store: DatasetStore,
    project_id: int,
    *,
    order: QueueOrder | None,
    tagged: bool | None,
    inbox: bool | None,
    page: int,
    page_size: int,
) -> tuple[list[ImageRecord], int, dict[int, str], dict[int, float]]:
    """One page of the project's images for review, with inbox reasons and (order=similarity) each image's best
    similarity. uncertainty: smallest margin first (images without a suggestion last); similarity: most similar
    to a labelled example first (an image's embedding, else its best box's appearance; neither: last); None: newest
    first."""
    # Decoded (and, for feature-map bundles, run through the model) outside the transaction.
    sources = ["appearance", *feature_versions()] if order == "similarity" else []
    drawn = drawn_examples(store, project_id, sources)
    with store.assist_tx() as conn:
        rows = assist_rows.candidates(conn, project_id, tagged=tagged, inbox=inbox)
        ids = [r[0] for r in rows]
        best: dict[int, float] = {}
        if order == "uncertainty":
            ids = [r[0] for r in sorted(rows, key=lambda r: (r[1] is None, r[1] if r[1] is not None else 0.0, -r[0]))]
        elif order == "similarity":
            embedded = assist_rows.embeddings_of(conn, ids)
            versions = {v for v, _ in embedded.values()}
            examples = {v: _examples(store, project_id, v) for v in versions}
            for image_id, (version, blob) in embedded.items():
                sims = _similar(np.frombuffer(blob, dtype=np.float32), image_id, examples[version])
                if sims:
                    best[image_id] = max(sims.values())
            for image_id in ids:
                record = assist_rows.get(conn, image_id) if image_id not in best else None
                per_box = None if record is None else box_similar(store, project_id, record, drawn)
                value = None if per_box is None or record is None else best_box_similarity(per_box, record.boxes)
                if value is not None:
                    best[image_id] = value
            ids = sorted(ids, key=lambda i: (i not in best, -best.get(i, 0.0), -i))
        total = len(ids)
        start = (max(1, page) - 1) * page_size
        page_ids = ids[start : start + page_size]
        records = assist_rows.image_records(conn, page_ids)
        reasons = assist_rows.inbox_reasons(conn, page_ids)
    return records, total, reasons, {i: best[i] for i in page_ids if i in best}


def pages(total: int, page_size: int) -> int:
    """How many pages `total` items fill."""
    return max(1, math.ceil(total / max(1, page_size)))
