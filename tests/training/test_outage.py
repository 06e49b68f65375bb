"""Following a job rides out a trainer outage (down, then 5xx while it restarts) and still stops on a 4xx."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from edge.training.client import TrainerClient, TrainerHttpError, TrainerUnreachable
from tests.helpers.http_stub import Answer, StubServer, json_answer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Trainer(StubServer):
    """A real HTTP server on loopback answering GET /v1/jobs/<id> from a script of (status, body) answers."""

    def __init__(self, port: int, answers: list[tuple[int, dict]]) -> None:
        self.answers = answers
        self.seen = 0
        super().__init__(self._next, port)

    def _next(self, path: str) -> Answer:
        status, body = self.answers[min(self.seen, len(self.answers) - 1)]
        self.seen += 1
        return json_answer(status, body)

    def close(self) -> None:
        self.stop()


def test_a_down_then_restarting_trainer_does_not_end_the_run() -> None:
    port = _free_port()
    client = TrainerClient(f"http://127.0.0.1:{port}", "t", timeout=2)
    result: dict = {}

    def follow() -> None:
        try:
            result["final"] = client.wait("j1", poll_seconds=0.05, outage_seconds=60, max_delay=0.5)
        except Exception as err:
            result["error"] = err

    waiter = threading.Thread(target=follow)
    waiter.start()
    time.sleep(3.5)  # nothing listens: with the old five-error limit the run was abandoned after about 0.3 s here
    assert "error" not in result, result.get("error")
    trainer = _Trainer(
        port, [(503, {"error": "starting"}), (503, {"error": "starting"}), (200, {"state": "succeeded"})]
    )
    try:
        waiter.join(timeout=60)
        assert result.get("final") == {"state": "succeeded"}
        assert trainer.seen == 3  # both 5xx answers were retried
    finally:
        trainer.close()


def test_an_outage_longer_than_the_limit_ends_the_run_with_the_reason() -> None:
    client = TrainerClient(f"http://127.0.0.1:{_free_port()}", "t", timeout=1)
    with pytest.raises(TrainerUnreachable):
        client.wait("j1", poll_seconds=0.05, outage_seconds=0.5)


def test_a_refusal_is_final_at_once() -> None:
    port = _free_port()
    trainer = _Trainer(port, [(404, {"error": "no job j1"})])
    try:
        with pytest.raises(TrainerHttpError) as err:
            TrainerClient(f"http://127.0.0.1:{port}", "t").wait("j1", poll_seconds=0.05)
        assert err.value.status == 404 and trainer.seen == 1
    finally:
        trainer.close()
