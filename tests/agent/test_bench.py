"""`shelfwatch bench` end to end on a small generated video (the numbers themselves are measured, not tested)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.commands.bench_cmd import SCHEDULE_GAIN, DecodeGate, pick_schedule
from tests.helpers.broker import MOSQUITTO
from tests.helpers.tiny_bundle import TinyBundle

needs_mosquitto_and_ffmpeg = pytest.mark.skipif(
    MOSQUITTO is None or shutil.which("ffmpeg") is None,
    reason="mosquitto or ffmpeg is not installed (make system-deps)",
)


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
    source = result["source"]
    assert (source["path"], source["width"], source["height"], source["codec"]) == (str(video), 320, 240, "FMP4")
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


@pytest.mark.slow
@needs_mosquitto_and_ffmpeg
def test_bench_paced_reports_what_the_device_costs(
    tmp_path: Path, det_bundle: TinyBundle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two cameras x 4 zones at 4 fps on an H.264 clip ffmpeg encodes at that rate: CPU, RSS, evaluated fps."""
    video = make_video(tmp_path / "v.mp4", frames=40)
    args = ["bench", "--bundle", str(det_bundle.bundle_dir), "--source", str(video), "--paced", "--cameras", "2"]
    rc = main([*args, "--fps", "4", "--seconds", "2", "--resolution", "720p", "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mode"] == "paced" and result["cameras"] == 2 and result["zones_per_camera"] == 4
    assert result["source"]["codec"] == "h264"
    assert (result["source"]["width"], result["source"]["height"], result["source"]["fps"]) == (1280, 720, 4.0)
    assert result["cpu_cores"] > 0 and result["rss_mb"] > 50
    assert result["frames_evaluated"] > 0 and result["evaluated_fps"] > 0
    assert result["errors"] == 0
    assert set(result["meets"]) == {"cpu_cores", "rss_mb", "nothing_skipped"}


def three_h264_cameras(tmp_path: Path, det_bundle: TinyBundle, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    """One second of `shelfwatch bench` with three cameras on an H.264 clip of the tiny detector; its JSON."""
    video = make_video(tmp_path / "v.mp4")
    args = ["bench", "--bundle", str(det_bundle.bundle_dir), "--source", str(video), "--cameras", "3", "--h264"]
    assert main([*args, "--seconds", "1", *extra, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
@needs_mosquitto_and_ffmpeg
def test_bench_unpaced_h264_cameras_share_engine_calls(
    tmp_path: Path, det_bundle: TinyBundle, capsys: pytest.CaptureFixture[str]
) -> None:
    result = three_h264_cameras(tmp_path, det_bundle, capsys)
    assert result["source"]["codec"] == "h264" and result["source"]["width"] == 320
    # several cameras: auto decodes just in time, nothing tried
    assert result["decode_gate"]["schedule"] == "just-in-time" and result["decode_gate"]["tried_fps"] is None
    assert result["batched_engine"]["batch"] == 3
    assert result["frames_skipped"] == 0 and result["pipeline_frames"] > 0
    assert len(result["pipeline_fps_per_camera"]) == 3 and all(f > 0 for f in result["pipeline_fps_per_camera"])
    assert result["engine_calls"] > 0 and result["requests_per_call"] >= 1.0
    lanes = result["lanes_engine"]  # the engine's one-thread lanes side by side, alone (on 2+ cores)
    if os.cpu_count() == 1:
        assert lanes is None and result["lane_calls"] == 0
    else:
        assert lanes is not None and lanes["lanes"] >= 2 and lanes["fps"] > 0
        assert result["lane_calls"] > 0  # three cameras' requests ran on the lanes
    refs = [result["engine_fps"], result["batched_engine"]["fps"], (lanes or {}).get("fps", 0.0)]
    assert result["reference_fps"] == pytest.approx(max(refs), abs=0.01)  # the efficiency's strictest reference
    assert result["efficiency"] == pytest.approx(result["pipeline_fps"] / result["serial_fps"], abs=0.002)


@pytest.mark.slow
@needs_mosquitto_and_ffmpeg
def test_bench_merge_off_gives_every_request_its_own_engine_call(
    tmp_path: Path, det_bundle: TinyBundle, capsys: pytest.CaptureFixture[str]
) -> None:
    """--merge off --lanes off: three cameras in step, yet one request per engine call, one call at a time (to
    compare with merging and lanes)."""
    result = three_h264_cameras(tmp_path, det_bundle, capsys, "--merge", "off", "--lanes", "off")
    assert result["merge"] == "off" and result["merge_policy"] is None
    assert result["lanes"] == "off" and result["lanes_engine"] is None and result["lane_calls"] == 0
    assert result["engine_calls"] > 0 and result["requests_per_call"] == 1.0
    assert result["frames_skipped"] == 0 and all(f > 0 for f in result["pipeline_fps_per_camera"])


def test_decode_gate_decodes_just_in_time() -> None:
    """The unpaced bench's capture decodes frame n+1 only once the pipeline took frame n, and only about one decode
    time before that evaluation is expected to end; the pipeline asking for its next frame starts it at once."""
    gate = DecodeGate(margin_s=0.0)
    assert gate.acquire(timeout=1.0)  # the first frame at once
    assert not gate.acquire(timeout=0.05)  # nothing taken yet: the next decode waits
    gate.decoded(0.05)
    gate.taken(time.monotonic())
    gate.ready(time.monotonic() + 0.5)  # an evaluation of 0.5 s measured
    assert gate.eval_s == pytest.approx(0.5, abs=0.05) and gate.lead_s() == pytest.approx(0.45, abs=0.05)
    assert gate.acquire(timeout=1.0)  # the pipeline is ready: at once
    gate.taken(time.monotonic())
    assert not gate.acquire(timeout=0.1)  # 0.45 s of the next evaluation are left: not yet
    gate.ready(time.monotonic())  # the pipeline came back early
    assert gate.acquire(timeout=1.0)
    gate.interrupt()
    assert gate.acquire(timeout=1.0)  # a stopping camera is never held


def test_decode_gate_at_take_decodes_as_soon_as_a_frame_is_taken() -> None:
    """at-take: the decode of frame n+1 starts when the pipeline took frame n, whatever the evaluation lasts; the
    next one still waits for the next take (one frame ahead, never more)."""
    gate = DecodeGate(margin_s=0.0, schedule="at-take")
    assert gate.acquire(timeout=1.0)
    gate.decoded(0.05)
    gate.taken(time.monotonic())
    gate.ready(time.monotonic() + 0.5)  # a 0.5 s evaluation: just-in-time would wait 0.45 s after a take
    assert gate.lead_s() == 0.0
    assert gate.acquire(timeout=1.0)
    gate.taken(time.monotonic())
    assert gate.acquire(timeout=0.05)  # at once after the take
    assert not gate.acquire(timeout=0.05)  # but not a second frame before the next take
    gate.schedule = "just-in-time"
    assert gate.lead_s() == pytest.approx(0.45, abs=0.05)  # the estimates kept while at-take ran
    with pytest.raises(ValueError, match="decode schedule"):
        DecodeGate(schedule="eventually")


def test_pick_schedule_keeps_at_take_only_when_clearly_faster() -> None:
    """auto: at-take's median frames/s must beat just-in-time's by SCHEDULE_GAIN (a tie keeps just-in-time, the
    lower latency) and its frames' p95 latency must stay within the latency bar."""
    assert SCHEDULE_GAIN == pytest.approx(0.05)
    assert pick_schedule({"just-in-time": [200, 210, 190], "at-take": [240, 250, 180]}) == "at-take"  # 240 >= 210
    assert pick_schedule({"just-in-time": [200, 210, 190], "at-take": [209, 205, 300]}) == "just-in-time"  # < 210
    assert pick_schedule({"just-in-time": [100.0], "at-take": [104.0]}) == "just-in-time"
    assert pick_schedule({"just-in-time": [100.0], "at-take": [105.5]}) == "at-take"
    assert pick_schedule({"just-in-time": [100.0], "at-take": []}) == "just-in-time"
    # faster, but its frames' p95 latency is past the bar: just-in-time; within it: at-take
    assert pick_schedule({"just-in-time": [100.0], "at-take": [150.0]}, 20.5, 20.0) == "just-in-time"
    assert pick_schedule({"just-in-time": [100.0], "at-take": [150.0]}, 19.5, 20.0) == "at-take"


@pytest.mark.slow
@needs_mosquitto_and_ffmpeg
def test_bench_unpaced_one_camera_reports_the_decode_gate(
    tmp_path: Path, det_bundle: TinyBundle, capsys: pytest.CaptureFixture[str]
) -> None:
    video = make_video(tmp_path / "v.mp4")
    args = ["bench", "--bundle", str(det_bundle.bundle_dir), "--source", str(video), "--h264", "--seconds", "1"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gate = result["decode_gate"]
    assert gate["eval_ms"] > 0 and gate["decode_ms"] > 0
    # auto: both schedules ran after the warm-up; kept: what pick_schedule takes of their medians, at-take only
    # within the latency bar
    tried = gate["tried_fps"]
    assert set(tried) == {"just-in-time", "at-take"} and all(fps > 0 for fps in tried.values())
    assert gate["latency_limit_ms"] > 10.0  # one camera: the engine's p95 + 10 ms, probed before the trial
    medians = {name: [fps] for name, fps in tried.items()}
    assert gate["schedule"] == pick_schedule(medians, gate["tried_latency_p95_ms"]["at-take"], gate["latency_limit_ms"])
    expected_lead = 0.0 if gate["schedule"] == "at-take" else max(0.0, gate["eval_ms"] - gate["decode_ms"] - 1.0)
    assert gate["lead_ms"] == pytest.approx(expected_lead, abs=0.05)
    assert result["frames_skipped"] == 0 and result["pipeline_frames"] > 0
    policy = result["merge_policy"]
    assert policy is not None and policy["merged_calls"] == 0 and policy["single_calls"] > 0  # one camera: alone
