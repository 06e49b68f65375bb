"""YOLO (Ultralytics / Roboflow): `data.yaml` names, images with one `.txt` label file each.

Layouts read: `<split>/images` + `<split>/labels`, `images/<split>` + `labels/<split>`, and a flat `images/` +
`labels/` (no split). Each label line is `cls cx cy w h` (normalised) or a polygon `cls x1 y1 x2 y2 ...`, turned
into its bounding box. Class names come from `data.yaml` (`names` as a list or an id -> name mapping, `nc`), or
from `classes.txt` / `obj.names` (one per line). Image-level tags live in the `tags.csv` sidecar.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import yaml

from edge.datasets.model import Box, Dataset, LabelInfo, Sample
from edge.datasets.paths import (
    copy_image,
    ensure_inside,
    is_ignored,
    iter_image_files,
    output_file_names,
    relative_name,
    split_from_name,
)
from edge.datasets.sidecars import TAGS_FILE, read_tags, read_text, write_tags
from edge.errors import DatasetError

log = logging.getLogger(__name__)

YAML_FILES = ("data.yaml", "data.yml")
NAME_LIST_FILES = ("classes.txt", "obj.names")
# How far outside 0..1 a coordinate may stray (rounding in exporters) before it is an error rather than clipped.
_COORD_SLACK = 0.01


def looks_like_yolo(root: Path) -> bool:
    """True when root has a YOLO names file and an images folder in one of the known layouts."""
    has_names = any((root / n).is_file() for n in (*YAML_FILES, *NAME_LIST_FILES))
    return has_names and bool(_image_groups(root))


def read_yolo(root: Path) -> Dataset:
    """Read a YOLO dataset rooted at root."""
    names = _read_names(root)
    groups = _image_groups(root)
    if not groups:
        raise DatasetError(
            f"{root}: no YOLO images found; expected <split>/images + <split>/labels, images/<split> + "
            "labels/<split>, or images/ + labels/"
        )
    ds = Dataset(labels=[LabelInfo(n) for n in names])
    for images_dir, labels_dir, split, excluded in groups:
        image_stems: set[Path] = set()
        for image in iter_image_files(images_dir):
            relative = image.relative_to(images_dir)
            if relative.parts[0] in excluded:
                continue
            resolved = ensure_inside(root, image)
            name = relative_name(root, image)
            image_stems.add(relative.with_suffix(""))
            label_file = labels_dir / relative.with_suffix(".txt")
            boxes = _read_label_file(label_file, names) if label_file.is_file() else []
            ds.samples.append(Sample(path=resolved, name=name, boxes=boxes, split=split))
        _refuse_orphan_labels(labels_dir, image_stems, excluded)
    tags = read_tags(root)
    by_name = {s.name: s for s in ds.samples}
    for name, sample_tags in tags.items():
        if name not in by_name:
            raise DatasetError(f"{root / TAGS_FILE} names image {name!r}, which is not in the dataset")
        by_name[name].tags = list(sample_tags)
        for tag in sample_tags:
            ds.ensure_label(tag)
    log.info("read YOLO dataset %s: %d images, %d labels", root, len(ds.samples), len(ds.labels))
    return ds


def write_yolo(ds: Dataset, out: Path) -> None:
    """Write ds as a YOLO dataset into the (staged, empty) folder out."""
    index = {name: i for i, name in enumerate(ds.label_names)}
    file_names = output_file_names(ds.samples)
    splits_used: set[str] = set()
    tags: dict[str, list[str]] = {}
    for sample, file_name in zip(ds.samples, file_names, strict=True):
        base = Path(sample.split) if sample.split in ("train", "val", "test") else Path()
        splits_used.add(sample.split if sample.split in ("train", "val", "test") else "auto")
        image_rel = base / "images" / file_name
        copy_image(sample, out / image_rel)
        label_path = out / base / "labels" / Path(file_name).with_suffix(".txt")
        label_path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for box in sample.boxes:
            if box.label not in index:
                raise DatasetError(f"sample {sample.name!r} has a box of label {box.label!r}, not in the label list")
            cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
            w, h = box.x2 - box.x1, box.y2 - box.y1
            lines.append(f"{index[box.label]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        label_path.write_text("".join(lines), encoding="utf-8")
        if sample.tags:
            tags[image_rel.as_posix()] = list(sample.tags)
    data: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        if split in splits_used:
            data[split] = f"{split}/images"
    if "auto" in splits_used:
        # Ultralytics needs train and val entries; samples without a split serve as both until the trainer splits.
        data.setdefault("train", "images")
        data.setdefault("val", "images")
    data["nc"] = len(ds.labels)
    data["names"] = ds.label_names
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    write_tags(out, tags)


def _read_names(root: Path) -> list[str]:
    for file_name in YAML_FILES:
        path = root / file_name
        if path.is_file():
            return _names_from_yaml(path)
    for file_name in NAME_LIST_FILES:
        path = root / file_name
        if path.is_file():
            return [line.strip() for line in read_text(path).splitlines() if line.strip()]
    raise DatasetError(f"{root}: no data.yaml (or classes.txt / obj.names) naming the YOLO classes")


# A data.yaml names a few hundred classes at most; anything larger is not one.
MAX_DATA_YAML_BYTES = 256 * 1024


class _NoAliasLoader(yaml.SafeLoader):
    """safe_load without anchors and aliases: a 170 KB file nesting aliases 8 deep expanded to gigabytes of names."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a dataset's data.yaml", mark
            )
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


