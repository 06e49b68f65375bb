"""The event log's high-water mark: a small file beside `events.db` so that `seq` stays monotonic if the log is lost.

The mark holds a seq that no event has reached yet. Numbering an event past it first moves the mark `BLOCK`
further (atomic write, fsynced), so the file is written once per hundred events, not per event. When `events.db`
is lost (deleted, truncated to 0 bytes, moved aside after damage), the new log continues numbering after the mark:
subscribers that de-duplicate or order by seq never see an old number again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

BLOCK = 100


class SeqHighWaterMark:
    """`reserved`: every seq handed out so far is at most this (read from and kept in `path`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reserved = self._read()

    def _read(self) -> int:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as err:
            log.warning("cannot read the event seq mark %s (%s); relying on the event log alone", self.path, err)
            return 0
        try:
            return max(0, int(text))
        except ValueError:
            log.warning("the event seq mark %s holds %r, not a number; relying on the event log alone", self.path, text)
            return 0

    def cover(self, seq: int) -> None:
        """Make sure the mark is at least `seq` before that number is committed (writes only past the mark)."""
        if seq <= self.reserved:
            return
        target = seq + BLOCK
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(f"{target}\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self.reserved = target
