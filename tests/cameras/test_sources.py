"""Frame sources against real files, folders, an MJPEG HTTP server and the shared sample videos."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest

from edge.cameras.sources import (
    ImageFolderSource,
    StreamSource,
    V4L2Source,
    VideoFileSource,
    open_source,
    redact_url,
)
from edge.cameras.synthetic import SyntheticShelfSource
from edge.errors import CameraError, ConfigError
from tests.cameras.helpers import mean_value, mjpeg_server, write_image, write_video
from tests.helpers.broker import free_port


def read_values(source, n: int) -> list[int]:
    return [round(mean_value(source.read())) for _ in range(n)]


def test_folder_cycles_in_sorted_order_and_skips_corrupt_files(tmp_path: Path, caplog) -> None:
    write_image(tmp_path / "b.png", 100)
    write_image(tmp_path / "a.png", 50)
    write_image(tmp_path / "c.bmp", 150)
    (tmp_path / "b2.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    src = open_source(str(tmp_path), realtime=False)
    assert isinstance(src, ImageFolderSource)
    with caplog.at_level(logging.WARNING, logger="edge.cameras.sources"):
        src.open()
        values = read_values(src, 7)
    src.close()
    assert values == [50, 100, 150, 50, 100, 150, 50]
    warnings = [r for r in caplog.records if "b2.jpg" in r.getMessage()]
    assert len(warnings) == 1, "a corrupt file is reported once, not on every cycle"
    assert src.cycles == 2


def test_folder_picks_up_images_added_while_running(tmp_path: Path) -> None:
    write_image(tmp_path / "1.png", 10)
    src = open_source(str(tmp_path), realtime=False)
    src.open()
    assert read_values(src, 1) == [10]
    write_image(tmp_path / "2.png", 200)
    assert read_values(src, 3) == [10, 200, 10]


def test_folder_frames_are_paced_at_rate(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 80)
    src = open_source(str(tmp_path), rate=40.0)
    assert isinstance(src, ImageFolderSource) and src.rate == 40.0 and src.realtime
    src.open()
    assert read_values(src, 3) == [80, 80, 80]  # a single image repeats


def test_single_image_file_is_a_source(tmp_path: Path) -> None:
    path = write_image(tmp_path / "one.png", 77)
    src = open_source(str(path), realtime=False)
    src.open()
    assert read_values(src, 2) == [77, 77]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such file"),
        (lambda p: p / "missing.mp4", "no such file"),
    ],
)
def test_missing_file_or_folder_is_a_clear_error(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(CameraError, match=message):
        open_source(str(make(tmp_path)))


def test_empty_folder_and_folder_without_decodable_images_fail_at_open(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CameraError, match="no images"):
        open_source(str(empty)).open()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"garbage")
    (broken / "b.png").write_bytes(b"")
    with pytest.raises(CameraError, match="none of the 2 images could be decoded"):
        open_source(str(broken)).open()
    assert sorted(p.name for p in broken.iterdir()) == ["a.jpg", "b.png"], "nothing is touched on error"


def test_video_file_decodes_and_loops(tmp_path: Path) -> None:
    values = [20, 60, 100, 140, 180]
    path = write_video(tmp_path / "clip.mp4", values, fps=10.0)
    src = open_source(str(path), realtime=False)
    assert isinstance(src, VideoFileSource)
    src.open()
    assert src.fps == pytest.approx(10.0)
    got = read_values(src, 12)
    src.close()
    expected = values + values + values[:2]
    assert np.allclose(got, expected, atol=6), got
    assert src.loops == 2


def test_a_video_decodes_into_freed_frames_and_never_into_held_ones(tmp_path: Path) -> None:
    """Frames nobody holds any more are decoded into again (no fresh frame-sized allocation per frame); a frame or
    a crop view somebody still holds is never overwritten, however many frames follow."""
    values = [20, 50, 80, 110, 140, 170, 200, 230]
    path = write_video(tmp_path / "clip.mp4", values, fps=10.0)
    src = VideoFileSource(path, realtime=False)
    src.open()
    held = [src.read() for _ in range(4)]  # four frames kept, as a pipeline, a snapshot and the live view may
    crop = src.read()[8:16, 8:16]  # only a view of the fifth is kept
    seen = []
    for _ in range(20):
        frame = src.read()
        seen.append(round(mean_value(frame)))
        del frame  # the pipeline is done with it
    src.close()
    assert src._pool.reused >= 15  # the dropped frames' buffers, again and again
    assert np.allclose([round(mean_value(f)) for f in held], values[:4], atol=6)
    assert abs(mean_value(crop) - values[4]) <= 6
    expected = [values[(5 + i) % len(values)] for i in range(20)]
    assert np.allclose(seen, expected, atol=6), seen


def test_mjpg_avi_video_is_paced_when_realtime(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.avi", [30, 90], fps=50.0, fourcc="MJPG")
    src = open_source(str(path))
    assert isinstance(src, VideoFileSource) and src.realtime
    src.open()
    got = read_values(src, 4)
    src.close()
    assert np.allclose(got, [30, 90, 30, 90], atol=4)


def test_a_file_that_is_not_a_video_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(CameraError, match="not a video"):
        open_source(str(path)).open()


def test_mjpeg_over_http_stream(tmp_path: Path) -> None:
    with mjpeg_server([10, 60, 110, 160, 210]) as url:
        src = open_source(url)
        assert isinstance(src, StreamSource)
        src.open()
        got = read_values(src, 5)
        with pytest.raises(CameraError, match="stream ended or timed out"):
            src.read()  # the server closed the connection after its five frames
        src.close()
    assert np.allclose(got, [10, 60, 110, 160, 210], atol=4)


def test_unreachable_stream_is_an_error() -> None:
    src = open_source(f"http://127.0.0.1:{free_port()}/video")
    with pytest.raises(CameraError, match="cannot open the stream"):
        src.open()


def test_source_kinds_and_redacted_urls() -> None:
    assert isinstance(open_source(0), V4L2Source)
    assert isinstance(open_source("2"), V4L2Source)
    assert isinstance(open_source("/dev/video7"), V4L2Source)
    rtsp = open_source("rtsp://admin:hunter2@10.0.0.5:554/stream1")
    assert isinstance(rtsp, StreamSource)
    assert "hunter2" not in rtsp.description and "admin:***@10.0.0.5:554" in rtsp.description
    assert redact_url("http://cam.local/mjpg") == "http://cam.local/mjpg"
    synth = open_source("synthetic:?width=160&height=120&seed=3&period=5")
    assert isinstance(synth, SyntheticShelfSource)
    assert (synth.shelf.width, synth.shelf.height, synth.shelf.seed) == (160, 120, 3)
    with pytest.raises(CameraError, match="unsupported camera URL"):
        open_source("ftp://example.com/a.mp4")
    with pytest.raises(CameraError, match="unknown option 'colour'"):
        open_source("synthetic:?colour=red")
    with pytest.raises(CameraError, match="not a valid int"):
        open_source("synthetic:?width=wide")
    with pytest.raises(CameraError, match="empty"):
        open_source("  ")


def test_missing_v4l2_device_is_an_error() -> None:
    with pytest.raises(CameraError, match="no such video device"):
        open_source("/dev/video97").open()
    src = open_source(97)
    with pytest.raises(CameraError, match="cannot open the V4L2 device"):
        src.open()


def test_read_before_open_is_an_error(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", [50, 60])
    with pytest.raises(CameraError, match="read before open"):
        VideoFileSource(path).read()


@pytest.mark.parametrize("name", ["bottle-detection.mp4", "car-detection.mp4"])
def test_shared_sample_videos_decode(shared_dir: Path, name: str) -> None:
    path = shared_dir / "datasets" / "videos" / name
    src = open_source(str(path), realtime=False)
    assert isinstance(src, VideoFileSource)
    src.open()
    frames = [src.read() for _ in range(30)]
    src.close()
    assert 12 <= src.fps <= 31  # bottle: 30 fps, car: 377 frames in 30.2 s
    h, w = frames[0].shape[:2]
    assert (w, h) in {(640, 360), (768, 432)}
    assert all(f.shape == (h, w, 3) and f.dtype == np.uint8 for f in frames)
    diffs = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in itertools.pairwise(frames)]
    assert max(diffs) > 0.1, "frames change over time (really decoded, not one frame repeated)"


def test_source_registry_feeds_config_validation_and_construction(tmp_path: Path) -> None:
    from edge.cameras.sources import SOURCE_KINDS, FileSourceConfig, SyntheticSourceConfig
    from edge.config import EdgeConfig, dump_yaml_config, parse_yaml_config

    assert set(SOURCE_KINDS) == {"synthetic", "stream", "v4l2", "file"}
    for i in range(3):
        write_image(tmp_path / f"{i}.png", 40 * i + 20)
    yaml_text = f"""cameras:
  - {{id: plain, source: "synthetic:?width=64&height=48&rows=1"}}
  - {{id: mapped, source: {{kind: synthetic, width: 64, height: 48, rows: 1, seed: 3}}}}
  - {{id: folder, source: {{kind: file, path: "{tmp_path}", rate: 20}}}}
  - {{id: usb, source: /dev/video0}}
  - {{id: rtsp, source: "rtsp://admin:hunter2@10.0.0.5/s"}}
