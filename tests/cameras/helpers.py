"""Small real inputs for camera tests: images, videos and an MJPEG-over-HTTP server, all written by the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np


def solid(value: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A grey BGR image of one value (survives JPEG and MPEG-4 within a few levels)."""
    return np.full((height, width, 3), value, dtype=np.uint8)


def write_image(path: Path, value: int) -> Path:
    """Write a solid image in the format of the path's suffix."""
    assert cv2.imwrite(str(path), solid(value))
    return path


def write_video(path: Path, values: list[int], fps: float = 10.0, fourcc: str = "mp4v") -> Path:
    """A small video whose frame i is solid grey values[i]."""
    code = cv2.VideoWriter_fourcc(*fourcc)  # type: ignore[attr-defined]
    writer = cv2.VideoWriter(str(path), code, fps, (64, 48))
    assert writer.isOpened(), f"cv2 cannot write {fourcc}"
    for v in values:
        writer.write(solid(v))
    writer.release()
    assert path.stat().st_size > 0
    return path


def mean_value(image: np.ndarray) -> float:
    return float(image.mean())


@contextmanager
def mjpeg_server(frame_values: list[int]) -> Iterator[str]:
    """A real HTTP server streaming multipart/x-mixed-replace JPEGs (like IP cameras do); yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                for v in frame_values:
                    _ok, buf = cv2.imencode(".jpg", solid(v))
                    head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(buf)
                    self.wfile.write(head + buf.tobytes() + b"\r\n")
                    time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    finally:
        server.shutdown()
        server.server_close()
