"""What a camera's H.264 decode costs the engine call on this machine: the call alone, after a decode on the same
thread (serial, as the bench's reference counts them), and with the decode running beside it on another thread
(what the device does): `beside` from the start of the predict, where the bench's at-take schedule places it,
`late` from `--late-ms` after it, where the just-in-time schedule lands it (near the end of the call). The numbers
behind the ceilings of issue 15's efficiency bar (docs/BENCHMARKS.md).

    .venv/bin/python benchmarks/decode_beside_call.py --bundle bench-out/bundles/det15 \
        --source ../shared/datasets/videos/bottle-detection.mp4 [--resolution 720p] [--engine openvino_int8] \
        [--rounds 8] [--calls 150] [--late-ms MS]

The clip is re-encoded as the bench does (H.264, `--resolution`) and decoded by the device's VideoFileSource (one
FFmpeg thread, the frame pool); the model is the device's wrapper on the plain engine (`threads` as the device's
default unless `--threads`): a detector predicts the whole frame, a classifier the bench's 4 zones in one call.
Per round and mode, `--calls` predictions on decoded frames; modes interleave round by round so that a drifting load
on a shared VM hits all alike. Printed as JSON: medians of the per-round medians of the engine call
(`model.timing.infer_ms`) and of a whole frame (`frame_ms`: decode + predict, wall), the decode alone (a tight loop,
as the bench's `decode_fps`) and after a predict (`serial`), `absorbed` = (call beside - call alone) / decode alone
(0: the decode hides in the call's idle core time, 1: it costs the call its full length) and `efficiency`: the
bench's reference (decode alone + predict alone, back to back) over each mode's frame, i.e. what a pipeline that did
nothing else per frame could reach.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edge.cameras.sources import VideoFileSource
from edge.commands.bench_cmd import RESOLUTIONS, bench_zones, h264_clip
from edge.errors import ShelfwatchError
from edge.pipeline.zone_scoring import Zone, zone_crop
from edge.runtime.wrappers import load_model

MODES = ("alone", "serial", "beside", "late")


class Decoder:
    """A VideoFileSource on its own thread: `start()` decodes one frame, `wait()` returns it."""

    def __init__(self, source: VideoFileSource) -> None:
        self.source = source
        self.frame: Any = None
        self._at = 0.0
        self._go = threading.Event()
        self._done = threading.Event()
        threading.Thread(target=self._loop, name="decoder", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.wait()
            self._go.clear()
            delay = self._at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.frame = self.source.read()
            self._done.set()

    def start(self, at: float = 0.0) -> None:
        """Decode the next frame, from `at` (time.perf_counter) on."""
        self._at = at
        self._go.set()

    def wait(self) -> Any:
        self._done.wait()
        self._done.clear()
        return self.frame


def decode_alone(source: VideoFileSource, count: int = 40) -> float:
    """Median ms of `count` decodes back to back."""
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        source.read()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    """Measure the four modes and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--resolution", choices=sorted(RESOLUTIONS), default="720p")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--late-ms", type=float, default=None, help="the late decode's start after the predict's")
    args = parser.parse_args()
    try:
        model = load_model(args.bundle, args.engine, args.threads, batch_budget_ms=None)
    except ShelfwatchError as err:
        raise SystemExit(f"{args.bundle}: {err}") from err
    with tempfile.TemporaryDirectory(prefix="shelfwatch-decode-") as tmp:
        clip = h264_clip(args.source, RESOLUTIONS[args.resolution], None, Path(tmp))
        source = VideoFileSource(clip, realtime=False)
        source.open()
        # a detector sees the whole frame, a classifier the bench's 4 zones in one call, as in the pipeline
        zones = [Zone(z.id, tuple(z.polygon), ()) for z in bench_zones()]  # cropped as the pipeline crops them
        predict = (
            model.predict
            if model.task == "detection"
            else (lambda image: model.predict_batch([zone_crop(image, zone) for zone in zones]))
        )
        decoder = Decoder(source)
        frames = [source.read().copy() for _ in range(40)]  # decoded beforehand, for the call alone
        for frame in frames:  # warm-up
            predict(frame)
        calls: dict[str, list[float]] = {mode: [] for mode in MODES}
        per_frame: dict[str, list[float]] = {mode: [] for mode in MODES}
        decodes: list[float] = []
        alone_decodes: list[float] = []
        lates: list[float] = []
        late_s = 0.0
        for _ in range(args.rounds):
            alone_decodes.append(decode_alone(source))  # as the bench's decode_fps: back to back, nothing else
            for mode in MODES:
                if mode == "late":  # by default it ends with the predict: this round's predict alone - a decode
                    late_ms = per_frame["alone"][-1] - alone_decodes[-1] if args.late_ms is None else args.late_ms
                    lates.append(max(late_ms, 0.0))
                    late_s = lates[-1] / 1000.0
                infer, walls = [], []
                for i in range(args.calls):
                    t0 = time.perf_counter()
                    if mode == "alone":
                        frame = frames[i % len(frames)]
                    elif mode == "serial":
                        frame = source.read()
                        decodes.append((time.perf_counter() - t0) * 1000.0)
                    else:  # the next frame decodes while this one's predict runs: from its start or later
                        frame = frames[i % len(frames)]
                        decoder.start(t0 + (late_s if mode == "late" else 0.0))
                    predict(frame)
                    infer.append(model.timing.infer_ms)
                    if mode in ("beside", "late"):
                        decoder.wait()
                    walls.append((time.perf_counter() - t0) * 1000.0)
                calls[mode].append(statistics.median(infer))
                per_frame[mode].append(statistics.median(walls))
        source.close()
    call = {mode: median_ms(values) for mode, values in calls.items()}
    frame_ms = {mode: median_ms(values) for mode, values in per_frame.items()}
    decode = median_ms(decodes)
    alone_decode = statistics.median(alone_decodes)
    reference = alone_decode + frame_ms["alone"]  # the bench's serial reference: decode alone + predict alone
    out = {
        "bundle": str(args.bundle),
        "engine": model.describe().get("engine"),
        "precision": model.describe().get("precision"),
        "resolution": args.resolution,
        "rounds": args.rounds,
        "late_ms": round(statistics.median(lates), 2),
        "calls": args.calls,
        "decode_alone_ms": round(alone_decode, 3),
        "decode_serial_ms": decode,
        "call_ms": call,
        "call_ms_per_round": {mode: [round(v, 2) for v in values] for mode, values in calls.items()},
        "frame_ms": frame_ms,  # alone: predict only; serial: decode + predict; beside: predict with a decode beside
        "absorbed": {m: round((call[m] - call["alone"]) / alone_decode, 2) for m in ("beside", "late")},
        "serial_cache_ms": round(call["serial"] - call["alone"], 3),
        "efficiency": {m: round(reference / frame_ms[m], 3) for m in ("serial", "beside", "late")},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
