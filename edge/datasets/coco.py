"""COCO JSON: an annotations file (`images`, `annotations`, `categories`) beside the image files.

Files found (unless one is given with `annotations=`): `annotations.json`, `_annotations.coco.json`,
`instances.json` or `coco.json` in the root or `annotations/` (no split); per-split files in the same places
whose name carries a split word (`annotations_train.json`, `instances_val2017.json`, `test.json`); and Roboflow's
`<split>/_annotations.coco.json`. An image's `file_name` is looked up relative to its annotations file, the root,
and `images/` under either. Boxes are pixel `[x, y, w, h]`, normalised with the image entry's `width`/`height` (or
the image header when those are missing). Extension fields: `"tags": [...]` on an image entry holds its image-level
tags; `"nothing_to_box": true` on an image entry marks a photo checked and found with nothing to box (a detector's
negative; ignored when the image has boxes); `"description"` and `"color"` on a category hold the label's
description and display colour.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.datasets.imaging import image_size
from edge.datasets.model import Box, Dataset, LabelInfo, Sample
from edge.datasets.paths import copy_image, output_file_names, relative_name, resolve_inside, split_from_name
from edge.datasets.sidecars import read_text
from edge.errors import DatasetError

log = logging.getLogger(__name__)

UNSPLIT_STEMS = ("annotations", "_annotations.coco", "instances", "coco")
_SPLIT_WORD = re.compile(r"[A-Za-z]+")


@dataclass
class _AnnotationFile:
    path: Path
    split: str


def find_annotation_files(root: Path) -> list[_AnnotationFile]:
    """Every COCO annotations file under root in the known places, with the split its name or folder gives."""
    found: list[_AnnotationFile] = []
    for folder in (root, root / "annotations"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            stem = path.name[: -len(".json")]
            if stem in UNSPLIT_STEMS:
                found.append(_AnnotationFile(path, "auto"))
                continue
            splits = {s for w in _SPLIT_WORD.findall(stem) if (s := split_from_name(w))}
            if len(splits) == 1:
                found.append(_AnnotationFile(path, splits.pop()))
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        split = split_from_name(child.name)
        if split and child.is_dir():
            for stem in UNSPLIT_STEMS:
                path = child / f"{stem}.json"
                if path.is_file():
                    found.append(_AnnotationFile(path, split))
                    break
    return found


def read_coco(src: Path, annotations: str | Path | None = None) -> Dataset:
    """Read a COCO dataset: src is its folder (or an annotations file, whose folder is then the root)."""
    if src.is_file():
        # instances_val2017.json style files sit in annotations/ beside the image folders.
        root = src.parent.parent if src.parent.name == "annotations" else src.parent
        files = [_AnnotationFile(src, _split_of_file(src))]
    else:
        root = src
        if annotations is not None:
            path = Path(annotations)
            path = path if path.is_absolute() else root / path
            if not path.is_file():
                raise DatasetError(f"COCO annotations file {path} does not exist")
            files = [_AnnotationFile(path, _split_of_file(path))]
        else:
            files = find_annotation_files(root)
    if not files:
        raise DatasetError(
            f"{src}: no COCO annotations file found (annotations.json, _annotations.coco.json, "
            "annotations_<split>.json or <split>/_annotations.coco.json); name one with --annotations"
        )
    ds = Dataset()
    seen: set[str] = set()
    for ann_file in files:
        _read_file(ann_file, root, ds, seen)
    log.info("read COCO dataset %s: %d images, %d labels", root, len(ds.samples), len(ds.labels))
    return ds


def write_coco(ds: Dataset, out: Path) -> None:
    """Write ds as COCO into the (staged, empty) folder out: images/ plus one annotations file per split."""
    file_names = output_file_names(ds.samples)
    categories = []
    for i, label in enumerate(ds.labels):
        category: dict[str, Any] = {"id": i, "name": label.name, "supercategory": "none"}
        if label.description:
            category["description"] = label.description
        if label.color:
            category["color"] = label.color
        categories.append(category)
    category_ids = {name: i for i, name in enumerate(ds.label_names)}
    documents: dict[str, dict[str, Any]] = {}
    annotation_id = 0
    for image_id, (sample, file_name) in enumerate(zip(ds.samples, file_names, strict=True), start=1):
        copy_image(sample, out / "images" / file_name)
        width, height = sample.width, sample.height
        if not width or not height:
            width, height = image_size(sample.path)
        split = sample.split if sample.split in ("train", "val", "test") else "auto"
        doc = documents.setdefault(split, {"images": [], "annotations": [], "categories": categories})
        entry: dict[str, Any] = {"id": image_id, "file_name": f"images/{file_name}", "width": width, "height": height}
        if sample.tags:
            entry["tags"] = list(sample.tags)
        if sample.nothing_to_box and not sample.boxes:
            entry["nothing_to_box"] = True
        doc["images"].append(entry)
        for box in sample.boxes:
            if box.label not in category_ids:
                raise DatasetError(f"sample {sample.name!r} has a box of label {box.label!r}, not in the label list")
            annotation_id += 1
            x, y = box.x1 * width, box.y1 * height
            w, h = (box.x2 - box.x1) * width, (box.y2 - box.y1) * height
            doc["annotations"].append(
                {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": category_ids[box.label],
                    "bbox": [round(x, 4), round(y, 4), round(w, 4), round(h, 4)],
                    "area": round(w * h, 4),
                    "iscrowd": 0,
                    "segmentation": [],
                }
            )
    if not documents:
        documents["auto"] = {"images": [], "annotations": [], "categories": categories}
    for split, doc in documents.items():
        file_name = "annotations.json" if split == "auto" else f"annotations_{split}.json"
        (out / file_name).write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")


def _split_of_file(path: Path) -> str:
    stem = path.name[: -len(".json")] if path.name.endswith(".json") else path.stem
    splits = {s for w in _SPLIT_WORD.findall(stem) if (s := split_from_name(w))}
    if len(splits) == 1:
        return splits.pop()
    parent_split = split_from_name(path.parent.name)
    return parent_split or "auto"


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"{path}: malformed or truncated JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from err
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path}: not a COCO annotations file (expected an object with an 'images' list)")
    return data


def _read_file(ann_file: _AnnotationFile, root: Path, ds: Dataset, seen: set[str]) -> None:
    path = ann_file.path
    data = _load_json(path)
    category_names = _read_categories(path, data, ds)
    samples_by_id: dict[Any, Sample] = {}
    for i, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "file_name" not in entry or "id" not in entry:
            raise DatasetError(f"{path}: images[{i}] needs 'id' and 'file_name'")
        image_id = _coco_id(f"{path}: images[{i}] 'id'", entry["id"])
        file_name = entry["file_name"]
        if not isinstance(file_name, str):
            raise DatasetError(f"{path}: images[{i}] 'file_name' must be text, found {_short(file_name)}")
        try:
            image_path = _find_image(root, path.parent, file_name)
        except DatasetError as err:
            raise DatasetError(f"{path}: images[{i}]: {err}") from err
        name = relative_name(root, image_path)
        if name in seen:
            raise DatasetError(f"{path}: image {file_name!r} is listed more than once")
        seen.add(name)
        width, height = entry.get("width"), entry.get("height")
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            width, height = image_size(image_path)
        tags = entry.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise DatasetError(f"{path}: images[{i}] 'tags' must be a list of label names")
        for tag in tags:
            ds.ensure_label(tag)
        sample = Sample(
            path=image_path, name=name, tags=list(dict.fromkeys(tags)), split=ann_file.split, width=width, height=height
        )
        sample.nothing_to_box = entry.get("nothing_to_box") is True
        if image_id in samples_by_id:
            raise DatasetError(f"{path}: image id {image_id!r} is used twice")
        samples_by_id[image_id] = sample
        ds.samples.append(sample)
    annotations = data.get("annotations") or []
    if not isinstance(annotations, list):
        raise DatasetError(f"{path}: 'annotations' must be a list")
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        if not isinstance(ann, dict):
            raise DatasetError(f"{where} is not an object")
        target = samples_by_id.get(_coco_id(f"{where} 'image_id'", ann.get("image_id")))
        if target is None:
            raise DatasetError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        category_id = _coco_id(f"{where} 'category_id'", ann.get("category_id"))
        if category_id not in category_names:
            raise DatasetError(f"{where}: unknown category id {category_id!r} (not in 'categories')")
        target.boxes.append(_box(where, ann, category_names[category_id], target.width or 0, target.height or 0))
        target.nothing_to_box = False  # a box ends the mark, as on the Tag page


def _read_categories(path: Path, data: dict[str, Any], ds: Dataset) -> dict[Any, str]:
    categories = data.get("categories") or []
    if not isinstance(categories, list) or not all(
        isinstance(c, dict) and "id" in c and "name" in c for c in categories
    ):
        raise DatasetError(f"{path}: 'categories' must be a list of objects with 'id' and 'name'")
    for i, category in enumerate(categories):
        _coco_id(f"{path}: categories[{i}] 'id'", category["id"])
        if not isinstance(category["name"], str):
            raise DatasetError(f"{path}: categories[{i}] 'name' must be text, found {_short(category['name'])}")
    annotations = data.get("annotations") or []
    used = {
        a.get("category_id")
        for a in (annotations if isinstance(annotations, list) else [])
        if isinstance(a, dict) and isinstance(a.get("category_id"), int | str)
    }
    supercategories = {c.get("supercategory") for c in categories if isinstance(c.get("supercategory"), str)}
    names: dict[Any, str] = {}
    if all(isinstance(c["id"], int) for c in categories):
        categories = sorted(categories, key=lambda c: c["id"])
    for category in categories:
        name = str(category["name"])
        if category["id"] in names:
            raise DatasetError(f"{path}: category id {category['id']!r} is used twice")
        names[category["id"]] = name
        # Roboflow exports a placeholder category named after the project, the supercategory of the real ones.
        if name in supercategories and category["id"] not in used and len(categories) > 1:
            continue
        if name not in ds.label_names:
            ds.labels.append(
                LabelInfo(name, description=str(category.get("description") or ""), color=category.get("color"))
            )
    return names


def _find_image(root: Path, ann_dir: Path, file_name: str) -> Path:
    bases = [ann_dir, root, root / "images", ann_dir / "images"]
    for base in dict.fromkeys(bases):
        candidate = resolve_inside(root, file_name, base=base)
        if candidate.is_file():
            return candidate
    raise DatasetError(f"image file {file_name!r} is missing (looked beside the annotations file and in images/)")


def _coco_id(where: str, value: Any) -> int | str:
    """A COCO id: an integer or a string (JSON lets a client send a list or an object: refused, naming it)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DatasetError(f"{where} must be an integer or a string, found {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _polygon_bbox(where: str, segmentation: Any) -> list[float]:
    """[x, y, w, h] around COCO polygons [[x1, y1, x2, y2, ...], ...]; DatasetError on any other shape."""
    if not isinstance(segmentation, list) or not all(isinstance(p, list) for p in segmentation):
        raise DatasetError(
            f"{where}: 'segmentation' must be a list of polygons [[x1, y1, x2, y2, ...]], found {_short(segmentation)}"
        )
    points: list[float] = []
    for polygon in segmentation:
        if len(polygon) < 6 or len(polygon) % 2 or not all(_finite(v) for v in polygon):
            raise DatasetError(
                f"{where}: a segmentation polygon needs at least 3 x,y number pairs, found {_short(polygon)}"
            )
        points += [float(v) for v in polygon]
    xs, ys = points[0::2], points[1::2]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _box(where: str, ann: dict[str, Any], label: str, width: int, height: int) -> Box:
    bbox = ann.get("bbox")
    if bbox is None and ann.get("segmentation") not in (None, []):
        bbox = _polygon_bbox(where, ann["segmentation"])
    if not (
        isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)
    ):
        raise DatasetError(f"{where}: 'bbox' must be 4 numbers [x, y, width, height] in pixels, found {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = max(x / width, 0.0), max(y / height, 0.0)
    x2, y2 = min((x + w) / width, 1.0), min((y + h) / height, 1.0)
    if x2 <= x1 or y2 <= y1:
        raise DatasetError(f"{where}: the box {bbox!r} has no area inside the {width}x{height} image")
    return Box(label, x1, y1, x2, y2)
