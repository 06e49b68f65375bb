"""Small real inputs for camera tests: images, videos, an MJPEG-over-HTTP and an RTSP server, all made here."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

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


# GStreamer's RTSP server (Debian gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good/-bad, python3-gi), run by
# the system python3: one session per client, each playing an H.264 mp4 once in real time. `sdp`: the parameter
# sets (SPS/PPS) announced in the SDP, as most cameras do; `inband`: an SDP without them, SPS/PPS only in the
# stream before every key frame, as some cameras send it.
_RTSP_SERVER = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer

Gst.init(None)
port, clip, variant = sys.argv[1], sys.argv[2], sys.argv[3]


class Factory(GstRtspServer.RTSPMediaFactory):
    def do_create_element(self, url):
        top = Gst.Bin.new("top")
        src = Gst.ElementFactory.make("filesrc")
        src.set_property("location", clip)
        demux = Gst.ElementFactory.make("qtdemux")
        parse = Gst.ElementFactory.make("h264parse")
        caps = Gst.ElementFactory.make("capsfilter")
        pay = Gst.ElementFactory.make("rtph264pay")
        pay.set_property("pt", 96)
        pay0 = Gst.Bin.new("pay0")  # the media's stream 0: the payloader (and for inband, what blanks the SDP's sets)
        pay0.add(pay)
        last = pay
        if variant == "inband":
            parse.set_property("config-interval", -1)  # SPS/PPS in the stream before every IDR frame
            caps.set_property("caps", Gst.Caps.from_string("video/x-h264,stream-format=byte-stream,alignment=au"))
            pay.set_property("config-interval", -1)
            blank = Gst.ElementFactory.make("capssetter")
            blank.set_property("caps", Gst.Caps.from_string('application/x-rtp,sprop-parameter-sets=(string)""'))
            pay0.add(blank)
            pay.link(blank)
            last = blank
        else:
            caps.set_property("caps", Gst.Caps.from_string("video/x-h264"))
            pay.set_property("config-interval", 1)
        pay0.add_pad(Gst.GhostPad.new("sink", pay.get_static_pad("sink")))
        pay0.add_pad(Gst.GhostPad.new("src", last.get_static_pad("src")))
        for element in (src, demux, parse, caps, pay0):
            top.add(element)
        src.link(demux)
        demux.connect("pad-added", lambda _d, pad: pad.link(parse.get_static_pad("sink")))
        parse.link(caps)
        caps.link(pay0)
        return top


server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
server.get_mount_points().add_factory("/cam", Factory())
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""
SYSTEM_PYTHON = "/usr/bin/python3"


def rtsp_server_available() -> bool:
    """Whether the system python3 has GStreamer's RTSP server (the Makefile's system-deps install it)."""
    probe = [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"]
    return Path(SYSTEM_PYTHON).exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0


def h264_clip(path: Path, seconds: float, fps: float = 2.0, size: str = "320x240", gop_seconds: float = 2.0) -> Path:
    """An H.264 mp4 as an IP camera sends it (main profile, no B-frames, a key frame every `gop_seconds`)."""
    gop = max(1, round(fps * gop_seconds))
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps:g}"]
    cmd += ["-t", f"{seconds:g}", "-c:v", "libx264", "-profile:v", "main", "-pix_fmt", "yuv420p", "-bf", "0"]
    cmd += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


@contextmanager
def rtsp_server(clip: Path, variant: str = "sdp") -> Iterator[str]:
    """A local RTSP server streaming `clip` (variant `sdp` or `inband`, see _RTSP_SERVER); yields its URL."""
    from edge.processes import stop_process
    from tests.helpers.broker import free_port

    port = free_port()
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, "-c", _RTSP_SERVER, str(port), str(clip), variant],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready", "the RTSP server did not start"
        yield f"rtsp://127.0.0.1:{port}/cam"
    finally:
        stop_process(proc)


def rtsp_describe(url: str) -> str:
    """The SDP an RTSP server answers DESCRIBE with."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 554), timeout=10) as conn:
        conn.sendall(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        head, _, body = data.partition(b"\r\n\r\n")
        lengths = [
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ]
        length = lengths[0] if lengths else 0
        while len(body) < length:
            body += conn.recv(4096)
    return body.decode(errors="replace")
