"""What keeps many cameras inside the memory budget: the allocator set up for frames, one decoder thread a camera.

Each check runs in a fresh interpreter: the allocator is set once per process, and thread counts of the test
process itself would include other tests' leftovers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=clean | env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_camera_sets_the_allocator_once_and_the_environment_wins() -> None:
    code = """
import json
from edge.cameras.capture import CameraCapture
from edge.cameras.memory import tune_allocator
from edge.config.model import CameraConfig
CameraCapture(CameraConfig(id="c", source="synthetic:"))
print(json.dumps(tune_allocator()))
"""
    assert _python(code) == {"MALLOC_MMAP_THRESHOLD_": 131072, "MALLOC_ARENA_MAX": 2}
    assert _python(code, MALLOC_ARENA_MAX="4") == {"MALLOC_MMAP_THRESHOLD_": 131072}


def test_frames_freed_on_camera_threads_go_back_to_the_system() -> None:
    # 8 "cameras" each decode 40 720p frames and cut 4 float crops from each, keeping only the newest frame, as
    # the capture and the pipeline do; once they are gone the process holds (nearly) nothing of them.
    code = """
import json, threading
import numpy as np
from edge.cameras.memory import tune_allocator
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
tune_allocator()
before = rss()
def camera():
    latest = None
    for i in range(40):
        frame = np.full((720, 1280, 3), i, np.uint8)
        crops = [frame[:, k * 320:(k + 1) * 320].astype(np.float32) for k in range(4)]
        latest = frame
    del latest, crops
threads = [threading.Thread(target=camera) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"held_mb": rss() - before}))
"""
    assert _python(code)["held_mb"] < 20.0


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the Debian ffmpeg to write an H.264 clip")
def test_a_video_camera_decodes_on_one_thread(tmp_path: Path) -> None:
    clip = tmp_path / "cam.mp4"
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=10"]
    subprocess.run([*cmd, "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=120)
    code = f"""
import json, os
from pathlib import Path
from edge.cameras.sources import VideoFileSource
threads = lambda: len(os.listdir("/proc/self/task"))
before = threads()
sources = [VideoFileSource(Path({str(clip)!r}), realtime=False) for _ in range(4)]
for s in sources:
    s.open()
    for _ in range(5):
        s.read()
print(json.dumps({{"added": threads() - before, "shape": list(sources[0].read().shape)}}))
"""
    got = _python(code)
    assert got["shape"] == [720, 1280, 3]
    assert got["added"] == 0  # FFmpeg's default would add 3 frame threads per camera on this 2-core machine
