"""Test-only helpers of the dataset store: rules with small minimums, a fingerprint of its whole content, and an
image's stored bytes."""

from __future__ import annotations

import hashlib
import json

from edge.config.model import DatasetRulesConfig
from edge.store import DatasetStore


def small_dataset_rules(**changes: object) -> DatasetRulesConfig:
    """Dataset rules whose minimums a test fills quickly: 15 images, 5 per label, 3 boxes per label."""
    small = {"min_images": 15, "min_per_label_classification": 5, "min_boxes_per_label_detection": 3}
    return DatasetRulesConfig.model_validate(small | changes)


def dataset_fingerprint(store: DatasetStore) -> str:
    """sha256 over labels, images (content and split) and annotations: equal datasets, equal fingerprints."""
    labels = sorted(lab.name for lab in store.list_labels())
    records = store.export_dataset().samples
    digest = hashlib.sha256()
    digest.update(json.dumps(labels).encode())
    rows = []
    for sample in records:
        sha256 = sample.path.stem
        boxes = sorted((b.label, *(round(v, 6) for v in b.as_tuple())) for b in sample.boxes)
        rows.append((sha256, sample.split, sorted(sample.tags), boxes))
    for sha256, split, tags, boxes in sorted(rows, key=lambda r: r[0]):
        digest.update(json.dumps([sha256, split, tags, boxes]).encode())
    return digest.hexdigest()


def stored_bytes(store: DatasetStore, image_id: int) -> bytes:
    """The bytes of the image's stored file."""
    return store.image_path(image_id).read_bytes()
