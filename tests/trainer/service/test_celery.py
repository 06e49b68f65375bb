"""Training jobs on Celery: a real redis-server, the real API (`shelfwatch trainer serve`, queue kind celery) and
two real `shelfwatch trainer worker` processes running the real trainer.pipeline.run_training on a tiny dataset.

Four jobs spread over both workers and succeed, also across an API killed (SIGKILL) and restarted in the middle;
a worker killed (SIGKILL) mid-job leaves that job failed with the documented reason while the surviving worker goes
on; a cancel reaches a job running on a worker through the job store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.processes import stop_process
from tests.trainer.helpers import coloured_dataset
from tests.trainer.service.conftest import zip_folder
from tests.trainer.service.servers import RedisServer
from tests.trainer.service.test_restart import REPO, Service, write_config

pytestmark = pytest.mark.slow
TERMINAL = ("succeeded", "failed", "cancelled")
JOB = {
    "task": "classification",
    "weights": "none",
    "input_size": 32,
    "views": 1,
    "min_per_label": 2,
    "seed": 0,
    "int8": False,
}


class Worker:
    """`python -m edge trainer worker -c CONFIG --name NAME`, logging to a file."""

    def __init__(self, config: Path, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "trainer", "worker", "-c", str(config), "--name", name],
            cwd=REPO,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log.read_text(errors="replace"):
                return
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} never became ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


def _config(tmp_path: Path, broker_url: str) -> Path:
    return write_config(
        tmp_path,
        f"  threads: 1\nqueue:\n  kind: celery\n  broker_url: {broker_url}\n  lost_after_s: 10\n",
    )


def _submit(api: Service, dataset: str, **params: object) -> str:
    return str(api.call("POST", "/v1/jobs", json.dumps({"dataset": dataset, **JOB, **params}).encode())["id"])


def test_jobs_spread_over_two_celery_workers_survive_restart_and_a_killed_worker(
    tmp_path: Path, redis: RedisServer
) -> None:
    config = _config(tmp_path, redis.url)
    coloured_dataset(tmp_path / "colours", per_label=4)
    workers = [Worker(config, f"w{i}@test", tmp_path / f"w{i}.log") for i in (1, 2)]
    api = Service(config)
    try:
        for worker in workers:
            worker.wait_ready()
        dataset = api.call("POST", "/v1/datasets", zip_folder(tmp_path / "colours"), "application/zip")["id"]
        jobs = [_submit(api, dataset, epochs=6) for _ in range(4)]
        assert api.job(jobs[0])["state"] in ("queued", "training")

        # The API dies (SIGKILL) while jobs run and wait: nothing is lost, a new API process serves the rest.
        api.proc.send_signal(signal.SIGKILL)
        api.proc.wait(timeout=30)
        api = Service(config)
        done = [api.wait(j, lambda job: job["state"] in TERMINAL, timeout=240) for j in jobs]
        assert [d["state"] for d in done] == ["succeeded"] * 4, done
        assert {d["worker"] for d in done} == {"w1@test", "w2@test"}, [d["worker"] for d in done]
        assert all(d["metrics"]["accuracy"] >= 0.0 and d["bundle_ready"] for d in done)

        # A worker killed mid-job: that job is failed with the reason, the other worker takes the next job.
        long_job = _submit(api, dataset, epochs=1000)
        running = api.wait(long_job, lambda j: j["state"] == "training" and bool(j["progress"].get("epoch")))
        victim = next(w for w in workers if w.name == running["worker"])
        survivor = next(w for w in workers if w is not victim)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=30)
        after = _submit(api, dataset, epochs=2)
        failed = api.wait(long_job, lambda j: j["state"] in TERMINAL, timeout=60)
        assert failed["state"] == "failed", failed
        assert "stopped reporting" in failed["error"] and victim.name in failed["error"], failed["error"]
        ok = api.wait(after, lambda j: j["state"] in TERMINAL, timeout=120)
        assert ok["state"] == "succeeded" and ok["worker"] == survivor.name, ok

        # Cancel reaches a job on a worker through the job store.
        cancelled = _submit(api, dataset, epochs=1000)
        api.wait(cancelled, lambda j: j["state"] == "training" and bool(j["progress"].get("epoch")))
        api.call("POST", f"/v1/jobs/{cancelled}/cancel", b"{}")
        end = api.wait(cancelled, lambda j: j["state"] in TERMINAL, timeout=60)
        assert end["state"] == "cancelled" and end["worker"] == survivor.name, end
    finally:
        api.proc.send_signal(signal.SIGTERM)
        api.proc.wait(timeout=30)
        for worker in workers:
            worker.stop()
