"""Import a whole Dataset (validated first, stored all or nothing) and export the store as one."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from edge.config import DatasetRulesConfig
from edge.datasets.model import SPLITS, Box, Dataset, LabelInfo, Sample
from edge.errors import AnnotationError, DatasetError, ImageError
from edge.store import annotation_rows, image_rows, labels
from edge.store.connection import StoreConnection
from edge.store.images import ImageFacts, validate_image
from edge.store.validation import COLOR, IMPORT_CLAMP_TOLERANCE, check_box, check_label_name, safe_file_name

log = logging.getLogger(__name__)


@dataclass
class _PendingImport:
    sample: Sample
    facts: ImageFacts
    tags: list[str]
    boxes: list[Box]


def _validate_sample(sample: Sample, label_names: dict[str, str], rules: DatasetRulesConfig) -> _PendingImport:
    try:
        data = Path(sample.path).read_bytes()
    except OSError as err:
        raise DatasetError(f"{sample.name}: cannot read {sample.path}: {err.strerror or err}") from err
    facts = validate_image(data, sample.name, max_image_mb=rules.max_image_mb, max_pixels=rules.max_pixels)
    tags: list[str] = []
    for tag in sample.tags:
        canonical = label_names[check_label_name(tag).casefold()]
        if canonical not in tags:
            tags.append(canonical)
    boxes = []
    for index, box in enumerate(sample.boxes):
        try:
            valid = check_box(box, f"{sample.name} box {index + 1}", clamp=IMPORT_CLAMP_TOLERANCE)
        except AnnotationError as err:
            raise DatasetError(str(err)) from err
        boxes.append(Box(label_names[check_label_name(box.label).casefold()], valid.x1, valid.y1, valid.x2, valid.y2))
    return _PendingImport(sample=sample, facts=facts, tags=tags, boxes=boxes)


def import_dataset(
    db: StoreConnection,
    images_dir: Path,
    rules: DatasetRulesConfig,
    ds: Dataset,
    *,
    project_id: int,
    split_from_source: bool,
) -> dict[str, int]:
    """Add a whole dataset to the project in one transaction after validating every image and box first."""
    # Every label the dataset names, declared or only used, in its declared order; canonical spelling kept.
    declared: dict[str, LabelInfo] = {}
    for info in ds.labels:
        declared.setdefault(check_label_name(info.name).casefold(), info)
    for sample in ds.samples:
        for name in [*sample.tags, *(b.label for b in sample.boxes)]:
            declared.setdefault(check_label_name(name).casefold(), LabelInfo(name.strip()))
    with db.tx() as conn:
        existing = labels.ids_by_name(conn, project_id)
    label_names = {key: existing[key][1] if key in existing else info.name.strip() for key, info in declared.items()}

    pending: list[_PendingImport] = []
    for sample in ds.samples:
        try:
            pending.append(_validate_sample(sample, label_names, rules))
        except (ImageError, DatasetError) as err:
            raise DatasetError(f"nothing imported: {err}") from err

    stats = {"images": 0, "duplicates": 0, "boxes": 0, "tags": 0, "labels": 0}
    written = image_rows.PendingFiles(images_dir)
    try:
        with db.tx(write=True) as conn:
            known = labels.ids_by_name(conn, project_id)
            for key, info in declared.items():
                if key not in known:
                    # A source's colour is a hint: one we cannot use gets a palette colour instead.
                    color = info.color if info.color and COLOR.match(info.color) else None
                    labels.create(conn, project_id, info.name, info.description or "", color)
                    stats["labels"] += 1
            known = labels.ids_by_name(conn, project_id)
            new = image_rows.NewImages(conn, project_id, images_dir, written, rules.near_duplicate_distance)
            for item in pending:
                facts = item.facts
                found = image_rows.id_by_sha256(conn, project_id, facts.sha256)
                tag_ids = [known[t.casefold()][0] for t in item.tags]
                box_ids = [(known[b.label.casefold()][0], b) for b in item.boxes]
                if found is not None:
                    stats["duplicates"] += 1
                    image_id = found
                    # A copy we already hold gains the imported annotations only when it had none: importing
                    # the same dataset twice must not double its boxes.
                    if annotation_rows.has_any(conn, image_id) or not (tag_ids or box_ids):
                        continue
                else:
                    data = Path(item.sample.path).read_bytes()
                    if hashlib.sha256(data).hexdigest() != facts.sha256:
                        raise DatasetError(f"nothing imported: {item.sample.name} changed while importing")
                    split = item.sample.split if split_from_source and item.sample.split in SPLITS else "auto"
                    name = item.sample.name
                    image_id, _ = new.add(data, facts, filename=name, camera=None, captured_at=None, split=split)
                    stats["images"] += 1
                annotation_rows.write(conn, image_id, tag_ids, box_ids, item.sample.nothing_to_box and not box_ids)
                stats["tags"] += len(tag_ids)
                stats["boxes"] += len(box_ids)
    except BaseException:
        written.discard()
        raise
    finally:
        written.close()
    log.info("imported %s", stats)
    return stats


def export_dataset(db: StoreConnection, images_dir: Path, *, project_id: int, only_tagged: bool) -> Dataset:
    """The project as a Dataset: sample.path is the stored file, sample.name a unique, safe file name."""
    with db.tx() as conn:
        label_infos = [
            LabelInfo(lab.name, lab.description, lab.color) for lab in labels.label_records(conn, project_id)
        ]
        records = image_rows.all_records(conn, project_id)
    samples: list[Sample] = []
    used: set[str] = set()
    for rec in records:
        if only_tagged and not rec.tagged:
            continue
        name = safe_file_name(rec.filename, f"image-{rec.id}", rec.ext)
        if name.casefold() in used:
            name = safe_file_name(f"{Path(name).stem}-{rec.id}", f"image-{rec.id}", rec.ext)
        used.add(name.casefold())
        samples.append(
            Sample(
                path=image_rows.path_for(images_dir, rec.sha256, rec.ext),
                name=name,
                tags=list(rec.tags),
                boxes=list(rec.boxes),
                split=rec.split,
                width=rec.width,
                height=rec.height,
                nothing_to_box=rec.nothing_to_box,
            )
        )
    return Dataset(labels=label_infos, samples=samples)
