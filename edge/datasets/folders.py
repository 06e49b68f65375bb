"""Folder per class: `<root>/<label>/*.jpg`, optionally under split folders (`<root>/train/<label>/...`).

An image's label is the name of the folder that directly holds it, at any depth below the root (or split) folder,
so grouping folders in between are allowed: grocery5's `train/Fruit/Banana/x.jpg` is `Banana`, split `train`.
Images directly in the root (or a split folder) have no label. `labels.txt` keeps the label order (otherwise labels
are sorted by name); `tags.csv` gives an image more than its folder's tag (or none). Boxes are not kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge.datasets.model import Dataset, Sample
from edge.datasets.paths import (
    check_label_is_file_name,
    copy_image,
    ensure_inside,
    is_ignored,
    iter_image_files,
    output_file_names,
    relative_name,
    split_from_name,
)
from edge.datasets.sidecars import (
    TAGS_FILE,
    ordered_labels,
    read_label_order,
    read_tags,
    write_label_order,
    write_tags,
)
from edge.errors import DatasetError

log = logging.getLogger(__name__)


def looks_like_folders(root: Path) -> bool:
    """True when some sub-folder of root holds an image."""
    return root.is_dir() and any(image.parent != root for image in iter_image_files(root))


def read_folders(root: Path) -> Dataset:
    """Read a folder-per-class dataset rooted at root."""
    bases: list[tuple[Path, str]] = []
    loose_root = False
    for child in sorted(root.iterdir()):
        if is_ignored(child.name):
            continue
        split = split_from_name(child.name)
        if split and child.is_dir():
            bases.append((child, split))
        else:
            loose_root = True
    if loose_root or not bases:
        bases.append((root, "auto"))
    split_folders = {base for base, split in bases if split != "auto"}
    samples: list[Sample] = []
    for base, split in bases:
        for image in iter_image_files(base):
            if base == root and any(parent in split_folders for parent in image.parents):
                continue
            path = ensure_inside(root, image)
            tags = [] if image.parent == base else [image.parent.name]
            samples.append(Sample(path=path, name=relative_name(root, image), tags=tags, split=split))
    if not samples:
        raise DatasetError(f"{root}: no images found in class folders")
    by_name = {s.name: s for s in samples}
    for name, tags in read_tags(root).items():
        if name not in by_name:
            raise DatasetError(f"{root / TAGS_FILE} names image {name!r}, which is not in the dataset")
        by_name[name].tags = list(tags)
    used = {label for s in samples for label in s.tags}
    ds = Dataset(labels=ordered_labels(used, read_label_order(root)), samples=samples)
    log.info("read folder-per-class dataset %s: %d images, %d labels", root, len(ds.samples), len(ds.labels))
    return ds


def write_folders(ds: Dataset, out: Path) -> None:
    """Write ds as class folders (under split folders when samples have splits) into the staged folder out."""
    for name in ds.label_names:
        check_label_is_file_name(name)
    # A reader would take a class folder named `train` for a split folder.
    clashing = [n for n in ds.label_names if split_from_name(n)]
    if clashing:
        raise DatasetError(f"labels named like split folders cannot be written as class folders: {clashing}")
    tags: dict[str, list[str]] = {}
    for sample, file_name in zip(ds.samples, output_file_names(ds.samples), strict=True):
        folder = out / sample.split if sample.split in ("train", "val", "test") else out
        if sample.tags:
            folder = folder / sample.tags[0]
        target = folder / file_name
        copy_image(sample, target)
        if sample.tags[1:]:
            tags[target.relative_to(out).as_posix()] = list(sample.tags)
    write_tags(out, tags)
    write_label_order(ds, out)
