"""RTSP cameras against a real local RTSP server (GStreamer): parameter sets in the SDP or only in the stream, many
low-fps cameras opening at once, and a camera waiting for another's open not taken for a stalled one."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from edge.cameras import sources
from edge.cameras.capture import CameraCapture
from edge.cameras.sources import CAPTURE_OPTIONS_ENV, StreamSource, open_source
from edge.config.model import CameraConfig
from tests.cameras.helpers import h264_clip, rtsp_describe, rtsp_server, rtsp_server_available

pytestmark = pytest.mark.skipif(
    not rtsp_server_available(),
    reason="GStreamer's RTSP server is not installed (Debian gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good, "
    "gstreamer1.0-plugins-bad, python3-gi; `make test` installs them as root)",
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 fps camera, a key frame every 2 s, long enough for every test (the server plays it once a session)."""
    return h264_clip(tmp_path_factory.mktemp("rtsp") / "cam-2fps.mp4", seconds=60)


@pytest.fixture(autouse=True)
def _product_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CAPTURE_OPTIONS_ENV, raising=False)  # an operator's value would replace the product's


def wait_until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    """Poll until predicate() holds; a deadline for an event, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("variant", ["sdp", "inband"])
def test_rtsp_opens_with_parameter_sets_in_the_sdp_or_only_in_the_stream(clip: Path, variant: str) -> None:
    """The product's FFmpeg options (`RTSP_CAPTURE_OPTIONS`: TCP, no probing beyond the SDP and the first packet)
    decode both kinds of camera at their real size; the options apply to that open only."""
    with rtsp_server(clip, variant) as url:
        sdp = rtsp_describe(url)
        assert "H264/90000" in sdp
        sets = re.search(r"sprop-parameter-sets=([^;\s]*)", sdp)
        if variant == "sdp":
            assert sets is not None and sets.group(1), sdp  # SPS/PPS announced up front
        else:
            assert sets is None or not sets.group(1), sdp  # nothing up front: the decoder learns them in-band
        src = open_source(url)
        assert isinstance(src, StreamSource)
        src.open()
        try:
            assert CAPTURE_OPTIONS_ENV not in os.environ  # set for the open only
            frames = [src.read() for _ in range(3)]
        finally:
            src.close()
    assert [f.shape for f in frames] == [(240, 320, 3)] * 3
    assert len({f.tobytes() for f in frames}) > 1  # moving pictures, not one frame repeated


def test_many_low_fps_rtsp_cameras_come_online_together_without_stalls(clip: Path) -> None:
    """Six 2 fps cameras started at once. OpenCV opens FFmpeg captures one at a time; with FFmpeg's default
    probing each open read ~5.5 s of a 2 fps stream (~8 frames decoded to estimate frame rate and delay), so
    cameras 3-6 hit the 10 s stall limit and convoyed (a wait for the turn no longer counts as a stall, but they
    still came up one per 5.5 s: 34 s for six here). Unprobed opens take ~0.5 s: all online within a 20 s
    deadline, none stalled."""
    with rtsp_server(clip) as url:
        caps = [CameraCapture(CameraConfig.model_validate({"id": f"cam{i}", "source": url})) for i in range(6)]
        for cap in caps:
            cap.start()
        try:
            assert wait_until(lambda: all(c.status().online for c in caps), timeout=20), [
                c.status().as_dict() for c in caps
            ]
            statuses = [c.status() for c in caps]
        finally:
            for cap in caps:
                cap.stop()
    assert [(s.last_error, s.reconnects) for s in statuses] == [(None, 0)] * 6
    assert all((s.width, s.height) == (320, 240) for s in statuses)


def test_waiting_for_another_cameras_open_is_not_a_stall(clip: Path) -> None:
    """While another camera's FFmpeg open holds the turn for longer than the stall limit, a camera waiting for its
    own open is not declared stalled (and not restarted behind itself); it opens once the turn is free."""
    with rtsp_server(clip) as url:
        cap = CameraCapture(CameraConfig.model_validate({"id": "queued", "source": url}), stall_seconds=2.0)
        turn = sources._ffmpeg_turn
        turn.acquire()  # another camera's open, taking 4 s
        released = False
        try:
            cap.start()
            assert wait_until(lambda: isinstance(cap._source, StreamSource) and cap._source.open_turn[0], 10)
            time.sleep(4.0)  # twice the stall limit
            waiting = cap.status()
            turn.release()
            released = True
            assert wait_until(lambda: cap.status().online, timeout=20), cap.status().as_dict()
            online = cap.status()
        finally:
            if not released:
                turn.release()
            cap.stop()
    assert waiting.state == "starting" and waiting.last_error is None and waiting.reconnects == 0
    assert online.last_error is None and online.reconnects == 0
