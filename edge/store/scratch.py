"""Work folders for imports and exports under data_dir, named after the process that made them.

A folder is `<purpose>-<pid>-<random>`: removed when its `with` block ends, and, when the process was killed before
that, by the next process that opens the store and finds that pid gone. A folder of a live process (the daemon
and the CLI share a data_dir) is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z]+-(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def folder(root: Path, purpose: str) -> Iterator[Path]:
    """A new, empty folder under `root`, removed with everything in it when the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{purpose}-{os.getpid()}-", dir=root))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def remove_abandoned(root: Path) -> int:
    """Remove the folders under `root` whose process is gone; returns how many."""
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed
