"""Safe extraction of uploaded dataset archives (.zip, .tar, .tar.gz/.tgz, and other compressed tars).

Every member is checked before anything is written: relative names only (no absolute paths, drive letters or
`..`), regular files and folders only (symlinks, hard links and devices are refused), at most max_files entries.
The uncompressed size is counted while the bytes are written, never taken from headers, so a compression bomb
stops at max_bytes. Extraction happens in a staging folder beside dest; on any refusal it is removed, so dest
holds either the whole archive or nothing.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from edge.datasets.paths import IGNORED_NAMES, check_name_lengths, staged_output
from edge.errors import DatasetError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass
class _Member:
    """One archive entry, reduced to what extraction needs."""

    name: str
    is_dir: bool
    declared_size: int


class _Budget:
    """Counts bytes written across all members and refuses the first byte past the limit."""

    def __init__(self, archive: Path, max_bytes: int) -> None:
        self.archive = archive
        self.max_bytes = max_bytes
        self.used = 0

    def take(self, n: int, member: str) -> None:
        self.used += n
        if self.used > self.max_bytes:
            raise DatasetError(
                f"{self.archive}: uncompressed contents exceed the limit of {self.max_bytes} bytes "
                f"(reached while extracting {member!r})"
            )


def extract_archive(archive: Path, dest: Path, *, max_bytes: int, max_files: int = 100_000) -> Path:
    """Extract archive into dest (new or empty) safely; returns dest, or its single top-level folder."""
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise DatasetError(f"archive {archive} does not exist")
    # The trainer clears `.<id>.extracting-*` folders a killed process left behind: keep that stage name.
    with staged_output(dest, stage="extracting") as staging:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, staging, max_bytes, max_files)
        else:
            _extract_tar(archive, staging, max_bytes, max_files)
    entries = [p for p in dest.iterdir() if p.name not in IGNORED_NAMES]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def uploader_message(message: str, *, archive: Path, extracted: Path, name: str, format_hint: str) -> str:
    """An extraction or reading error as the uploader should see it: their archive's name, no server paths."""
    message = (
        message.replace(str(archive), name)
        .replace(str(extracted) + "/", "")
        .replace(str(extracted), "the archive")
        .replace("pass --format", format_hint)
    )
    return message if name in message else f"{name}: {message}"


def _safe_parts(archive: Path, name: str) -> tuple[str, ...] | None:
    """The path parts a member may be written to; None for archiver junk; DatasetError for a dangerous name."""
    if "\x00" in name:
        raise DatasetError(f"{archive}: member {name!r} has a NUL byte in its name")
    normalised = name.replace("\\", "/")
    check_name_lengths(normalised, f"{archive}: member")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise DatasetError(f"{archive}: member {name!r} has an absolute path")
    parts = tuple(p for p in PurePosixPath(normalised).parts if p not in ("", "."))
    if ".." in parts:
        raise DatasetError(f"{archive}: member {name!r} points outside the archive ('..')")
    if parts and parts[0] == "__MACOSX":
        return None
    return parts


def _write_member(
    archive: Path, staging: Path, member: _Member, source: IO[bytes] | None, budget: _Budget, written: set[tuple]
) -> None:
    parts = _safe_parts(archive, member.name)
    if parts is None or not parts:
        return
    if parts in written and not member.is_dir:
        raise DatasetError(f"{archive}: member {member.name!r} appears more than once")
    written.add(parts)
    target = staging.joinpath(*parts)
    # Defence in depth: no symlinks are ever created, but check the final path anyway.
    if not Path(os.path.abspath(target)).is_relative_to(staging):
        raise DatasetError(f"{archive}: member {member.name!r} points outside the extraction folder")
    if member.declared_size > budget.max_bytes:
        raise DatasetError(f"{archive}: member {member.name!r} declares {member.declared_size} bytes, over the limit")
    try:
        if member.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        assert source is not None
        with target.open("xb") as out:
            while chunk := source.read(_CHUNK):
                budget.take(len(chunk), member.name)
                out.write(chunk)
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as err:
        raise DatasetError(f"{archive}: member {member.name!r} clashes with another member: {err}") from err


def _extract_zip(archive: Path, staging: Path, max_bytes: int, max_files: int) -> None:
    budget = _Budget(archive, max_bytes)
    written: set[tuple] = set()
    current = "(central directory)"
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > max_files:
                raise DatasetError(f"{archive}: {len(infos)} members, more than the limit of {max_files}")
            for info in infos:
                current = info.filename
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise DatasetError(f"{archive}: member {info.filename!r} is a symbolic link, which is refused")
                if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise DatasetError(f"{archive}: member {info.filename!r} is not a regular file or folder")
                member = _Member(info.filename, info.is_dir(), info.file_size)
                if member.is_dir:
                    _write_member(archive, staging, member, None, budget, written)
                    continue
                with zf.open(info) as source:
                    _write_member(archive, staging, member, source, budget, written)
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as err:
        raise DatasetError(f"{archive}: corrupt or truncated zip archive at member {current!r}: {err}") from err


def _tar_members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    member = tf.next()
    while member is not None:
        yield member
        member = tf.next()


def _extract_tar(archive: Path, staging: Path, max_bytes: int, max_files: int) -> None:
    budget = _Budget(archive, max_bytes)
    written: set[tuple] = set()
    current = "(header)"
    count = 0
    try:
        # Stream mode: members are read in order without seeking, so truncation surfaces at the member it hits.
        with tarfile.open(archive, mode="r|*") as tf:
            for info in _tar_members(tf):
                current = info.name
                count += 1
                if count > max_files:
                    raise DatasetError(f"{archive}: more than the limit of {max_files} members")
                if info.issym() or info.islnk():
                    raise DatasetError(f"{archive}: member {info.name!r} is a link, which is refused")
                if not (info.isreg() or info.isdir()):
                    raise DatasetError(f"{archive}: member {info.name!r} is a device, FIFO or other special file")
                member = _Member(info.name, info.isdir(), info.size)
                source = None if info.isdir() else tf.extractfile(info)
                _write_member(archive, staging, member, source, budget, written)
                if source is not None:
                    _check_complete(archive, info, staging)
            current = "(end of archive)"
    except DatasetError:
        raise
    except tarfile.ReadError as err:
        if count == 0 and current == "(header)":
            raise DatasetError(f"{archive}: not a zip or tar archive, or corrupt: {err}") from err
        raise DatasetError(f"{archive}: corrupt or truncated tar archive at member {current!r}: {err}") from err
    except (tarfile.TarError, zlib.error, EOFError, OSError) as err:
        raise DatasetError(f"{archive}: corrupt or truncated tar archive at member {current!r}: {err}") from err


def _check_complete(archive: Path, info: tarfile.TarInfo, staging: Path) -> None:
    parts = _safe_parts(archive, info.name)
    if not parts:
        return
    written = staging.joinpath(*parts).stat().st_size
    if written != info.size:
        raise DatasetError(f"{archive}: member {info.name!r} is truncated ({written} of {info.size} bytes)")
