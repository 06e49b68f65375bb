"""Test-only views of a DatasetStore: a fingerprint of its whole content, and an image's stored bytes."""

from __future__ import annotations

import hashlib
import json

from edge.store import DatasetStore


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
