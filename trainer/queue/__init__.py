"""Where training jobs run: the API server's own worker processes (`queue: local`) or Celery workers
(`queue: {kind: celery, broker_url: redis://...}`). Both sit behind `JobQueue`; the job store stays the one source
of truth for state, progress, cancel requests and results, whichever runs the job."""

from __future__ import annotations

from typing import Protocol


class JobQueue(Protocol):
    """What the API needs from a queue: hand a queued job over, pass a cancel on, start and stop."""

    def submit(self, job_id: str) -> None:
        """A job was queued in the store: run it when a worker is free."""

    def cancel(self, job_id: str) -> None:
        """A cancel was requested in the store."""

    def start(self) -> object:
        """Start the queue's background work."""

    def stop(self, *, terminate: bool = True) -> None:
        """Stop it; `terminate` ends jobs the API process itself runs (local queue only)."""
