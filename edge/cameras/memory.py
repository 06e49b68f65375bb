"""The process's allocator set up for video frames: what keeps a many-camera device inside its memory budget.

Every camera thread decodes a new 2.7 MB (720p BGR) frame per picture, and the pipelines cut crops and tensors of
a megabyte or more from it; each is freed a moment later. glibc's malloc, left alone, (1) raises its mmap
threshold to the size of the first large block freed (up to 32 MB), so from then on these blocks come from the
heap instead of mmap, and a freed one is kept instead of returned to the system; and (2) gives every thread that
allocates its own arena (up to 8 per core), each keeping its own freed blocks. With 8 cameras x 4 zones that was
~130 MB of freed frames held for good (docs/BENCHMARKS.md, issue 15).

`tune_allocator()` fixes both through mallopt(3), the in-process equivalent of MALLOC_MMAP_THRESHOLD_ /
MALLOC_ARENA_MAX: blocks of 128 KiB and more always go to mmap (returned on free; one mmap per frame is
nothing next to decoding it), and at most 2 arenas. An operator's own MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ in
the environment wins. Called once per process when the first camera capture is built (the agent's wire() builds
the cameras before the model loads, so before any inference or camera thread allocates). A no-op where libc is
not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading

log = logging.getLogger(__name__)

MMAP_THRESHOLD_BYTES = 128 * 1024
ARENA_MAX = 2
# mallopt(3) parameter numbers (glibc malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_lock = threading.Lock()
_done: dict[str, int] | None = None


def tune_allocator() -> dict[str, int]:
    """Set the mmap threshold and arena limit once (see the module docstring); what was set (empty: nothing)."""
    global _done
    with _lock:
        if _done is not None:
            return _done
        _done = {}
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator behaves otherwise
            return _done
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        wanted = {
            "MALLOC_MMAP_THRESHOLD_": (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            "MALLOC_ARENA_MAX": (_M_ARENA_MAX, ARENA_MAX),
        }
        for env, (param, value) in wanted.items():
            if env in os.environ:  # the operator chose
                continue
            if mallopt(param, value) == 1:
                _done[env] = value
        log.debug("allocator: %s", _done or "left as it is")
        return _done
