"""INT8 on the few-shot benchmarks' real bundles: train each (seed 0, the benchmark's own data and split, train's
defaults), keep it under --out, and score its INT8 IR against FP32 on the benchmark's own test images.

Bundles (the names docs/BENCHMARKS.md uses):
- `grocery15`: classifier, grocery5 15 photos per class from `train/` (benchmarks/train_classification.py's pick),
  k-fold run; tested on the 105 photos of `test/` (trainer.evaluate.evaluate_bundle, each engine).
- `zones`: the synthetic shelf's 4-zone classifier from 15 captures (benchmarks/train_synthetic_zones.py);
  tested on the 400 zone crops of 100 later frames.
- `zones224`: the same on SqueezeNet 1.1 at 224 px (the many-camera bench's classifier).
- `det15`: detector, 15 empty_shelf photos (benchmarks/train_detection.py's split); tested (mAP@0.5) on one copy of
  every other photo.

For each: the trainer's own INT8 gate (`report.json` `int8`: kept or not, FP32 vs INT8 on the run's evaluation
images; k-fold runs: each fold's own quantised model on its held-out items, pooled) and the test-set metric
through ONNX Runtime (FP32) and `openvino_int8` when the IR was kept. Accuracy
only, no timing (run it niced, not under /work/coord/quiet); the speed-up is benchmarks/engine_choice.py's.

    .venv/bin/python benchmarks/int8_bundles.py --out /tmp/rt-bundles [--only grocery15 zones det15] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

SEED = 0
SQUEEZENET = REPO.parent / "shared/weights/squeezenet1_1_torchvision/squeezenet1_1_imagenet_norm_fp32.npz"


def _spec(out: Path, threads: int, backbone: str | None = None, weights: str = "imagenet", **fields: Any) -> Any:
    """The benchmark's TrainSpec: train's defaults, seed 0, into `out`."""
    from trainer.pipeline import TrainSpec
    from trainer.weight_signatures import resolve_backbone

    return TrainSpec(out=out, backbone=resolve_backbone(backbone, weights), weights=weights, seed=SEED,
                     threads=threads, **fields)  # fmt: skip


def _train(spec: Any, dataset: Any) -> tuple[Path, dict[str, Any], float]:
    from trainer.pipeline import run_training

    started = time.perf_counter()
    result = run_training(spec, dataset=dataset)
    return result.bundle_dir, result.report, time.perf_counter() - started


def grocery15(out: Path, threads: int) -> dict[str, Any]:
    """The grocery5 15-per-class classifier and its accuracy on test/ per engine."""
    import train_classification as tc

    from trainer.evaluate import evaluate_bundle

    spec = _spec(out, threads, data=tc.GROCERY, fmt="folders", task="classification", min_per_label=10,
                 evaluation="kfold")  # fmt: skip
    bundle, report, seconds = _train(spec, tc.pick(SEED, 15))
    scores = {
        engine: evaluate_bundle(bundle, tc.GROCERY / "test", "folders", engine=engine, threads=threads)["accuracy"]
        for engine in _engines(bundle)
    }
    return _summary(bundle, report, seconds, "accuracy", "grocery5 test/ (105 photos)", scores)


def zones(out: Path, threads: int, backbone: str | None = None, size: int | None = None) -> dict[str, Any]:
    """The synthetic shelf's 4-zone classifier and its accuracy on 400 later zone crops per engine."""
    import tempfile

    import train_synthetic_zones as tz

    from edge.cameras.synthetic import SyntheticShelf
    from edge.pipeline.zone_scoring import Zone, crop_zone
    from edge.runtime.wrappers import load_model

    weights = str(SQUEEZENET) if backbone == "squeezenet1_1" else "imagenet"
    shelf = SyntheticShelf(1280, 720, 4, 60.0, seed=0)
    shelf_zones = shelf.zones()
    with tempfile.TemporaryDirectory(prefix="int8-zones-") as tmp:
        ds = tz.captures_dataset(shelf, [SEED + 4.0 * i for i in range(tz.CAPTURES)], Path(tmp) / "captures")
        spec = _spec(out, threads, backbone, weights, data=Path(tmp), fmt=None, task="classification",
                     input_size=size, zones=shelf_zones, alert_labels=[tz.LOW])  # fmt: skip
        bundle, report, seconds = _train(spec, ds)
    device_zones = [Zone(z.id, tuple((float(x), float(y)) for x, y in z.polygon), (tz.LOW,)) for z in shelf_zones]
    frames = [300.0 + 1.7 * i for i in range(tz.TEST_FRAMES)]
    scores = {}
    for engine in _engines(bundle):
        model = load_model(bundle, engine=engine, threads=threads)  # type: ignore[arg-type]
        right = total = 0
        for t in frames:
            frame, truth = shelf.render(t), shelf.ground_truth(t)
            crops = [crop_zone(frame, z) for z in device_zones]
            for zone, pred in zip(device_zones, model.predict_batch(crops), strict=True):
                right += int((getattr(pred, "label", None) == tz.LOW) == truth[zone.id])
                total += 1
        scores[engine] = right / total
    return _summary(bundle, report, seconds, "accuracy", "400 zone crops of 100 later frames", scores)


