"""WebServer: a real threaded HTTP server on a free loopback port; stop() ends open MJPEG streams."""

from __future__ import annotations

import http.client
import json
import time

from edge.web import WebServer
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, CAMERA_ID, Studio


def test_server_serves_streams_and_stops_with_a_stream_open(studio: Studio) -> None:
    studio.services.users.create(ADMIN, ADMIN_PASSWORD, is_admin=True)  # type: ignore[union-attr]
    server = WebServer(studio.app, host="127.0.0.1", port=0).start()
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    conn.request(
        "POST",
        "/api/v1/auth/token",
        body=json.dumps({"username": ADMIN, "password": ADMIN_PASSWORD}),
        headers={"Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    assert resp.status == 201
    token = json.loads(resp.read())["token"]

    stream = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    stream.request("GET", f"/api/v1/cameras/{CAMERA_ID}/stream.mjpg", headers={"Authorization": f"Bearer {token}"})
    answer = stream.getresponse()
    assert answer.status == 200 and answer.getheader("Content-Type", "").startswith("multipart/x-mixed-replace")
    assert answer.readline().startswith(b"--shelfwatchframe")

    port = server.port
    server.stop()
    # The stream ends (the server closed it) instead of hanging on, and the port no longer answers.
    rest = answer.read()
    assert rest.count(b"--shelfwatchframe") < 1000
    refused = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        refused.request("GET", "/login")
        refused.getresponse()
        answered = True
    except OSError:
        answered = False
    assert not answered


def test_half_open_connections_take_no_threads_and_idle_ones_are_closed(studio: Studio) -> None:
    """80 clients that never finish their headers: no thread each (werkzeug's server started 80), a real request
    is still answered, and the server closes connections idle past channel_timeout (werkzeug kept them forever)."""
    import socket
    import threading

    server = WebServer(studio.app, host="127.0.0.1", port=0, channel_timeout=2, cleanup_interval=1).start()
    threads_before = threading.active_count()
    stalled = []
    try:
        for _ in range(80):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
            sock.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never ends the headers
            stalled.append(sock)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        conn.request("GET", "/login")
        assert conn.getresponse().status in (200, 302)
        assert threading.active_count() - threads_before < 20
        # Every stalled connection is closed by the server: recv sees the end of the stream.
        for sock in stalled:
            assert sock.recv(1024) == b""
    finally:
        for sock in stalled:
            sock.close()
        server.stop()


def test_live_streams_are_capped_so_the_worker_pool_keeps_answering(studio: Studio) -> None:
    """Every open MJPEG stream holds a worker thread: past MAX_STREAMS the next is 503 and pages still answer."""
    from edge.web.cameras import MAX_STREAMS

    users = studio.services.users
    assert users is not None
    token, _ = users.issue_token(users.create_first_admin(ADMIN, ADMIN_PASSWORD).id)
    auth = {"Authorization": f"Bearer {token}"}
    server = WebServer(studio.app, host="127.0.0.1", port=0).start()
    streams = []
    try:
        for _ in range(MAX_STREAMS):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
            conn.request("GET", f"/api/v1/cameras/{CAMERA_ID}/stream.mjpg", headers=auth)
            answer = conn.getresponse()
            assert answer.status == 200 and answer.readline().startswith(b"--shelfwatchframe")
            streams.append((conn, answer))
        extra = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        extra.request("GET", f"/api/v1/cameras/{CAMERA_ID}/stream.mjpg", headers=auth)
        refused = extra.getresponse()
        assert refused.status == 503 and "live streams" in json.loads(refused.read())["error"]
        page = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        page.request("GET", "/api/v1/status", headers=auth)
        assert page.getresponse().status == 200
        # A viewer who leaves frees the slot for the next one.
        conn, answer = streams.pop()
        answer.close()  # the response holds the socket open until it is closed too
        conn.close()
        for _ in range(100):
            again = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
            again.request("GET", f"/api/v1/cameras/{CAMERA_ID}/stream.mjpg", headers=auth)
            resp = again.getresponse()
            if resp.status == 200:
                break
            resp.read()
            again.close()
            time.sleep(0.2)
        assert resp.status == 200
        streams.append((again, resp))
    finally:
        for conn, answer in streams:
            answer.close()
            conn.close()
        server.stop()
