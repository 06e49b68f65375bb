"""A real, small filesystem for full-disk tests: a tmpfs mounted for the test (needs root; skips otherwise)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_filesystem(path: Path, size_mb: int = 8) -> Iterator[Path]:
    """Mount a tmpfs of `size_mb` at `path` for the block; skip the test where mounting is not allowed."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("a full-disk test mounts a small tmpfs, which needs root (run the tests as root, e.g. in CI)")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, name: str = "filler.bin") -> Path:
    """Write zeros under `folder` until its filesystem is full; returns the filler file (delete it to free space)."""
    filler = folder / name
    with open(filler, "ab", buffering=0) as fh:
        for size in (1024 * 1024, 4096, 1):
            try:
                while fh.write(b"\0" * size):
                    pass
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
    return filler
