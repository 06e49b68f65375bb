"""A real Mosquitto broker on a free loopback port, for tests (Debian package `mosquitto`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from edge.processes import stop_process

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class Broker:
    """Start/stop/restart a mosquitto process; `extra_conf` lines are appended to its config."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        if MOSQUITTO is None:
            raise RuntimeError("mosquitto is not installed (Debian package 'mosquitto'; `make test` installs it)")
        self.workdir = workdir
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"

    def start(self) -> Broker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = f"listener {self.port} 127.0.0.1\n"
        if "allow_anonymous" not in self.extra_conf:
            conf += "allow_anonymous true\n"
        conf += f"persistence false\n{self.extra_conf}\n"
        self.conf.write_text(conf)
        logf = self.log.open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=logf, stderr=logf)
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log.read_text(errors='replace')[-2000:]}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def persistent_broker(workdir: Path, port: int | None = None) -> Broker:
    """A broker that keeps sessions (and the QoS 1 messages queued for them) across its own restart.

    A subscriber that must see every message while the broker is stopped and started needs this and a persistent
    session (`MqttSubscriber(persistent=True)`): without them a message the broker acknowledged in its last
    milliseconds, or sent while the subscriber was reconnecting, never reaches the subscriber.
    """
    store = workdir / "persist"
    store.mkdir(parents=True)
    # `user root`: started as root, mosquitto would otherwise switch to its own user, which cannot write into the
    # test's private temporary directory (no effect when the tests do not run as root).
    conf = f"user root\npersistence true\npersistence_location {store}/\nautosave_interval 1\n"
    return Broker(workdir, port=port, extra_conf=conf)
