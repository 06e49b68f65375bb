"""Restart recovery with the real command: `shelfwatch trainer serve` in a subprocess is killed (SIGKILL) in the
middle of a job, its worker dies with it, and the restarted service reports that job failed with the reason and
runs the job that was still queued. Nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.service.conftest import TINY_RUNNER, TOKEN
from trainer.service.store import RESTART_REASON, JobStore

REPO = Path(__file__).resolve().parents[3]


class Service:
    """`python -m edge trainer serve` as a child process, and a tiny JSON client for it."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge",
                "trainer",
                "serve",
                "-c",
                str(config),
                "--port",
                "0",
                "--runner",
                TINY_RUNNER,
            ],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the service prints "listening on URL" once it accepts connections
        assert line.startswith("listening on "), f"unexpected first line {line!r}"
        self.url = line.split()[-1]

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> Any:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        req.add_header("Authorization", f"Bearer {TOKEN}")
        if body is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/jobs/{job_id}"))

    def wait(self, job_id: str, predicate: Any, timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if predicate(job):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} never got there: {job}")


def _gone(pid: int, timeout: float = 30.0) -> bool:
    """Whether the process ends (or is a zombie) within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in status:
            return True
        time.sleep(0.1)
    return False


def write_config(tmp_path: Path, rest: str = "workers: 1\n") -> Path:
    """tmp_path/trainer.yaml for a service on loopback with TOKEN, no weights, data under tmp_path/trainer;
    `rest` follows the `training:` block (indent by two spaces to add training keys)."""
    config = tmp_path / "trainer.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'trainer'}\n"
        "server:\n"
        "  host: 127.0.0.1\n"
        f"  tokens: ['{TOKEN}']\n"
        "  max_archive_mb: 5\n"
        "training:\n"
        "  weights: null\n" + rest
    )
    return config


def test_tells_systemd_ready_and_feeds_the_watchdog_while_the_api_answers(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(30)
        service = Service(config, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
        try:
            received = [sock.recv(256).decode() for _ in range(2)]
            assert received == ["READY=1", "WATCHDOG=1"]
        finally:
            service.proc.send_signal(signal.SIGTERM)
            assert service.proc.wait(timeout=30) == 0
        while received[-1] != "STOPPING=1":  # more watchdog pings may come first; a timeout fails the test
            received.append(sock.recv(256).decode())
        assert set(received[1:-1]) == {"WATCHDOG=1"}


@pytest.mark.slow
def test_killed_mid_job_then_restarted(tmp_path: Path, colour_zip: bytes) -> None:
    config = write_config(tmp_path)
    data_dir = tmp_path / "trainer"
    first = Service(config)
    try:
        dataset = first.call("POST", "/v1/datasets", colour_zip, "application/zip")["id"]
        body = {"dataset": dataset, "task": "classification"}
        running = first.call("POST", "/v1/jobs", json.dumps({**body, "epochs": 1000}).encode())["id"]
        queued = first.call("POST", "/v1/jobs", json.dumps({**body, "epochs": 2}).encode())["id"]
        first.wait(running, lambda j: j["state"] == "training" and bool(j["progress"].get("epoch")))
        assert first.job(queued)["state"] == "queued"
        worker_pid = JobStore(data_dir).get_job(running).pid
        assert worker_pid is not None
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=30)
    assert _gone(worker_pid), "the worker outlived the killed server"
    assert JobStore(data_dir).get_job(running).state == "training"  # nobody could record anything yet

    second = Service(config)
    try:
        failed = second.job(running)
        assert failed["state"] == "failed" and failed["error"] == RESTART_REASON
        done = second.wait(queued, lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
        assert done["state"] == "succeeded", done
        assert {j["id"] for j in second.call("GET", "/v1/jobs")["items"]} == {running, queued}
        assert second.call("GET", f"/v1/datasets/{dataset}")["images"] == 36
    finally:
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=30) == 0
    assert not any(p.name.startswith(".") for p in (data_dir / "bundles").iterdir())
