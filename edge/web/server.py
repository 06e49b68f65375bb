"""Serve a WSGI app with werkzeug's threaded server on a background thread (the device and the tests use it)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

log = logging.getLogger(__name__)


class WebServer:
    """The studio's HTTP server: start() returns once it listens; port 0 picks a free port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (known after start())."""
        if self._server is None:
            raise RuntimeError("the web server is not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8080."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104 - only to build a URL
        return f"http://{host}:{self.port}"

    def start(self) -> WebServer:
        """Bind and serve on a daemon thread."""
        if self._server is not None:
            return self
        self._server = make_server(self.host, self._requested_port, self.app, threaded=True)
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="web-server", daemon=True)
        self._thread.start()
        log.info("web studio listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving: end open streams, stop accepting, close the socket."""
        stopping = getattr(self.app, "extensions", {}).get("shelfwatch.stopping")
        if stopping is not None:
            stopping.set()
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