def det15(out: Path, threads: int) -> dict[str, Any]:
    """The 15-photo empty_shelf detector; its test mAP@0.5 per engine."""
    from dataclasses import replace

    import train_detection as td

    from edge.datasets.model import Dataset, LabelInfo

    labels, samples = td.read_empty_shelf(td.DATASET)
    train, val, test = td.split_by_photo(samples, 15, SEED)
    dataset = Dataset(labels=[LabelInfo(n) for n in labels])
    for split, part in zip(("train", "val", "test"), (train, val, test), strict=True):
        dataset.samples.extend(replace(s, split=split) for s in part)
    spec = _spec(out, threads, data=td.DATASET, fmt="yolo", task="detection", signing_key=None)
    bundle, report, seconds = _train(spec, dataset)
    # The run's own evaluation is on the test photos (ONNX Runtime); the INT8 gate scored the same photos.
    gate = report.get("int8") or {}
    scores = {"onnxruntime": float(report["metrics"]["map50"])}
    if gate.get("kept"):
        scores["openvino_int8"] = float(gate["int8"])
    return _summary(bundle, report, seconds, "map50", f"{len(test)} held-out photos (one copy each)", scores)


def _engines(bundle: Path) -> list[str]:
    return ["onnxruntime"] + (["openvino_int8"] if (bundle / "openvino/int8/model.xml").is_file() else [])


def _summary(
    bundle: Path, report: dict[str, Any], seconds: float, metric: str, test: str, scores: dict[str, float]
) -> dict[str, Any]:
    fp32 = scores["onnxruntime"]
    int8 = scores.get("openvino_int8")
    return {
        "bundle": str(bundle),
        "backbone": (report.get("base") or {}).get("backbone") or report.get("backbone"),
        "input": (report.get("base") or {}).get("input"),
        "train_seconds": round(seconds, 1),
        "gate": _gate(report.get("int8")),
        "test": test,
        "metric": metric,
        "fp32": round(fp32, 4),
        "int8": None if int8 is None else round(int8, 4),
        "difference": None if int8 is None else round(int8 - fp32, 4),
        "load": round(os.getloadavg()[0], 2),
    }


def _gate(gate: dict[str, Any] | None) -> dict[str, Any] | None:
    """The report's INT8 gate without its item lists (k-fold: each fold's numbers and how many items it tested)."""
    if gate is None:
        return None
    out = {k: v for k, v in gate.items() if k not in ("tested", "per_fold")}
    if "per_fold" in gate:
        out["per_fold"] = [
            {"fold": f["fold"], "fp32": f["fp32"], "int8": f["int8"], "tested": len(f["tested"]),
             "calibrated_on": len(f["calibrated_on"])}
            for f in gate["per_fold"]
        ]  # fmt: skip
    return out


def zones224(out: Path, threads: int) -> dict[str, Any]:
    """The same 4-zone classifier on SqueezeNet 1.1 at 224 px: the small model a many-camera device runs."""
    return zones(out, threads, "squeezenet1_1", 224)


BUNDLES = {"grocery15": grocery15, "zones": zones, "zones224": zones224, "det15": det15}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="+", choices=list(BUNDLES), default=list(BUNDLES))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    shared = REPO.parent / "shared" / "datasets"
    if not shared.is_dir():
        print(f"{shared} is absent: this benchmark needs the shared datasets", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        result = {"name": name} | BUNDLES[name](args.out / name, args.threads)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
