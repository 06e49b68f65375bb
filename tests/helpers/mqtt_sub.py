"""`mosquitto_sub` as an independent subscriber for tests: collects (retained, topic, payload) lines."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge.processes import stop_process

MOSQUITTO_SUB = shutil.which("mosquitto_sub")


@dataclass(frozen=True)
class Received:
    """One message as mosquitto_sub printed it."""

    retained: bool
    topic: str
    payload: str

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)


class MqttSubscriber:
    """Runs `mosquitto_sub -q 1` on the given topics; `persistent` keeps a session (-c) across reconnects."""

    def __init__(
        self, port: int, topics: Sequence[str], client_id: str | None = None, persistent: bool = False
    ) -> None:
        if MOSQUITTO_SUB is None:
            raise RuntimeError("mosquitto_sub is not installed (Debian package mosquitto-clients)")
        self.port = port
        self.topics = list(topics)
        self.client_id = client_id or f"test-sub-{time.monotonic_ns()}"
        self.persistent = persistent
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> MqttSubscriber:
        """Start mosquitto_sub and wait until it is subscribed (it prints nothing before, so poll the broker)."""
        cmd = [MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-F", "%r\t%t\t%p"]
        cmd += ["-i", self.client_id]
        if self.persistent:
            cmd.append("-c")
        for t in self.topics:
            cmd += ["-t", t]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        time.sleep(0.3)  # mosquitto_sub has no "subscribed" signal; SUBACK on loopback takes a few ms
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = line.rstrip("\n").split("\t", 2)
            if len(parts) != 3:
                continue
            with self._lock:
                self.received.append(Received(parts[0] == "1", parts[1], parts[2]))

    def messages(self, topic: str | None = None) -> list[Received]:
        """Everything received so far (on one topic when given)."""
        with self._lock:
            return [m for m in self.received if topic is None or m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0) -> bool:
        """Poll until predicate(messages) holds; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.messages()):
                return True
            time.sleep(0.05)
        return predicate(self.messages())

    def latest(self, topic: str) -> Received | None:
        """The last message on a topic."""
        msgs = self.messages(topic)
        return msgs[-1] if msgs else None

    def stop(self) -> None:
        """Stop mosquitto_sub."""
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    def __enter__(self) -> MqttSubscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