def load_small_yaml(path: Path, max_bytes: int = MAX_DATA_YAML_BYTES) -> Any:
    """A dataset's YAML file, bounded: at most max_bytes, no aliases; DatasetError naming the file otherwise."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise DatasetError(f"cannot read {path}: {err}") from err
    if size > max_bytes:
        raise DatasetError(f"{path}: {size} bytes is more than the {max_bytes // 1024} KiB a data.yaml may hold")
    try:
        return yaml.load(read_text(path), Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise DatasetError(f"{path}: malformed YAML: {err}") from err


def _names_from_yaml(path: Path) -> list[str]:
    data = load_small_yaml(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping with 'names'")
    raw = data.get("names")
    nc = data.get("nc")
    if nc is not None and (not isinstance(nc, int) or nc < 0):
        raise DatasetError(f"{path}: 'nc' must be a non-negative integer, found {nc!r}")
    names: list[str]
    if raw is None:
        if nc is None:
            raise DatasetError(f"{path}: neither 'names' nor 'nc' is given")
        names = [str(i) for i in range(nc)]
    elif isinstance(raw, list):
        names = [_scalar_name(path, n) for n in raw]
    elif isinstance(raw, dict):
        try:
            by_id = {int(k): _scalar_name(path, v) for k, v in raw.items()}
        except (TypeError, ValueError) as err:
            raise DatasetError(f"{path}: 'names' keys must be integer class ids") from err
        if sorted(by_id) != list(range(len(by_id))):
            raise DatasetError(f"{path}: 'names' ids must be 0..{len(by_id) - 1} without gaps, found {sorted(by_id)}")
        names = [by_id[i] for i in range(len(by_id))]
    else:
        raise DatasetError(f"{path}: 'names' must be a list or a mapping of id -> name")
    if nc is not None and nc != len(names):
        raise DatasetError(f"{path}: 'nc' is {nc} but 'names' has {len(names)} entries")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetError(f"{path}: class names appear more than once: {', '.join(duplicates)}")
    return names


def _scalar_name(path: Path, value: Any) -> str:
    # A class name is one scalar: a nested list would be turned into one enormous name by str().
    if isinstance(value, list | dict) or value is None:
        raise DatasetError(f"{path}: class name {str(value)[:40]!r} must be text, not a {type(value).__name__}")
    return str(value)


def _image_groups(root: Path) -> list[tuple[Path, Path, str, set[str]]]:
    """(images folder, labels folder, split, subfolders read as their own group) for every layout under root."""
    groups: list[tuple[Path, Path, str, set[str]]] = []
    if not root.is_dir():
        return groups
    for child in sorted(root.iterdir()):
        split = split_from_name(child.name)
        if split and (child / "images").is_dir():
            groups.append((child / "images", child / "labels", split, set()))
    flat_images = root / "images"
    if flat_images.is_dir():
        split_children: set[str] = set()
        has_loose = False
        for child in sorted(flat_images.iterdir()):
            split = split_from_name(child.name)
            if split and child.is_dir():
                groups.append((child, root / "labels" / child.name, split, set()))
                split_children.add(child.name)
            elif not is_ignored(child.name):
                has_loose = True
        if has_loose:
            groups.append((flat_images, root / "labels", "auto", split_children))
    return groups


def _refuse_orphan_labels(labels_dir: Path, image_stems: set[Path], excluded: set[str]) -> None:
    if not labels_dir.is_dir():
        return
    orphans = []
    for label_file in sorted(labels_dir.rglob("*.txt")):
        relative = label_file.relative_to(labels_dir)
        if relative.parts[0] in excluded or any(is_ignored(part) for part in relative.parts):
            continue
        if relative.with_suffix("") not in image_stems:
            orphans.append(str(label_file))
    if orphans:
        more = f" and {len(orphans) - 5} more" if len(orphans) > 5 else ""
        raise DatasetError(f"label files without an image: {', '.join(orphans[:5])}{more}")


def _read_label_file(path: Path, names: list[str]) -> list[Box]:
    boxes: list[Box] = []
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path}:{line_no}"
        try:
            values = [float(t) for t in tokens]
        except ValueError as err:
            raise DatasetError(f"{where}: malformed YOLO line {line.strip()!r}: not all numbers") from err
        if not all(math.isfinite(v) for v in values):
            raise DatasetError(f"{where}: malformed YOLO line {line.strip()!r}: not finite")
        cls_value = values[0]
        if cls_value != int(cls_value):
            raise DatasetError(f"{where}: class id {tokens[0]!r} is not an integer")
        cls = int(cls_value)
        if not 0 <= cls < len(names):
            raise DatasetError(f"{where}: class id {cls} is out of range (data.yaml has {len(names)} classes)")
        coords = values[1:]
        if len(coords) == 4:
            cx, cy, w, h = coords
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        elif len(coords) >= 6 and len(coords) % 2 == 0:
            xs, ys = coords[0::2], coords[1::2]
            x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        else:
            raise DatasetError(
                f"{where}: malformed YOLO line: expected 'cls cx cy w h' or a polygon 'cls x1 y1 x2 y2 x3 y3 ...', "
                f"found {len(tokens)} values"
            )
        if min(x1, y1) < -_COORD_SLACK or max(x2, y2) > 1 + _COORD_SLACK:
            raise DatasetError(f"{where}: coordinates must be normalised to 0..1, found {line.strip()!r}")
        x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2))
        if x2 <= x1 or y2 <= y1:
            raise DatasetError(f"{where}: the box has no area: {line.strip()!r}")
        boxes.append(Box(names[cls], x1, y1, x2, y2))
    return boxes
