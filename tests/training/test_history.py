"""The training history on disk: what a restart finds, one run at a time, the newest runs kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.errors import ConflictError, NotFoundError
from edge.training.history import HISTORY_LIMIT, INTERRUPTED, RUNS_FILE, RunHistory
from edge.training.runs import TrainingRun


def run(run_id: str, state: str = "starting", job_id: str | None = None) -> TrainingRun:
    return TrainingRun(
        id=run_id, task="classification", backbone=None, epochs=None, deploy_threshold=0.85, metric="accuracy",
        source="upload", state=state, job_id=job_id,
    )  # fmt: skip


def test_a_restart_fails_runs_without_a_job_and_keeps_those_with_one(tmp_path: Path) -> None:
    rows = [run("with-job", "training", job_id="job-1").as_dict(), run("orphan", "uploading").as_dict()]
    (tmp_path / RUNS_FILE).write_text(json.dumps(rows))
    history = RunHistory(tmp_path)
    assert [r.id for r in history.in_progress()] == ["with-job"]
    orphan = history.get("orphan")
    assert orphan.state == "failed" and orphan.error == INTERRUPTED and orphan.finished
    # The verdict is written at once: the next process reads it as failed too.
    saved = {row["id"]: row for row in json.loads((tmp_path / RUNS_FILE).read_text())}
    assert saved["orphan"]["state"] == "failed"
    with pytest.raises(NotFoundError):
        history.get("nope")


def test_one_run_at_a_time_and_the_newest_kept(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    first = run("r0")
    history.add(first)
    with pytest.raises(ConflictError, match="already in progress"):
        history.add(run("r1"))
    history.update(first, state="deployed")
    assert first.finished is not None and first.finished == first.updated
    for i in range(1, HISTORY_LIMIT + 5):
        r = run(f"r{i}")
        history.add(r)
        history.update(r, state="failed")
    ids = [r.id for r in RunHistory(tmp_path).runs()]
    assert len(ids) == HISTORY_LIMIT and ids[0] == f"r{HISTORY_LIMIT + 4}"


def test_reports_are_kept_beside_the_history(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    r = run("r0")
    history.add(r)
    assert history.report("r0") is None
    history.save_report(r, {"accuracy": 0.9})
    assert r.has_report and RunHistory(tmp_path).report("r0") == {"accuracy": 0.9}


def test_an_unreadable_history_starts_a_new_one(tmp_path: Path) -> None:
    (tmp_path / RUNS_FILE).write_text("{not json")
    assert RunHistory(tmp_path).runs() == []
