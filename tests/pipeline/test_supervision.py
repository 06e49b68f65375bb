"""A pipeline survives its sink failing (a full disk), and the supervisor restarts a worker thread that died."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from edge.events import EventDraft, EventLog, EventWriter
from edge.pipeline.model_slot import ModelSlot
from edge.pipeline.zone_scoring import ZoneScore
from tests.helpers.tiny_bundle import TinyBundle, make_detection_bundle
from tests.pipeline.test_camera_pipeline import RecordingSink, real_loader, running_pipeline, wait


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    out = tmp_path_factory.mktemp("bundles")
    return make_detection_bundle(out, version="det-a", key_dir=out / "keys", openvino=False)


class DiskFullSink(RecordingSink):
    """Every event write fails the way a full disk fails it."""

    def zone_event(self, camera: str, zone: str, transition: Any, image: Any, model: Any) -> None:
        super().zone_event(camera, zone, transition, image, model)
        raise OSError(errno.ENOSPC, "No space left on device")


class DiesOnce(RecordingSink):
    """The first evaluated frame ends the worker thread (what an exception that escapes its loop does)."""

    def __init__(self) -> None:
        super().__init__()
        self.died = False

    def frame_done(self, camera: str, frame: Any, scores: Sequence[tuple[str, ZoneScore]]) -> None:
        if not self.died:
            self.died = True
            raise SystemExit("the worker thread ends here")


def test_a_sink_that_cannot_write_does_not_stop_evaluation(tmp_path: Path, bundle: TinyBundle) -> None:
    slot = ModelSlot(real_loader)
    slot.load(bundle.bundle_dir)
    sink = DiskFullSink()
    with running_pipeline(tmp_path, slot, sink) as (pipeline, _):
        assert wait(lambda: len(sink.events) == 1)  # the left zone goes low: its start event fails to write
        evaluated = pipeline.stats.evaluated
        assert wait(lambda: pipeline.stats.evaluated >= evaluated + 5)  # the thread lived on
        assert "No space left on device" in (pipeline.stats.last_error or "")
        assert pipeline.stats.errors >= 1 and pipeline.healthy


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_the_supervisor_restarts_a_dead_pipeline_thread(tmp_path: Path, bundle: TinyBundle) -> None:
    slot = ModelSlot(real_loader)
    slot.load(bundle.bundle_dir)
    sink = DiesOnce()
    with running_pipeline(tmp_path, slot, sink, watchdog_seconds=30) as (pipeline, metrics):
        assert wait(lambda: sink.died)
        assert wait(lambda: pipeline.stats.restarts == 1)
        evaluated = pipeline.stats.evaluated
        assert wait(lambda: pipeline.stats.evaluated >= evaluated + 3)
        assert metrics.value("shelfwatch_pipeline_restarts_total", {"camera": "cam"}) == 1
        assert pipeline.healthy


def draft(n: int) -> EventDraft:
    return EventDraft("start" if n % 2 == 0 else "end", "cam", "left", "empty", 0.9, None, f"t{n}", "m", "1")


def test_events_the_disk_refuses_wait_in_memory_and_are_written_in_order(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db", "dev1")
    published: list[dict[str, Any]] = []
    disk = {"full": True}

    def publish(event: Any) -> None:  # the outbox's write, on a disk that is full until told otherwise
        if disk["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        published.append(event.payload)

    writer = EventWriter(log, publish, retry_min_seconds=1.0, retry_max_seconds=1.0, max_unwritten=5)
    try:
        writer.submit(draft(0))
        assert wait(lambda: writer.problem is not None)  # the writer thread logged t0; the outbox refused it
        assert "No space left" in (writer.problem or "")
        for n in range(1, 7):  # within the 1 s backoff: they queue behind t0
            writer.submit(draft(n))
        assert writer.unwritten == 5 and writer.dropped == 2  # bounded: the two oldest are dropped, counted
        assert published == []
        disk["full"] = False
        assert wait(lambda: writer.unwritten == 0)  # the writer's retry wrote the backlog
        assert writer.problem is None
        writer.submit(draft(7))
        assert writer.flush(timeout=10) == 0
        assert [p["ts"] for p in published] == ["t2", "t3", "t4", "t5", "t6", "t7"]
        seqs = [p["seq"] for p in published]
        assert seqs == sorted(seqs)
        # t0 was logged before its outbox write failed: the log re-queues it at the next start (same id).
        assert [e.payload["ts"] for e in log.unqueued()] == ["t0"]
    finally:
        writer.stop()
        log.close()
