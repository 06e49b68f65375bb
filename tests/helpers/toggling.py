"""A background thread that changes what a folder camera shows every `period` seconds (makes events)."""

from __future__ import annotations

import threading
from typing import Self


class PeriodicToggler:
    """Calls `step(n)` for n = 0, 1, 2, ... every `period` seconds while its with block runs."""

    def __init__(self, period: float) -> None:
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def step(self, n: int) -> None:
        """Show the n-th picture."""
        raise NotImplementedError

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            self.step(n)
            n += 1
            self._stop.wait(self.period)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
