"""`shelfwatch bench` end to end on a small generated video (the numbers themselves are measured, not tested)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from tests.helpers.broker import MOSQUITTO
from tests.helpers.tiny_bundle import TinyBundle


def make_video(path: Path, frames: int = 30, size: tuple[int, int] = (320, 240)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, size)
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 200, dtype=np.uint8)
        image[:, : (i * 7) % size[0]] = 0
        writer.write(image)
    writer.release()
    return path


@pytest.mark.slow
def test_bench_json(tmp_path: Path, det_bundle: TinyBundle, capsys: pytest.CaptureFixture[str]) -> None:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    video = make_video(tmp_path / "v.mp4")
    rc = main(["bench", "--bundle", str(det_bundle.bundle_dir), "--source", str(video), "--seconds", "0.5", "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["source"] == {"path": str(video), "width": 320, "height": 240}
    assert set(result["engines"]) == {"onnxruntime"}  # the test bundle ships no OpenVINO IR
    assert result["decode_fps"] > 0 and result["engine_fps"] > 0 and result["pipeline_frames"] > 0
    assert result["frames_skipped"] == 0  # every frame evaluated
    assert result["published"] >= result["pipeline_frames"]
    assert 0 < result["latency_p50_ms"] <= result["latency_p95_ms"]
    assert result["efficiency"] == pytest.approx(result["pipeline_fps"] / result["serial_fps"], rel=0.02)


def test_bench_refuses_a_missing_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "--bundle", str(tmp_path), "--source", str(tmp_path / "none.mp4"), "--json"])
    assert rc == 1
    assert "not a bundle directory" in capsys.readouterr().err
