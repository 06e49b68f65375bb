"""Benchmark: the agent on a real video fills the inbox within its rate limits, with reasons, and keeps no frame that
is a near-copy of a dataset image (issue 13, point 4).

The agent (edge.agent.Agent: camera, pipeline, model slot, inbox sink) reads ../shared/datasets/videos/
bottle-detection.mp4 (real footage, 640x360, 40 s, paced at 10 fps) with two zones (left and right halves) and the
tiny darkness detector of tests/helpers/tiny_bundle.py steepened around the video's brightness (contrast 4, pivot
0.6), so zone scores hover around the 0.6 alert threshold: some frames are unsure and zones flip. Before it runs,
8 frames of the same video are put in the dataset. The inbox limits (edge.yaml's `inbox` section) are scaled to
the 40 s clip (one frame per 2 s, 6 per hour, 8 per day) so every limit is reached; the device default is one per
30 s, 20 per hour, 100 per day.

    .venv/bin/python benchmarks/inbox_video.py [--seconds 45]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
VIDEO = REPO.parent / "shared" / "datasets" / "videos" / "bottle-detection.mp4"
LEFT = [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]
RIGHT = [(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]


def seed_frames(count: int = 8) -> list[bytes]:
    cap = cv2.VideoCapture(str(VIDEO))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    out = []
    for i in range(count):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i * total // count)
        ok, frame = cap.read()
        if ok:
            out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0)
    args = parser.parse_args()
    if not VIDEO.is_file():
        print(f"{VIDEO} is absent: this benchmark needs the shared datasets", file=sys.stderr)
        return 2
    from edge.agent import Agent, AgentOptions
    from edge.config.model import EdgeConfig
    from edge.store import DatasetStore, assist_rows, image_rows
    from edge.store.images import hamming
    from tests.helpers.tiny_bundle import make_detection_bundle

    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as tmp:
        root = Path(tmp)
        bundle = make_detection_bundle(
            root / "bundles", version="det-video", resize="stretch", contrast=4.0, pivot=0.6, openvino=False
        )
        config = EdgeConfig.model_validate(
            {
                "device_id": "bench",
                "data_dir": str(root / "data"),
                "cameras": [
                    {
                        "id": "bottles",
                        "source": str(VIDEO),
                        "fps": 10,
                        "zones": [{"id": "left", "polygon": LEFT}, {"id": "right", "polygon": RIGHT}],
                    }
                ],
                "model": {"bundle": str(bundle.bundle_dir), "engine": "onnxruntime", "threads": 1,
                          "trusted_keys": [str(bundle.public_key)]},
                "events": {"on_threshold": 0.6, "off_threshold": 0.4, "min_frames": 2},
                "mqtt": {"enabled": False},
                "inbox": {"per_hour": 6, "per_day": 8, "min_interval_s": 2.0},
            }
        )  # fmt: skip
        agent = Agent(config, AgentOptions(web=False))
        assert agent.inbox is not None
        limits = config.inbox
        assert agent.inbox.limits == limits
        seeded = agent.store.add_images([(f"seed-{i}.jpg", d) for i, d in enumerate(seed_frames())])
        started = time.monotonic()
        agent.start()
        try:
            time.sleep(args.seconds)
        finally:
            agent.stop()
        elapsed = time.monotonic() - started
        stats = dict(agent.inbox.stats)
        evaluated = agent.pipelines["bottles"].stats.evaluated
        store = DatasetStore(root / "data", config.dataset)  # the agent closed its own
        with store.assist_tx() as conn:
            rows = conn.execute("SELECT image_id, reason, camera, created FROM inbox ORDER BY image_id").fetchall()
            hashes = dict(image_rows.all_hashes(conn, 1))
            kept_ids = [int(r[0]) for r in rows]
            reasons = assist_rows.inbox_reasons(conn, kept_ids)
        seed_ids = [r.id for r in seeded]
        distances = [min(hamming(hashes[k], hashes[s]) for s in seed_ids) for k in kept_ids]
        kinds = collections.Counter(reason.split(":")[0] for reason in reasons.values())
        out = {
            "benchmark": "inbox on bottle-detection.mp4",
            "seconds": round(elapsed, 1),
            "frames_evaluated": evaluated,
            "kept": len(kept_ids),
            "limits": {"per_hour": limits.per_hour, "per_day": limits.per_day, "min_interval_s": limits.min_interval_s},
            "skipped": {k: v for k, v in stats.items() if k != "kept"},
            "reasons": dict(kinds),
            "examples": sorted(set(reasons.values()))[:4],
            "seeded_dataset_images": len(seed_ids),
            "min_hamming_to_dataset": min(distances) if distances else None,
            "near_duplicate_distance": store.rules.near_duplicate_distance,
        }
        store.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
