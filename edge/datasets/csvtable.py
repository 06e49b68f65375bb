"""CSV: a table with a column of image paths (relative to the table's folder) and a label column, as spreadsheets
export.

The header is detected (a first row naming no existing image and either naming known columns or holding no image
path); columns are found by header name (`path`/`file`/`filename`/`image`..., `label`/`class`/`category`/`tag`...,
optional `split`) or by content, or chosen with `path_column` / `label_column` (a header name or a 0-based index;
`label_column="none"`: no labels, the images come untagged).
A label cell holds a name or a numeric id (`3`, or `3.0` as spreadsheets write it); ids are named by the `labels`
option (a list, an id -> name mapping, or a file: one name per line, or a CSV of name,id rows such as grocery5's
classes.csv), else by `labels.txt` beside the table, else the id itself becomes the name. Several labels per image:
repeated rows or a `;`-separated cell. The delimiter is `,`, tab, or `;` (then only repeated rows give several
labels). Writing produces `dataset.csv` (`path,label,split`), `images/` and `labels.txt`. Boxes are not kept.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.datasets.model import Dataset, LabelInfo, Sample
from edge.datasets.paths import (
    IMAGE_SUFFIXES,
    copy_image,
    output_file_names,
    relative_name,
    resolve_inside,
    split_from_name,
)
from edge.datasets.sidecars import (
    TAGS_FILE,
    escape_formula,
    read_label_order,
    read_text,
    split_tags,
    unescape_formula,
    write_label_order,
)
from edge.errors import DatasetError

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
NO_LABEL_COLUMN = ("none", "-")  # label_column: the table has no labels (images come untagged)
TABLE_FILE = "dataset.csv"
PATH_HEADERS = {
    "path", "file", "filename", "file_name", "filepath", "file_path", "image", "images", "image_path", "image_file",
    "img", "img_path", "picture", "photo",
}  # fmt: skip
LABEL_HEADERS = {
    "label", "labels", "class", "classes", "class_name", "classname", "category", "categories", "tag", "tags",
    "class_id", "label_id", "category_id", "target", "name", "kind", "type", "product", "item",
}  # fmt: skip
# Row numbers, never labels, when the label column is found by elimination.
ROW_ID_HEADERS = {"id", "#", "no", "nr", "index", "row", "image_id"}
SPLIT_HEADERS = {"split", "subset", "set", "fold"}
_ID = re.compile(r"^\d+(\.0+)?$")
ColumnChoice = int | str | None
LabelsOption = Sequence[str] | Mapping[Any, str] | str | Path | None


def find_table(folder: Path, *, required: bool = True) -> Path | None:
    """The one .csv / .tsv table in folder (tags.csv aside); DatasetError when none or several (if required)."""
    tables = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in (".csv", ".tsv") and p.name != TAGS_FILE and not p.name.startswith(".")
    )
    if len(tables) == 1:
        return tables[0]
    if not required:
        return None
    if not tables:
        raise DatasetError(f"{folder}: no .csv table found")
    raise DatasetError(f"{folder}: several tables ({', '.join(p.name for p in tables)}); pass the one to read")


def looks_like_csv(folder: Path) -> bool:
    """True when folder holds one table and one of its first rows names an existing image beside it."""
    table = find_table(folder, required=False)
    if table is None:
        return False
    try:
        _, rows = _read_rows(table)
    except DatasetError:
        return False
    return any(_names_an_image(folder, row) for _, row in rows[:3])


def read_csv(
    src: Path, path_column: ColumnChoice = None, label_column: ColumnChoice = None, labels: LabelsOption = None
) -> Dataset:
    """Read a CSV table of image paths and labels (src: the table, or a folder holding exactly one)."""
    table = src if src.is_file() else find_table(src)
    if table is None:
        raise DatasetError(f"{src}: no .csv table found")
    root = table.parent
    delimiter, rows = _read_rows(table)
    if not rows:
        raise DatasetError(f"{table}: the table is empty")
    header = _header(root, rows[0][1])
    body = rows[1:] if header is not None else rows
    path_index = _choose_path_column(table, header, body, path_column)
    no_labels = isinstance(label_column, str) and label_column.strip().lower() in NO_LABEL_COLUMN
    label_index = -1 if no_labels else _choose_label_column(table, header, body, label_column, path_index)
    split_index = _split_column(header, {path_index, label_index})
    names_by_id = _names_by_id(labels, root) if labels is not None else None
    if names_by_id is None:
        order = read_label_order(root)
        names_by_id = dict(enumerate(order)) if order is not None else None
    samples: dict[str, Sample] = {}
    numeric_names: set[int] = set()
    for line_no, row in body:
        where = f"{table}:{line_no}"
        if path_index >= len(row) or not row[path_index].strip():
            raise DatasetError(f"{where}: no image path in column {path_index + 1}")
        try:
            image = resolve_inside(root, row[path_index])
        except DatasetError as err:
            raise DatasetError(f"{where}: {err}") from err
        if not image.is_file():
            raise DatasetError(f"{where}: image file {row[path_index].strip()!r} is missing")
        cell = unescape_formula(row[label_index]) if 0 <= label_index < len(row) else ""
        # With `;` as the delimiter a cell cannot hold several labels; repeated rows still can.
        parts = split_tags(cell) if delimiter != ";" else [cell.strip()] if cell.strip() else []
        tags = list(dict.fromkeys(_label_name(where, part, names_by_id, numeric_names) for part in parts))
        split = "auto"
        if split_index is not None and split_index < len(row) and row[split_index].strip():
            split = _split_value(where, row[split_index])
        name = relative_name(root, image)
        sample = samples.get(name)
        if sample is None:
            samples[name] = Sample(path=image, name=name, tags=tags, split=split)
            continue
        if split != "auto" and sample.split not in ("auto", split):
            raise DatasetError(f"{where}: {name!r} is in split {split!r} here but {sample.split!r} on an earlier row")
        sample.split = split if split != "auto" else sample.split
        sample.tags.extend(t for t in tags if t not in sample.tags)
    order = [names_by_id[i] for i in sorted(names_by_id)] if names_by_id else [str(i) for i in sorted(numeric_names)]
    ds = Dataset(labels=[LabelInfo(n) for n in order], samples=list(samples.values()))
    for sample in ds.samples:
        for tag in sample.tags:
            ds.ensure_label(tag)
    log.info("read CSV dataset %s: %d images, %d labels", table, len(ds.samples), len(ds.labels))
    return ds


def write_csv(ds: Dataset, out: Path) -> None:
    """Write ds as dataset.csv (path,label,split) with images/ and labels.txt into the staged folder out."""
    names = ds.label_names + sorted({t for s in ds.samples for t in s.tags} - set(ds.label_names))
    # A label named like a number ("1") would read back as the id 1: then every cell holds ids, named by labels.txt.
    label_ids = {name: str(i) for i, name in enumerate(names)} if any(_ID.match(n) for n in names) else {}
    with (out / TABLE_FILE).open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        for sample, file_name in zip(ds.samples, output_file_names(ds.samples), strict=True):
            copy_image(sample, out / "images" / file_name)
            cell = ";".join(label_ids.get(tag, tag) for tag in sample.tags)
            writer.writerow([f"images/{file_name}", escape_formula(cell), sample.split])
    write_label_order(Dataset(labels=[LabelInfo(n) for n in names]), out)


def _read_rows(table: Path) -> tuple[str, list[tuple[int, list[str]]]]:
    text = read_text(table)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "\t" in first:
        delimiter = "\t"
    elif "," in first:
        delimiter = ","
    elif ";" in first:
        delimiter = ";"
    else:
        delimiter = ","
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append((reader.line_num, [cell.strip() for cell in row]))
    except csv.Error as err:
        raise DatasetError(f"{table}:{reader.line_num}: malformed CSV: {err}") from err
    return delimiter, rows


def _looks_like_image_path(cell: str) -> bool:
    return Path(cell.strip()).suffix.lower() in IMAGE_SUFFIXES


def _names_an_image(root: Path, row: list[str]) -> bool:
    """Whether a cell of the row is the path of an existing image inside root (a data row, not a header)."""
    for cell in row:
        try:
            if _looks_like_image_path(cell) and resolve_inside(root, cell).is_file():
                return True
        except DatasetError:
            continue
    return False


def _header(root: Path, first: list[str]) -> list[str] | None:
    lowered = [cell.strip().lower() for cell in first]
    if _names_an_image(root, first):
        return None
    known = PATH_HEADERS | LABEL_HEADERS | SPLIT_HEADERS
    if any(c in known for c in lowered) or not any(_looks_like_image_path(c) for c in first):
        return lowered
    return None


def _column_index(table: Path, header: list[str] | None, choice: int | str, what: str) -> int:
    if isinstance(choice, int) or (isinstance(choice, str) and choice.isdigit()):
        return int(choice)
    if header is None:
        raise DatasetError(f"{table}: the table has no header row, so {what} {choice!r} must be a column index")
    try:
        return header.index(choice.strip().lower())
    except ValueError as err:
        raise DatasetError(f"{table}: no column named {choice!r} (columns: {', '.join(header)})") from err


def _choose_path_column(
    table: Path, header: list[str] | None, body: list[tuple[int, list[str]]], choice: ColumnChoice
) -> int:
    if choice is not None:
        return _column_index(table, header, choice, "path_column")
    if header is not None:
        for i, name in enumerate(header):
            if name in PATH_HEADERS:
                return i
    if body:
        for i, cell in enumerate(body[0][1]):
            if _looks_like_image_path(cell):
                return i
    raise DatasetError(f"{table}: cannot tell which column holds the image paths; pass path_column")


def _choose_label_column(
    table: Path, header: list[str] | None, body: list[tuple[int, list[str]]], choice: ColumnChoice, path_index: int
) -> int:
    if choice is not None:
        index = _column_index(table, header, choice, "label_column")
    elif header is not None and (named := [i for i, n in enumerate(header) if n in LABEL_HEADERS and i != path_index]):
        index = named[0]
    else:
        width = max((len(row) for _, row in body), default=len(header or []))
        skipped = SPLIT_HEADERS | ROW_ID_HEADERS
        others = [
            i for i in range(width) if i != path_index and not (header and i < len(header) and header[i] in skipped)
        ]
        if not others:
            raise DatasetError(f"{table}: the table needs a label column beside the image paths")
        index = others[0]
    if index == path_index:
        raise DatasetError(f"{table}: the label column and the path column are the same (column {index})")
    return index


def _split_column(header: list[str] | None, taken: set[int]) -> int | None:
    if header is None:
        return None
    for i, name in enumerate(header):
        if name in SPLIT_HEADERS and i not in taken:
            return i
    return None


def _split_value(where: str, cell: str) -> str:
    value = cell.strip().lower()
    if value == "auto":
        return "auto"
    split = split_from_name(value)
    if split is None:
        raise DatasetError(f"{where}: unknown split {cell.strip()!r} (train, val/valid, test or auto)")
    return split


def _label_name(where: str, part: str, names_by_id: dict[int, str] | None, numeric_names: set[int]) -> str:
    if not _ID.match(part):
        return part
    label_id = int(float(part))
    if names_by_id is None:
        numeric_names.add(label_id)
        return str(label_id)
    if label_id not in names_by_id:
        known = f"0..{max(names_by_id)}" if names_by_id else "none"
        raise DatasetError(f"{where}: label id {label_id} is out of range (known ids: {known})")
    return names_by_id[label_id]


def _names_by_id(labels: LabelsOption, root: Path) -> dict[int, str]:
    if isinstance(labels, Mapping):
        try:
            return {int(k): str(v) for k, v in labels.items()}
        except (TypeError, ValueError) as err:
            raise DatasetError("labels mapping keys must be integer ids") from err
    if isinstance(labels, str | Path):
        path = Path(labels)
        if not path.is_file() and (root / path).is_file():
            path = root / path
        if path.is_file():
            return _names_from_file(path)
        if isinstance(labels, str) and "," in labels:
            return {i: name.strip() for i, name in enumerate(labels.split(","))}
        raise DatasetError(f"labels file {labels} does not exist (or give the names comma-separated)")
    if labels is None:
        return {}
    return {i: str(name) for i, name in enumerate(labels)}


def _names_from_file(path: Path) -> dict[int, str]:
    text = read_text(path)
    if path.suffix.lower() != ".csv":
        return dict(enumerate(line.strip() for line in text.splitlines() if line.strip()))
    names: dict[int, str] = {}
    for line_no, row in enumerate(csv.reader(io.StringIO(text), skipinitialspace=True), start=1):
        if len(row) < 2:
            continue
        first, second = row[0].strip(), row[1].strip()
        if _ID.match(second):
            names[int(float(second))] = first
        elif _ID.match(first):
            names[int(float(first))] = second
        elif line_no > 1:
            raise DatasetError(f"{path}:{line_no}: expected a name and a numeric id")
    if not names:
        raise DatasetError(f"{path}: no name,id rows found")
    return names
