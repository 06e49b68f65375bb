"""An in-process MQTT 3.1.1 broker (amqtt) for the demo, started only when nothing answers at the broker address."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

log = logging.getLogger(__name__)


def broker_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """amqtt running on its own event loop in a daemon thread; `start()` returns once it listens."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        """Start listening; raises RuntimeError when the broker cannot start."""
        self._thread = threading.Thread(target=self._run, name="embedded-mqtt", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"embedded MQTT broker did not start on {self.host}:{self.port} in {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"embedded MQTT broker failed: {self._error}") from self._error
        log.info("embedded MQTT broker listening on %s:%s", self.host, self.port)
        return self

    def _run(self) -> None:
        from amqtt.broker import Broker  # imported here: only the demo needs it

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        cfg = {"listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}}}
        try:
            self._broker = Broker(cfg, loop=loop)
            loop.run_until_complete(self._broker.start())
        except BaseException as err:  # reported to start(); the thread ends
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        """Shut the broker down and end its thread."""
        loop = self._loop
        if loop is None or self._broker is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
        try:
            fut.result(timeout=5)
        except Exception as err:
            log.warning("embedded broker shutdown: %s", err)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
