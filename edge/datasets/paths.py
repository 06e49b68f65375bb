"""Safe path handling shared by every format: resolving names inside a dataset root, listing images, naming output
files and writing an output folder all at once (a failed export leaves nothing behind)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from edge.datasets.model import Sample
from edge.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

# Folder names that mean a split, mapped to the split they mean.
SPLIT_FOLDERS: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}

# Junk that archivers and desktops leave in folders; never part of a dataset.
IGNORED_NAMES = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def is_ignored(name: str) -> bool:
    """Hidden files, AppleDouble files and desktop junk."""
    return name in IGNORED_NAMES or name.startswith(".")


def split_from_name(name: str) -> str | None:
    """The split a folder or file stem names (`valid` -> `val`), or None."""
    return SPLIT_FOLDERS.get(name.lower())


def resolve_inside(root: Path, reference: str, *, base: Path | None = None, what: str = "image") -> Path:
    """Resolve a relative reference from an annotation file to a path inside root, refusing escapes."""
    text = reference.strip()
    if not text:
        raise DatasetError(f"empty {what} path")
    if "\x00" in text:
        raise DatasetError(f"{what} path {reference!r} contains a NUL byte")
    normalised = text.replace("\\", "/")
    check_name_lengths(normalised, f"{what} path")
    if normalised.startswith("/") or _WINDOWS_DRIVE.match(normalised):
        raise DatasetError(f"{what} path {reference!r} is absolute; paths must be relative to the dataset folder")
    if ".." in PurePosixPath(normalised).parts:
        raise DatasetError(f"{what} path {reference!r} contains '..'; paths must stay inside the dataset folder")
    candidate = (base or root) / normalised
    return ensure_inside(root, candidate, reference=reference, what=what)


MAX_NAME_BYTES = 255  # one file or folder name (NAME_MAX on Linux filesystems)
MAX_PATH_BYTES = 1024  # a whole relative path: far past any real dataset, far below PATH_MAX


def check_name_lengths(path: str, what: str) -> None:
    """DatasetError when a name in `path` (/-separated) or the path itself is longer than a filesystem takes."""
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise DatasetError(f"{what} {path[:40]!r}... is longer than {MAX_PATH_BYTES} bytes")
    for part in path.split("/"):
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise DatasetError(f"{what} {path[:40]!r}... has a name longer than {MAX_NAME_BYTES} bytes")


def ensure_inside(root: Path, path: Path, *, reference: str | None = None, what: str = "image") -> Path:
    """Resolve path (following symlinks) and refuse it when it lies outside root."""
    resolved_root = root.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(resolved_root):
        shown = reference if reference is not None else str(path)
        raise DatasetError(f"{what} path {shown!r} resolves outside the dataset folder {root}")
    return resolved


def require_file(path: Path, *, what: str = "image", referenced_by: str | None = None) -> None:
    """Refuse a missing file with an error naming it (and what referenced it)."""
    if not path.is_file():
        where = f" (referenced by {referenced_by})" if referenced_by else ""
        raise DatasetError(f"{what} file {path} is missing{where}")


def relative_name(root: Path, path: Path) -> str:
    """The sample name: path relative to the dataset root, with forward slashes."""
    absolute = Path(os.path.abspath(path))
    absolute_root = Path(os.path.abspath(root))
    if absolute.is_relative_to(absolute_root):
        return absolute.relative_to(absolute_root).as_posix()
    return path.resolve().relative_to(root.resolve()).as_posix()


def iter_image_files(folder: Path) -> Iterator[Path]:
    """Every image under folder (recursive, sorted, skipping hidden files and desktop junk)."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not is_ignored(d))
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            if is_ignored(filename) or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if not path.exists():
                raise DatasetError(f"image file {path} is missing (a broken link)")
            if path.is_file():
                yield path


def output_file_names(samples: list[Sample]) -> list[str]:
    """One output file name per sample: its base name, made unique by stem (case-insensitively).

    Formats pair an image with an annotation file by stem (YOLO `a.jpg` -> `a.txt`), so `a.jpg` and `a.png`, or
    `train/a.jpg` and `val/a.jpg`, must not share one.
    """
    used: set[str] = set()
    names: list[str] = []
    for sample in samples:
        base = PurePosixPath(sample.name.replace("\\", "/")).name or sample.path.name
        stem, suffix = os.path.splitext(base)
        if suffix.lower() in IMAGE_SUFFIXES:
            suffix = suffix.lower()
        elif sample.path.suffix.lower() in IMAGE_SUFFIXES:
            suffix = sample.path.suffix.lower()
        else:
            # Content-addressed store files may have no suffix; readers only pick up files with an image suffix.
            from edge.datasets.imaging import image_suffix

            stem, suffix = base, image_suffix(sample.path)
        candidate, n = stem, 1
        while candidate.lower() in used:
            n += 1
            candidate = f"{stem}_{n}"
        used.add(candidate.lower())
        names.append(candidate + suffix)
    return names


def check_label_is_file_name(label: str) -> None:
    """Refuse a label that cannot be a folder name (folder-per-class export)."""
    if label in ("", ".", "..") or any(c in label for c in "/\\\x00") or is_ignored(label):
        raise DatasetError(f"label {label!r} cannot be used as a folder name")


def copy_image(sample: Sample, target: Path) -> None:
    """Copy a sample's image file to target, refusing a missing source."""
    require_file(sample.path, what="image", referenced_by=f"sample {sample.name!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample.path, target)


@contextlib.contextmanager
def staged_output(out: Path, *, stage: str = "partial") -> Iterator[Path]:
    """Yield a temporary folder `.<out name>.<stage>-*` beside out; on success it becomes out, on failure it goes.

    out may not exist yet or be an empty folder; a non-empty out is refused so an export never mixes with old files.
    """
    if out.exists():
        if not out.is_dir():
            raise DatasetError(f"output {out} exists and is not a folder")
        if any(out.iterdir()):
            raise DatasetError(f"output folder {out} is not empty: it must be new or empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.{stage}-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
