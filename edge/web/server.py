"""Serve a WSGI app with waitress, a production WSGI server, on a background thread (device, trainer and tests).

Waitress reads requests on one event loop and hands only complete requests to a fixed pool of `threads`, so
half-open or slow connections cost a socket, not a thread. A connection idle for `channel_timeout` seconds (no
request being served) is closed, at most `connection_limit` connections are open at once (further ones wait in the
listen backlog), and headers are held to `max_request_header_size`. An open MJPEG stream occupies one worker
thread for its lifetime, hence more threads than waitress's default of 4.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

log = logging.getLogger(__name__)

THREADS = 16
CONNECTION_LIMIT = 100
CHANNEL_TIMEOUT_S = 30
CLEANUP_INTERVAL_S = 5
MAX_HEADER_BYTES = 64 * 1024
_LOOP_TIMEOUT_S = 0.5
STOP_GRACE_S = 3.0


class WebServer:
    """The studio's HTTP server: start() returns once it listens; port 0 picks a free port.

    `threads`, `connection_limit`, `channel_timeout` and `cleanup_interval` are waitress's settings of the same name
    (tests shorten the timeout to see it act).
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        threads: int = THREADS,
        connection_limit: int = CONNECTION_LIMIT,
        channel_timeout: int = CHANNEL_TIMEOUT_S,
        cleanup_interval: int = CLEANUP_INTERVAL_S,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._settings = {
            "threads": threads,
            "connection_limit": connection_limit,
            "channel_timeout": channel_timeout,
            "cleanup_interval": cleanup_interval,
            "max_request_header_size": MAX_HEADER_BYTES,
            # The app enforces its own upload limit (MAX_CONTENT_LENGTH) with a clear 413; this is the outer bound.
            "max_request_body_size": 4 * 1024**3,
            "ident": "shelfwatch",
            "asyncore_use_poll": True,  # poll() has no FD_SETSIZE limit, unlike select()
        }
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        """The port it listens on (known after start())."""
        if self._server is None:
            raise RuntimeError("the web server is not started")
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8080."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104 - only to build a URL
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> WebServer:
        """Bind and serve on a daemon thread."""
        if self._server is not None:
            return self
        server = create_server(self.app, host=self.host, port=self._requested_port, **self._settings)
        if isinstance(server, MultiSocketServer):  # a host name that resolves to several addresses
            raise RuntimeError(f"web host {self.host!r} resolves to several addresses; give one address")
        self._server = server
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="web-server", daemon=True)
        self._thread.start()
        log.info("web studio listening on %s", self.url)
        return self

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        socket_map = server._map
        try:
            while not self._stop.is_set() and socket_map:
                wasyncore.loop(timeout=_LOOP_TIMEOUT_S, map=socket_map, use_poll=True, count=1)
        finally:
            # The loop thread owns the map. Stop accepting, let requests in progress (streams see `stopping` and
            # end) finish and flush for a grace period, then close every connection and stop the workers.
            server.accepting = False
            server.del_channel()
            server.socket.close()
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline and any(getattr(c, "requests", None) for c in socket_map.values()):
                wasyncore.loop(timeout=0.05, map=socket_map, use_poll=True, count=1)
            for channel in list(socket_map.values()):
                try:
                    channel.close()
                except OSError as err:  # an already broken connection
                    log.debug("closing %s: %s", channel, err)
            server.task_dispatcher.shutdown(timeout=5)

    def stop(self) -> None:
        """Stop serving: end open streams, stop accepting, close the socket and every connection."""
        stopping = getattr(self.app, "extensions", {}).get("shelfwatch.stopping")
        if stopping is not None:
            stopping.set()
        if self._server is None:
            return
        self._stop.set()
        try:
            self._server.pull_trigger()  # wake the loop from its poll
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
