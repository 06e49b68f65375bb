"""Read and write datasets in COCO, YOLO, Pascal VOC, folder-per-class and CSV form (see docs/FORMATS.md).

Readers return a `Dataset` whose samples have absolute paths to existing files inside the dataset root, `name` =
path relative to the root (unique), the split the source gives (else `auto`), and labels in the source's order
(a label's index is its numeric id). Readers do not decode images; the store validates them on import.
Writers copy each sample's image file into a new or empty output folder, staged so a failure leaves nothing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.datasets.model import Dataset, LabelInfo
from edge.datasets.paths import staged_output
from edge.errors import DatasetError

log = logging.getLogger(__name__)

FORMATS = ("coco", "yolo", "voc", "folders", "csv")


def detect_format(src: Path) -> str:
    """The format of a dataset folder or file; DatasetError when it cannot tell."""
    from edge.datasets import coco, csvtable, folders, voc, yolo

    if not src.exists():
        raise DatasetError(f"dataset {src} does not exist")
    if src.is_file():
        suffix = src.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix in csvtable.TABLE_SUFFIXES:
            return "csv"
        raise DatasetError(f"cannot tell the dataset format of file {src}: expected a COCO .json or a .csv table")
    if yolo.looks_like_yolo(src):
        return "yolo"
    if coco.find_annotation_files(src):
        return "coco"
    if voc.looks_like_voc(src):
        return "voc"
    if csvtable.looks_like_csv(src):
        return "csv"
    if folders.looks_like_folders(src):
        return "folders"
    raise DatasetError(
        f"cannot tell the dataset format of {src}: no data.yaml (yolo), COCO annotations .json, Annotations/ (voc), "
        "single .csv table, or class folders with images; pass --format"
    )


def _readers() -> dict[str, Callable[..., Dataset]]:
    from edge.datasets import coco, csvtable, folders, voc, yolo

    return {
        "coco": coco.read_coco,
        "yolo": yolo.read_yolo,
        "voc": voc.read_voc,
        "folders": folders.read_folders,
        "csv": csvtable.read_csv,
    }


def _writers() -> dict[str, Callable[[Dataset, Path], None]]:
    from edge.datasets import coco, csvtable, folders, voc, yolo

    return {
        "coco": coco.write_coco,
        "yolo": yolo.write_yolo,
        "voc": voc.write_voc,
        "folders": folders.write_folders,
        "csv": csvtable.write_csv,
    }


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")


def read_dataset(src: Path, fmt: str, **options: Any) -> Dataset:
    """Read a dataset folder (or annotations file) in the given format.

    Options: coco `annotations` (file name); csv `path_column`, `label_column` (name or 0-based index) and `labels`
    (names by id: a list, an id -> name mapping, or a labels file).
    """
    _check_format(fmt)
    src = Path(src)
    if not src.exists():
        raise DatasetError(f"dataset {src} does not exist")
    reader = _readers()[fmt]
    accepted = set(list(inspect.signature(reader).parameters)[1:])
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise DatasetError(f"option(s) {', '.join(unknown)} do not apply to the {fmt} format")
    if fmt != "csv" and fmt != "coco" and not src.is_dir():
        raise DatasetError(f"a {fmt} dataset is a folder; {src} is not one")
    return _check_labels(reader(src, **given), src)


def write_dataset(ds: Dataset, out: Path, fmt: str) -> None:
    """Write ds in the given format into out (new or empty), copying each sample's image file."""
    _check_format(fmt)
    ds = _check_labels(ds, out)
    if fmt not in ("coco", "yolo", "voc"):
        boxed = sum(len(s.boxes) for s in ds.samples)
        if boxed:
            log.warning("the %s format has no boxes: %d boxes are not exported (tags are)", fmt, boxed)
    with staged_output(Path(out)) as staging:
        _writers()[fmt](ds, staging)
    log.info("wrote %d images as %s to %s", len(ds.samples), fmt, out)


def _check_labels(ds: Dataset, where: Path) -> Dataset:
    """ds with every label its samples use in its label list (a copy when some were missing); bad names refused."""
    used = [name for sample in ds.samples for name in (*sample.tags, *(b.label for b in sample.boxes))]
    missing = [name for name in dict.fromkeys(used) if name not in ds.label_names]
    if missing:
        ds = Dataset(labels=[*ds.labels, *(LabelInfo(name) for name in missing)], samples=ds.samples)
    names = ds.label_names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetError(f"{where}: labels appear more than once: {', '.join(duplicates)}")
    bad = [n for n in names if not n.strip() or ";" in n or "\n" in n]
    if bad:
        raise DatasetError(f"{where}: label names must be non-empty and contain no ';' or newline: {bad!r}")
    return ds
