"""Pascal VOC: `Annotations/*.xml` beside `JPEGImages/`, splits in `ImageSets/Main/{train,val,test}.txt`.

VOC pixel coordinates are 1-based and inclusive: a box covering a W-pixel-wide image is xmin=1, xmax=W. Reading
maps x1 = (xmin - 1) / W and x2 = xmax / W; writing is the exact inverse (coordinates are written as integers when
they are whole, else with up to 3 decimals). Extension: a `<tags><tag>name</tag>...</tags>` element in an
annotation holds the image-level tags. `labels.txt` keeps the label order (VOC itself has none); without it labels
are sorted by name. Images in `JPEGImages/` without an annotation file are read as images without annotations.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET  # DTDs and entities are refused before parsing (see _parse)
from pathlib import Path

from edge.datasets.imaging import image_size
from edge.datasets.model import Box, Dataset, Sample
from edge.datasets.paths import (
    IMAGE_SUFFIXES,
    copy_image,
    ensure_inside,
    iter_image_files,
    output_file_names,
    relative_name,
    resolve_inside,
)
from edge.datasets.sidecars import ordered_labels, read_label_order, read_text, write_label_order
from edge.errors import DatasetError

log = logging.getLogger(__name__)

SPLIT_FILES = {"train": "train", "val": "val", "test": "test"}


def looks_like_voc(root: Path) -> bool:
    """True when root (or its single VOC* child) has an Annotations/ folder of XML files."""
    base = _voc_base(root)
    return base is not None and any((base / "Annotations").glob("*.xml"))


def _voc_base(root: Path) -> Path | None:
    if (root / "Annotations").is_dir():
        return root
    children = [c for c in root.iterdir() if c.is_dir() and (c / "Annotations").is_dir()] if root.is_dir() else []
    return children[0] if len(children) == 1 else None


def read_voc(root: Path) -> Dataset:
    """Read a Pascal VOC dataset rooted at root."""
    base = _voc_base(root)
    if base is None:
        raise DatasetError(f"{root}: no Annotations/ folder: not a Pascal VOC dataset")
    images_dir = base / "JPEGImages"
    splits = _read_splits(base)
    samples: list[Sample] = []
    annotated: set[str] = set()
    for xml_path in sorted((base / "Annotations").glob("*.xml")):
        sample = _read_annotation(root, images_dir, xml_path)
        sample.split = splits.get(xml_path.stem, "auto")
        if sample.name in annotated:
            raise DatasetError(f"{xml_path}: image {sample.name!r} is annotated by more than one file")
        annotated.add(sample.name)
        samples.append(sample)
    if images_dir.is_dir():
        for image in iter_image_files(images_dir):
            name = relative_name(root, image)
            if name not in annotated:
                path = ensure_inside(root, image)
                samples.append(Sample(path=path, name=name, split=splits.get(image.stem, "auto")))
    used = {label for s in samples for label in s.labels}
    ds = Dataset(labels=ordered_labels(used, read_label_order(base)), samples=samples)
    log.info("read VOC dataset %s: %d images, %d labels", root, len(ds.samples), len(ds.labels))
    return ds


def write_voc(ds: Dataset, out: Path) -> None:
    """Write ds as Pascal VOC into the (staged, empty) folder out."""
    file_names = output_file_names(ds.samples)
    split_ids: dict[str, list[str]] = {}
    (out / "Annotations").mkdir()
    for sample, file_name in zip(ds.samples, file_names, strict=True):
        copy_image(sample, out / "JPEGImages" / file_name)
        width, height = sample.width, sample.height
        if not width or not height:
            width, height = image_size(sample.path)
        stem = Path(file_name).stem
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "JPEGImages"
        ET.SubElement(root, "filename").text = file_name
        size = ET.SubElement(root, "size")
        ET.SubElement(size, "width").text = str(width)
        ET.SubElement(size, "height").text = str(height)
        ET.SubElement(size, "depth").text = "3"
        ET.SubElement(root, "segmented").text = "0"
        for box in sample.boxes:
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = box.label
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = "0"
            bndbox = ET.SubElement(obj, "bndbox")
            ET.SubElement(bndbox, "xmin").text = _pixel(box.x1 * width + 1)
            ET.SubElement(bndbox, "ymin").text = _pixel(box.y1 * height + 1)
            ET.SubElement(bndbox, "xmax").text = _pixel(box.x2 * width)
            ET.SubElement(bndbox, "ymax").text = _pixel(box.y2 * height)
        if sample.tags:
            tags = ET.SubElement(root, "tags")
            for tag in sample.tags:
                ET.SubElement(tags, "tag").text = tag
        ET.indent(root)
        ET.ElementTree(root).write(out / "Annotations" / f"{stem}.xml", encoding="utf-8", xml_declaration=True)
        if sample.split in SPLIT_FILES:
            split_ids.setdefault(sample.split, []).append(stem)
    if split_ids:
        (out / "ImageSets" / "Main").mkdir(parents=True)
        for split, ids in split_ids.items():
            (out / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    write_label_order(ds, out)


def _pixel(value: float) -> str:
    rounded = round(value, 3)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.3f}".rstrip("0").rstrip(".")


def _read_splits(base: Path) -> dict[str, str]:
    splits: dict[str, str] = {}
    folder = base / "ImageSets" / "Main"
    for file_stem, split in SPLIT_FILES.items():
        path = folder / f"{file_stem}.txt"
        if not path.is_file():
            continue
        for line_no, line in enumerate(read_text(path).splitlines(), start=1):
            tokens = line.split()
            if not tokens:
                continue
            image_id = tokens[0]
            if image_id in splits and splits[image_id] != split:
                raise DatasetError(f"{path}:{line_no}: {image_id!r} is also listed in {splits[image_id]}.txt")
            splits[image_id] = split
    return splits


def _parse(xml_path: Path) -> ET.Element:
    text = read_text(xml_path)
    # Entity expansion is the attack surface of XML parsers; VOC files never need a DTD.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise DatasetError(f"{xml_path}: DTDs and entities are not allowed in annotation files")
    try:
        return ET.fromstring(text)  # noqa: S314  # DTDs refused above
    except ET.ParseError as err:
        raise DatasetError(f"{xml_path}: malformed or truncated XML: {err}") from err


def _text(element: ET.Element, path: str, xml_path: Path) -> str:
    found = element.find(path)
    if found is None or found.text is None or not found.text.strip():
        raise DatasetError(f"{xml_path}: missing <{path}>")
    return found.text.strip()


def _number(element: ET.Element, path: str, xml_path: Path) -> float:
    text = _text(element, path, xml_path)
    try:
        value = float(text)
    except ValueError as err:
        raise DatasetError(f"{xml_path}: <{path}> is not a number: {text!r}") from err
    if not math.isfinite(value):
        raise DatasetError(f"{xml_path}: <{path}> is not finite: {text!r}")
    return value


def _read_annotation(root: Path, images_dir: Path, xml_path: Path) -> Sample:
    annotation = _parse(xml_path)
    filename_el = annotation.find("filename")
    image_path: Path | None = None
    if filename_el is not None and filename_el.text and filename_el.text.strip():
        reference = filename_el.text.strip()
        try:
            candidate = resolve_inside(root, reference, base=images_dir)
        except DatasetError as err:
            raise DatasetError(f"{xml_path}: {err}") from err
        if candidate.is_file():
            image_path = candidate
    if image_path is None:
        for suffix in sorted(IMAGE_SUFFIXES):
            for candidate in (images_dir / f"{xml_path.stem}{suffix}", images_dir / f"{xml_path.stem}{suffix.upper()}"):
                if candidate.is_file():
                    image_path = ensure_inside(root, candidate)
                    break
            if image_path is not None:
                break
    if image_path is None:
        shown = filename_el.text.strip() if filename_el is not None and filename_el.text else xml_path.stem
        raise DatasetError(f"{xml_path}: image file {shown!r} is missing from {images_dir}")
    size = annotation.find("size")
    width = height = 0
    if size is not None and size.find("width") is not None and size.find("height") is not None:
        width, height = int(_number(size, "width", xml_path)), int(_number(size, "height", xml_path))
    if width <= 0 or height <= 0:
        width, height = image_size(image_path)
    boxes = []
    for obj in annotation.findall("object"):
        label = _text(obj, "name", xml_path)
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DatasetError(f"{xml_path}: object {label!r} has no <bndbox>")
        xmin, ymin, xmax, ymax = (_number(bndbox, tag, xml_path) for tag in ("xmin", "ymin", "xmax", "ymax"))
        x1, y1 = max((xmin - 1) / width, 0.0), max((ymin - 1) / height, 0.0)
        x2, y2 = min(xmax / width, 1.0), min(ymax / height, 1.0)
        if x2 <= x1 or y2 <= y1:
            raise DatasetError(f"{xml_path}: object {label!r} has an empty box ({xmin}, {ymin}, {xmax}, {ymax})")
        boxes.append(Box(label, x1, y1, x2, y2))
    tags = [t.text.strip() for t in annotation.findall("tags/tag") if t.text and t.text.strip()]
    return Sample(
        path=image_path,
        name=relative_name(root, image_path),
        tags=list(dict.fromkeys(tags)),
        boxes=boxes,
        width=width,
        height=height,
    )