"""
    cfg = parse_yaml_config(yaml_text, EdgeConfig)
    plain, mapped, folder, usb, rtsp = (c.source for c in cfg.cameras)
    assert isinstance(plain, SyntheticSourceConfig) and (plain.width, plain.rows) == (64, 1)
    assert [c.kind for c in (mapped, folder, usb, rtsp)] == ["synthetic", "file", "v4l2", "stream"]
    assert rtsp.describe() == "rtsp://admin:***@10.0.0.5/s"
    # The same configs build the sources: the mapped synthetic shelf with its seed, the folder at its rate.
    shelf = open_source(mapped, realtime=False)
    assert isinstance(shelf, SyntheticShelfSource) and shelf.shelf.seed == 3
    images = open_source(folder)
    images.open()
    assert isinstance(images, ImageFolderSource) and images.frame_interval == pytest.approx(1 / 20)
    images.close()
    assert isinstance(folder, FileSourceConfig)
    # config show writes plain forms back as they were given; a mapping only where a plain string cannot say it.
    shown = dump_yaml_config(cfg)
    assert "source: synthetic:?width=64&height=48&rows=1\n" in shown and "source: /dev/video0\n" in shown
    assert "kind: file" in shown and "rate: 20.0" in shown
    assert parse_yaml_config(shown, EdgeConfig) == cfg


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('"synthetic:?width=10"', r"edge.yaml:1: cameras.0.source.synthetic.width: Input should be greater than"),
        ("{kind: synthetic, widht: 64}", r"cameras.0.source.synthetic.widht: Extra inputs are not permitted"),
        ('"synthetic:?colour=red"', r"cameras.0.source: Value error, synthetic source: unknown option 'colour'"),
        ("{kind: webcam}", r"cameras.0.source: Input tag 'webcam' found using 'kind'"),
        ('{kind: stream, url: "ftp://x/y"}', r"cameras.0.source.stream.url: Value error, unsupported camera URL"),
        ("{kind: v4l2, device: /tmp/x}", r"cameras.0.source.v4l2.device: Value error, '/tmp/x' is not a V4L2"),
    ],
)
def test_config_validate_checks_every_source_field(source: str, message: str) -> None:
    from edge.config import EdgeConfig, parse_yaml_config

    with pytest.raises(ConfigError, match=message):
        parse_yaml_config(f"cameras: [{{id: a, source: {source}}}]", EdgeConfig, source="edge.yaml")
