"""`shelfwatch bench --skill edge.yaml`: a camera's skills' cost per frame against their models alone.

The skills of one camera (`--camera`, default the first with skills) run on frames of `--source` (a folder of
images or a video file; default the camera's own folder) with the device's projects and installed models, but no
events leave (nothing is logged, sent or posted: the bench never touches the device's event log or outboxes).
Measured per frame, over `--frames` evaluations after a warm-up: the whole cascade (every skill, every block),
the time of its model calls inside it (each shared model runs once per frame), and the same models called alone
on the same inputs (the detector on the frame, a classifier on the crops it classifies). `ratio` is cascade over
models alone; `overhead_ms` what the blocks add.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.comms.base import NullCommunicator
from edge.pipeline.zone_scoring import Zone, crop_zone
from edge.skills.geometry import crop_box
from edge.skills.values import WHOLE_FRAME

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def load_frames(source: Path, count: int) -> list[np.ndarray]:
    """Up to `count` BGR frames from a folder of images (sorted) or a video file."""
    frames: list[np.ndarray] = []
    if source.is_dir():
        for p in sorted(q for q in source.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)[:count]:
            image = cv2.imread(str(p))
            if image is not None:
                frames.append(image)
    else:
        cap = cv2.VideoCapture(str(source))
        while len(frames) < count:
            ok, image = cap.read()
            if not ok:
                break
            frames.append(image)
        cap.release()
    if not frames:
        raise ValueError(f"no frames could be read from {source}")
    return frames


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else 0.0


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3)


def run_skill_bench(
    config_path: Path, camera: str | None = None, source: Path | None = None, frames: int = 40, warmup: int = 3
) -> dict[str, Any]:
    """Measure one camera's skills (see the module docstring); the result is JSON-ready."""
    from edge.config import EdgeConfig, load_yaml_config
    from edge.model_repository import ModelRepository, load_installed_model
    from edge.skills.models import ProjectModels
    from edge.skills.runner import SkillsHub
    from edge.store import DatasetStore

    config = load_yaml_config(config_path, EdgeConfig)
    cams = [c for c in config.cameras if c.skills and (camera is None or c.id == camera)]
    if not cams:
        raise ValueError(f"{config_path}: no camera {'named ' + camera + ' ' if camera else ''}with skills")
    cam = cams[0]
    if source is None:
        plain = cam.source.plain()
        if plain is None or not Path(str(plain)).exists():
            raise ValueError(f"camera {cam.id}'s source is not a folder or file here: give --source")
        source = Path(str(plain))
    images = load_frames(source, max(frames, 1))
    zones = [Zone(z.id, tuple((float(x), float(y)) for x, y in z.polygon), ()) for z in cam.zones] or [
        Zone(WHOLE_FRAME, ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)), ())
    ]
    store = DatasetStore(config.data_dir, config.dataset)
    repo = ModelRepository.from_config(config)
    models = ProjectModels(repo, store, lambda path: load_installed_model(path, config.model), refresh_seconds=1e9)
    with tempfile.TemporaryDirectory(prefix="shelfwatch-skill-bench-") as scratch:
        hub = SkillsHub(Path(scratch), models, NullCommunicator(), submit=None)
        try:
            runner = hub.runner(cam.id, cam.skills)
            total, in_models, alone = [], [], []
            per_block: dict[str, list[float]] = {}
            calls = 0
            for n in range(warmup + frames):
                image = images[n % len(images)]
                t0 = time.perf_counter()
                frame = runner.run(image, zones)
                elapsed = (time.perf_counter() - t0) * 1000.0
                model_alone = _models_alone(runner, models, image, zones)
                if n < warmup:
                    continue
                total.append(elapsed)
                in_models.append(frame.model_ms)
                alone.append(model_alone)
                calls = max(calls, len(frame.cache))
                for skill in runner.debug()["skills"]:
                    for b in skill["blocks"]:
                        per_block.setdefault(f"{skill['id']}/{b['id']}", []).append(b["ms"])
            idle = {s["id"]: s["reason"] for s in runner.debug()["skills"] if s["status"] != "running"}
        finally:
            hub.stop()
            store.close()
    cascade, model_ms = _median(total), _median(alone)
    return {
        "camera": cam.id,
        "skills": [s.id for s in cam.skills or []],
        "idle": idle,
        "source": str(source),
        "frame_size": list(images[0].shape[1::-1]),
        "frames": len(total),
        "model_calls_per_frame": calls,
        "cascade_ms": cascade,
        "cascade_p95_ms": _p95(total),
        "models_in_cascade_ms": _median(in_models),
        "models_alone_ms": model_ms,
        "overhead_ms": round(cascade - _median(in_models), 3),
        "ratio": round(cascade / model_ms, 3) if model_ms > 0 else None,
        "block_ms": {k: _median(v) for k, v in per_block.items()},
    }


def _models_alone(runner: Any, models: Any, image: np.ndarray, zones: list[Zone]) -> float:
    """The same models on the same inputs, called directly: each detector once, each classifier on its crops."""
    elapsed = 0.0
    detections: dict[str, list[Any]] = {}
    seen: set[tuple[Any, ...]] = set()
    for skill in runner.skills:
        for s in skill.order:
            if s.type not in ("detect", "classify"):
                continue
            active = models.get(s.project)
            if active is None:
                continue
            if s.type == "detect":
                if s.project in detections:
                    continue
                t0 = time.perf_counter()
                detections[s.project] = active.model.predict(image, score_threshold=0.05)
                elapsed += time.perf_counter() - t0
                continue
            if s.crop == "boxes":
                upstream = skill.blocks[s.input].settings if s.input in skill.blocks else None
                project = getattr(upstream, "project", None)
                floor = getattr(upstream, "min_score", None) or 0.05
                found = detections.get(str(project), [])
                crops = [crop_box(image, tuple(d.bbox)) for d in found if d.score >= floor]
            elif s.crop == "frame":
                crops = [image]
            else:
                crops = [crop_zone(image, z) for z in zones]
            key = (s.project, s.crop, len(crops))
            if key in seen or not crops:
                continue
            seen.add(key)
            t0 = time.perf_counter()
            active.model.predict_batch(crops)
            elapsed += time.perf_counter() - t0
    return elapsed * 1000.0


def print_skill_bench(result: dict[str, Any]) -> None:
    """The human-readable summary."""
    print(f"skills          {', '.join(result['skills'])} on camera {result['camera']} ({result['frames']} frames)")
    print(f"cascade         {result['cascade_ms']:.2f} ms per frame (p95 {result['cascade_p95_ms']:.2f} ms)")
    print(f"models alone    {result['models_alone_ms']:.2f} ms ({result['model_calls_per_frame']} calls per frame)")
    print(f"overhead        {result['overhead_ms']:.2f} ms (ratio {result['ratio']})")
    for name, reason in result["idle"].items():
        print(f"idle            {name}: {reason}")
