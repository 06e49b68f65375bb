"""Sidecar files that carry what a format itself cannot: `labels.txt` (label order) and `tags.csv` (image tags).

`labels.txt`: one label name per line; line order is the label's numeric id. Blank lines are skipped.
`tags.csv`: a header `image,tags`, then one row per image: its path relative to the dataset root and its
image-level tags joined with `;`.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from edge.datasets.model import Dataset, LabelInfo
from edge.datasets.paths import relative_name, resolve_inside
from edge.errors import DatasetError

log = logging.getLogger(__name__)

LABELS_FILE = "labels.txt"
TAGS_FILE = "tags.csv"
TAG_SEPARATOR = ";"


def read_text(path: Path) -> str:
    """A UTF-8 text file (a BOM is dropped), refusing undecodable bytes with an error naming the file."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path} is not UTF-8 text: {err}") from err
    except OSError as err:
        raise DatasetError(f"cannot read {path}: {err}") from err


def read_label_order(root: Path) -> list[str] | None:
    """Label names from root/labels.txt, or None when there is none."""
    path = root / LABELS_FILE
    if not path.is_file():
        return None
    names = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetError(f"{path} lists labels more than once: {', '.join(duplicates)}")
    return names


def write_label_order(ds: Dataset, root: Path) -> None:
    """Write root/labels.txt so a reader gets the labels back in their order."""
    (root / LABELS_FILE).write_text("".join(f"{name}\n" for name in ds.label_names), encoding="utf-8")


def ordered_labels(used: set[str], order: list[str] | None) -> list[LabelInfo]:
    """Labels in the sidecar's order (then any others, sorted), or sorted by name without a sidecar."""
    names = list(order or [])
    names += sorted(used - set(names))
    return [LabelInfo(name) for name in names]


# A cell a spreadsheet would run as a formula (`=2+5`, `+`, `-`, `@`, tab, CR first): written with a leading `'`
# (OWASP's CSV-injection advice), which spreadsheets show as text; the readers drop that quote again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(cell: str) -> str:
    """The cell as written to a CSV file: a leading `'` when a spreadsheet would evaluate it."""
    return f"'{cell}" if cell.startswith(_FORMULA_START) else cell


def unescape_formula(cell: str) -> str:
    """The cell as escape_formula was given it."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell


def split_tags(cell: str) -> list[str]:
    """Tags from a `;`-joined cell, stripped, empty parts dropped, order kept, duplicates removed."""
    out: list[str] = []
    for part in cell.split(TAG_SEPARATOR):
        tag = part.strip()
        if tag and tag not in out:
            out.append(tag)
    return out


def read_tags(root: Path) -> dict[str, list[str]]:
    """Image name (relative to root) -> tags, from root/tags.csv; empty when there is none."""
    path = root / TAGS_FILE
    if not path.is_file():
        return {}
    rows = list(csv.reader(io.StringIO(read_text(path))))
    if not rows:
        return {}
    header = [cell.strip().lower() for cell in rows[0]]
    if header[:2] != ["image", "tags"]:
        raise DatasetError(f"{path}:1: expected the header 'image,tags', found {','.join(rows[0])!r}")
    out: dict[str, list[str]] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2:
            raise DatasetError(f"{path}:{line_no}: expected 2 columns (image, tags), found {len(row)}")
        try:
            image = resolve_inside(root, unescape_formula(row[0]), what="image")
        except DatasetError as err:
            raise DatasetError(f"{path}:{line_no}: {err}") from err
        out[relative_name(root, image)] = split_tags(unescape_formula(row[1]))
    return out


def write_tags(root: Path, tags_by_name: dict[str, list[str]]) -> None:
    """Write root/tags.csv for the images that have tags (nothing when none has)."""
    rows = [
        (escape_formula(name), escape_formula(TAG_SEPARATOR.join(tags))) for name, tags in tags_by_name.items() if tags
    ]
    if not rows:
        return
    with (root / TAGS_FILE).open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "tags"])
        writer.writerows(rows)
