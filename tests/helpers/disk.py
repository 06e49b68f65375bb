"""A real small filesystem for fault tests: a tmpfs mounted by the test (root only), filled on demand."""

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
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's syntax: 4m, 24m) mounted at path; unmounted afterwards. Skips unless root."""
    if os.geteuid() != 0:
        pytest.skip("this fault test mounts a tmpfs (a real small filesystem): that needs root, as make test runs")
    if shutil.which("mount") is None:
        pytest.skip("this fault test needs mount(8) to mount a tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem says ENOSPC; returns it (delete it to free the space)."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for block in (1 << 20, 1 << 12, 1):
            while True:
                try:
                    os.write(fd, b"\0" * block)
                except OSError as err:
                    assert err.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def used_bytes(folder: Path) -> int:
    """Bytes of regular files under folder (what was written there)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
