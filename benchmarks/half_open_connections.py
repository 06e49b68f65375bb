"""Threads a web server spends on clients that never finish their headers: werkzeug's threaded development server
(what the device used) against edge.web.server.WebServer (waitress).

    .venv/bin/python benchmarks/half_open_connections.py [--connections 1000]

Opens the connections against a one-route Flask app on loopback, waits a second, prints the threads the process
gained and whether a real request is still answered (waitress keeps at most 100 connections open: the rest wait in
the listen backlog, so a real request waits too until idle ones time out).
"""

from __future__ import annotations

import argparse
import http.client
import logging
import resource
import socket
import threading
import time
from typing import Any

from flask import Flask

from edge.web.server import WebServer


def _app() -> Flask:
    app = Flask("half-open")
    app.add_url_rule("/", "index", lambda: "ok")
    return app


def _measure(kind: str, connections: int) -> tuple[int, str]:
    app = _app()
    stop: Any
    if kind == "werkzeug":
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", 0, app, threaded=True)
        port = server.server_port
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stop = server.shutdown
    else:
        web = WebServer(app, connection_limit=connections + 10).start()  # room for all, to count threads only
        port, stop = web.port, web.stop
    before = threading.active_count()
    socks = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(sock)
    time.sleep(1.0)
    gained = threading.active_count() - before
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        answer = str(conn.getresponse().status)
    except OSError as err:
        answer = f"no answer ({err})"
    for sock in socks:
        sock.close()
    stop()
    return gained, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4 * args.connections + 256,) * 2)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # it logs each stalled request once it is closed
    logging.getLogger("waitress").setLevel(logging.ERROR)
    for kind in ("waitress", "werkzeug"):  # waitress first: werkzeug's threads take a while to end
        gained, answer = _measure(kind, args.connections)
        print(f"{kind:9s} {args.connections} half-open connections: +{gained} threads, a real request -> {answer}")


if __name__ == "__main__":
    main()
