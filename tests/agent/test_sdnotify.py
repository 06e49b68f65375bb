"""systemd notify: READY=1 after start, WATCHDOG=1 only while the pipelines are healthy."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from edge import sdnotify
from edge.agent import Agent, AgentOptions
from tests.agent.conftest import ShelfCamera, edge_config
from tests.helpers.tiny_bundle import TinyBundle


def test_notify_without_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")  # another process's watchdog
    assert sdnotify.watchdog_interval() is None


def test_agent_reports_ready_and_feeds_the_watchdog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shelf_camera: ShelfCamera, det_bundle: TinyBundle
) -> None:
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # pings every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    agent = Agent(edge_config(tmp_path / "data", shelf_camera.folder, det_bundle, None), AgentOptions(web=False))
    agent.start()
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not ("READY=1" in seen and "WATCHDOG=1" in seen):
            seen.append(server.recv(256).decode())
        assert seen[0] == "READY=1" and "WATCHDOG=1" in seen
        # A pipeline whose worker is gone stops the pings (systemd then restarts the service).
        agent.pipelines["cam1"].stop()
        assert not agent.healthy()
        time.sleep(0.7)
        server.settimeout(0.1)
        drained = []
        try:
            while True:
                drained.append(server.recv(256).decode())
        except TimeoutError:
            pass
        server.settimeout(1.5)
        with pytest.raises(TimeoutError):
            server.recv(256)
    finally:
        agent.stop()
        server.close()
