"""Pacing for sources that produce frames faster than real time (files, folders, the synthetic shelf)."""

from __future__ import annotations

import threading
import time


class Pacer:
    """Sleeps so successive `wait()` calls return `interval` seconds apart, never bursting to catch up."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next: float | None = None
        self._cancel = threading.Event()

    def wait(self) -> None:
        """Block until the next frame is due (returns at once after `interrupt()`)."""
        now = time.monotonic()
        # After a stall longer than one interval, start afresh rather than delivering a burst of late frames.
        if self._next is None or now > self._next + self.interval:
            self._next = now
        delay = self._next - now
        if delay > 0:
            self._cancel.wait(delay)
        self._next += self.interval

    def interrupt(self) -> None:
        """Cut short the current and every later wait; safe to call from another thread."""
        self._cancel.set()
