"""A real HTTP server on a loopback port that answers every GET from a function: the tests' stand-in for a device,
a trainer or an internal service (no mocks: the client under test speaks real HTTP to it)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Answer = tuple[int, dict[str, str], bytes]


def json_answer(status: int, body: Any) -> Answer:
    """A JSON answer for StubServer."""
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class StubServer:
    """Answers each GET with `answer(path)` = (status, headers, body), on 127.0.0.1:`port` (0: a free one); keeps
    the paths it was asked in `requests`. Serves until stop() or the end of its with block."""

    def __init__(self, answer: Callable[[str], Answer], port: int = 0) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                status, headers, data = answer(self.path)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
