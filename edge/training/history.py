"""The training history on disk: <data_dir>/<history_dir>/runs.json (newest runs first) and each run's report.

One process owns a history. Every change is written at once (to a temporary file, then renamed), so a device that
stops mid-run finds the run as it last was; runs that were in progress without a trainer job are recorded as failed
when the history is read again (nothing is left to follow).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from edge.errors import ConflictError, NotFoundError
from edge.training.runs import TrainingRun, now_iso

log = logging.getLogger(__name__)

HISTORY_LIMIT = 50
RUNS_DIR = "training"
RUNS_FILE = "runs.json"
REPORT_FILE = "report.json"
INTERRUPTED = "the device restarted while this run was in progress"  # when there is no trainer job to follow


def interrupted(run: TrainingRun) -> str:
    """Why a run that a restart interrupted ended (or cannot resume)."""
    if run.job_id:
        return f"{INTERRUPTED}; trainer job {run.job_id} may still finish there"
    return INTERRUPTED


class RunHistory:
    """The newest HISTORY_LIMIT runs, thread-safe; `update()` changes a run and writes the history."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._runs: list[TrainingRun] = self._load()
        if any(run.error and run.error.startswith(INTERRUPTED) and run.finished for run in self._runs):
            self._save()  # record the runs _load() found dead

    def _load(self) -> list[TrainingRun]:
        path = self.dir / RUNS_FILE
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except ValueError:
            log.error("training history %s is unreadable; starting a new one", path)
            return []
        known = {f.name for f in fields(TrainingRun)}
        runs = []
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict) or "id" not in row:
                continue
            run = TrainingRun(**{k: v for k, v in row.items() if k in known})
            if run.in_progress and run.job_id is None:
                # Its thread died with the previous process before the trainer had a job: nothing to follow.
                # A run with a job is followed again by the runner (installing twice is harmless).
                run.state, run.error, run.finished = "failed", interrupted(run), now_iso()
            runs.append(run)
        return runs

    def _save(self) -> None:
        path = self.dir / RUNS_FILE
        tmp = path.with_suffix(".tmp")
        rows = [asdict(r) for r in self._runs[:HISTORY_LIMIT]]
        tmp.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def add(self, run: TrainingRun) -> None:
        """Record a new run; ConflictError while another one is in progress."""
        with self._lock:
            if any(r.in_progress for r in self._runs):
                raise ConflictError("a training run is already in progress; cancel it or wait for it to finish")
            self._runs.insert(0, run)
            del self._runs[HISTORY_LIMIT:]
            self._save()

    def update(self, run: TrainingRun, **changes: Any) -> None:
        """Change a run's fields, stamp `updated` (and `finished` once it ended) and write the history."""
        with self._lock:
            for key, value in changes.items():
                setattr(run, key, value)
            run.updated = now_iso()
            if not run.in_progress and run.finished is None:
                run.finished = run.updated
            self._save()

    def runs(self) -> list[TrainingRun]:
        """Every remembered run, newest first."""
        with self._lock:
            return list(self._runs)

    def in_progress(self) -> list[TrainingRun]:
        """The runs still going (after a restart: those the previous process left)."""
        with self._lock:
            return [r for r in self._runs if r.in_progress]

    def get(self, run_id: str) -> TrainingRun:
        """One run by id; NotFoundError when unknown."""
        with self._lock:
            for run in self._runs:
                if run.id == run_id:
                    return run
        raise NotFoundError(f"training run {run_id!r} does not exist")

    def run_dir(self, run: TrainingRun) -> Path:
        """The folder of a run's files (the bundle while it is downloaded, the report)."""
        path = self.dir / run.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save_report(self, run: TrainingRun, report: dict[str, Any]) -> None:
        """Keep a run's evaluation report beside the history."""
        (self.run_dir(run) / REPORT_FILE).write_text(json.dumps(report), encoding="utf-8")
        self.update(run, has_report=True)

    def report(self, run_id: str) -> dict[str, Any] | None:
        """The evaluation report of a run, once it has one; NotFoundError for an unknown run."""
        self.get(run_id)
        try:
            data: dict[str, Any] = json.loads((self.dir / run_id / REPORT_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return data
