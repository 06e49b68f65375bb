"""Few-shot detection benchmark on the shared empty-shelf photos (issue 4 "Done when").

Train on 15 photos (one augmented copy of each, picked by seed; a second copy of the same photos is the validation
set, which only picks the score threshold) with the full product path, trainer.pipeline.run_training: train, ONNX +
OpenVINO export, parity check, evaluation with ONNX Runtime through the device's decode (edge.runtime.postprocess)
on one copy of every photo that was not trained on, report, signed bundle. Copies of a photo share the file-name
prefix before `_jpg.rf.` and are never split between train and test.

    .venv/bin/python benchmarks/train_detection.py --threads 1           # 3 seeds, defaults
    .venv/bin/python benchmarks/train_detection.py --seeds 0 --epochs 20 --direct --json
    .venv/bin/python benchmarks/train_detection.py --all-kfold --threads 1   # all 84 photos, k-fold by photo

Prints one line per seed and the medians; `--json` adds one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.datasets.model import Box, Dataset, Sample  # noqa: E402

if TYPE_CHECKING:
    from trainer.pipeline import TrainResult

SHARED = REPO.parent / "shared"
DATASET = SHARED / "datasets" / "empty_shelf"
WEIGHTS = SHARED / "weights" / "squeezenet1_1_torchvision" / "squeezenet1_1_imagenet_norm_fp32.npz"


def read_empty_shelf(root: Path) -> tuple[list[str], list[Sample]]:
    """The YOLO dataset through the formats reader, or a minimal parser while that reader is not available."""
    try:
        from edge.datasets.formats import read_dataset

        ds = read_dataset(root, "yolo")
        return ds.label_names, ds.samples
    except ImportError:
        pass
    names = ["empty_shelf"]
    samples = []
    for image in sorted((root / "train" / "images").glob("*.jpg")):
        boxes = []
        for line in (root / "train" / "labels" / f"{image.stem}.txt").read_text().splitlines():
            parts = line.split()
            if not parts:
                continue
            v = [float(x) for x in parts[1:]]
            if len(v) == 4:
                x1, y1, x2, y2 = v[0] - v[2] / 2, v[1] - v[3] / 2, v[0] + v[2] / 2, v[1] + v[3] / 2
            else:
                xs, ys = v[0::2], v[1::2]
                x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
            clip = [min(max(c, 0.0), 1.0) for c in (x1, y1, x2, y2)]
            boxes.append(Box(names[int(parts[0])], *clip))
        samples.append(Sample(path=image, name=image.name, boxes=boxes))
    return names, samples


def split_by_photo(
    samples: list[Sample], train_photos: int, seed: int
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """(train, val, test): one copy each of `train_photos` photos for training, another copy of those same photos
    for validation (it only picks the score threshold), one copy of every other photo for testing."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[Path(s.name).name.split("_jpg.rf.")[0]].append(s)
    rng = random.Random(seed)
    keys = sorted(groups)
    rng.shuffle(keys)
    train, val = [], []
    for k in keys[:train_photos]:
        copies = sorted(groups[k], key=lambda s: s.name)
        rng.shuffle(copies)
        train.append(copies[0])
        val.append(copies[1 % len(copies)])
    test = [rng.choice(sorted(groups[k], key=lambda s: s.name)) for k in keys[train_photos:]]
    return train, val, test


def _train_pipeline(seed: int, dataset: Dataset, args: argparse.Namespace, **spec: Any) -> tuple[TrainResult, float]:
    """run_training on the empty_shelf photos at this run's settings (plus `spec`), into a throw-away folder;
    returns the result and the CPU seconds it took."""
    from trainer.pipeline import TrainSpec, run_training
    from trainer.weight_signatures import resolve_backbone

    with tempfile.TemporaryDirectory() as tmp:
        train_spec = TrainSpec(
            data=DATASET,
            fmt="yolo",
            task="detection",
            out=Path(tmp) / "bundle",
            backbone=resolve_backbone(args.backbone, args.weights),
            weights=args.weights,
            seed=seed,
            epochs=args.epochs,
            views=args.views,
            input_size=args.input_size,
            threads=args.threads,
            int8=None if args.int8 == "auto" else False,
            **spec,
        )
        cpu0 = time.process_time()
        phases = _Phases()
        result = run_training(train_spec, phases, dataset=dataset)
        result.seconds["phases"] = phases.seconds()  # type: ignore[assignment]
        cpu = time.process_time() - cpu0
        if args.inference_runs:
            test = [s.path for s in dataset.samples if s.split == "test"] or [s.path for s in dataset.samples]
            result.seconds["inference"] = device_inference(result.bundle_dir, test, args.inference_runs)  # type: ignore[assignment]
        return result, cpu


def device_inference(bundle_dir: Path, images: list[Path], runs: int, threads: int = 2) -> dict[str, float]:
    """What the device pays per image for the bundle (ONNX Runtime, `threads` intra-op threads): median wall and
    process-CPU milliseconds of one predict call (the device's preprocessing, the model, its decode with NMS) and
    of the model alone, over `runs` calls on different photos after warm-up calls."""
    from edge.runtime.preprocess import preprocess
    from edge.runtime.wrappers import DetectionModel, load_model
    from trainer.data import load_image

    model = load_model(bundle_dir, engine="onnxruntime", threads=threads, batch_budget_ms=None)
    assert isinstance(model, DetectionModel)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(bundle_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    photos = [load_image(images[i % len(images)]) for i in range(runs)]
    walls, cpus, model_walls = [], [], []
    for i, photo in enumerate([photos[0]] * 3 + photos):
        w0, c0 = time.perf_counter(), time.process_time()
        model.predict_batch([photo], score_threshold=0.25)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        tensor, _ = preprocess([photo], model.manifest.input)
        w0 = time.perf_counter()
        session.run(None, {"input": tensor})
        if i >= 3:
            walls.append(wall)
            cpus.append(cpu)
            model_walls.append(time.perf_counter() - w0)
    return {
        "ms_per_image": round(statistics.median(walls) * 1000, 2),
        "cpu_ms_per_image": round(statistics.median(cpus) * 1000, 2),
        "model_ms_per_image": round(statistics.median(model_walls) * 1000, 2),
        "threads": threads,
        "runs": runs,
    }


class _Phases:
    """Wall seconds per pipeline step, from the progress reports: each report's stage and the first words of its
    sentence (features, train, ONNX, OpenVINO IR, INT8, parity check, evaluating, signing ...) name a step, which
    lasts until the next step's first report."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def __call__(self, p: Any) -> None:
        message = str(p.message or "")
        name = (
            p.stage
            if p.stage != "training"
            else ("features" if "feature" in message or "caching" in message else "train")
        )
        if p.stage in ("exporting", "evaluating") and message:
            name = f"{p.stage}: {' '.join(message.split()[:2])}"
        if not self.marks or self.marks[-1][0] != name:
            self.marks.append((name, time.perf_counter()))

    def seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        ends = [t for _, t in self.marks[1:]] + [time.perf_counter()]
        for (name, start), end in zip(self.marks, ends, strict=True):
            out[name] = round(out.get(name, 0.0) + end - start, 2)
        return out


def _scores(metrics: dict) -> dict:
    """The detection scores every mode reports, from detection_metrics() or the report's metrics."""
    return {k: metrics[k] for k in ("map50", "map50_95", "precision", "recall", "f1", "score_threshold")}


def run_pipeline(seed: int, labels: list[str], splits: tuple[list[Sample], ...], args: argparse.Namespace) -> dict:
    """The whole product path: trainer.pipeline.run_training (train, ONNX + OpenVINO export, parity, ONNX Runtime
    evaluation on the test photos, report, signed bundle)."""
    from edge.datasets.model import LabelInfo

    dataset = Dataset(labels=[LabelInfo(n) for n in labels])
    for split, part in zip(("train", "val", "test"), splits, strict=True):
        dataset.samples.extend(replace(s, split=split) for s in part)
    result, cpu = _train_pipeline(seed, dataset, args, signing_key=None)
    m = result.report["metrics"]
    split = result.report["split"]
    return {
        "seed": seed,
        "mode": "pipeline",
        "train_images": split["train_images"],
        "val_images": split["val_images"],
        "test_images": split["test_images"],
        "test_boxes": m["ground_truth_boxes"],
        **_scores(m),
        "final_loss": result.report["training"].get("final_loss"),
        "seconds": {**result.seconds, "cpu": cpu},
    }


def run_all_kfold(seed: int, labels: list[str], samples: list[Sample], args: argparse.Namespace) -> dict:
    """All 84 photos (one copy each, picked by seed, or with --copies all every copy), evaluated by the pipeline's
    5-fold cross-validation by photo: every photo is tested once by a model that never saw it; the shipped model
    trains on all of them."""
    from edge.datasets.model import LabelInfo

    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[Path(s.name).name.split("_jpg.rf.")[0]].append(s)
    rng = random.Random(seed)
    dataset = Dataset(labels=[LabelInfo(n) for n in labels])
    if args.kfold_train:  # the 15 training photos alone, as the studio's Train button gets them: auto = k-fold
        picked = split_by_photo(samples, args.train_photos, seed)[0]
    elif args.copies == "all":  # the dataset as it is: the pipeline keeps a photo's copies in one fold
        picked = [s for key in sorted(groups) for s in sorted(groups[key], key=lambda s: s.name)]
    else:
        picked = [rng.choice(sorted(groups[key], key=lambda s: s.name)) for key in sorted(groups)]
    dataset.samples.extend(replace(s, split=None) for s in picked)
    folds = {} if args.kfold_train else {"evaluation": "kfold", "folds": 5}
    result, cpu = _train_pipeline(seed, dataset, args, **folds)
    evaluation = result.metrics["evaluation"]
    return {
        "seed": seed,
        "mode": "kfold-train" if args.kfold_train else f"kfold-all-{args.copies}",
        "photos": len(dataset.samples),
        "folds": evaluation.get("folds"),
        "map50": result.metrics["map50"],
        "map50_95": result.metrics["map50_95"],
        "spread": evaluation.get("metrics"),
        "seconds": {**result.seconds, "cpu": cpu},
        "load": os.getloadavg()[0],
    }


def run_seed(seed: int, labels: list[str], samples: list[Sample], args: argparse.Namespace) -> dict:
    """Train, export and evaluate one seed; returns metrics and timings."""
    from trainer.detection import (
        DetectorConfig,
        detection_metrics,
        onnx_infer,
        predict_detections,
        train_detector,
    )
    from trainer.export import export_onnx

    train, val, test = split_by_photo(samples, args.train_photos, seed)
    if not args.direct:
        return run_pipeline(seed, labels, (train, val, test), args)
    cfg = DetectorConfig(seed=seed)
    tunable = ("epochs", "views", "input_size", "lr", "fine_tune_blocks", "head_width", "head_depth", "batch")
    overrides = {k: getattr(args, k) for k in tunable}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    from trainer.weight_signatures import resolve_backbone

    model, info = train_detector(train, [], labels, resolve_backbone(args.backbone, args.weights), args.weights, cfg)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_path, cfg.input_size, ["boxes", "scores"])
        t2 = time.perf_counter()
        predictions = predict_detections(
            onnx_infer(onnx_path), [s.path for s in test], cfg.input_spec(), labels, nms_iou=cfg.nms_iou
        )
    metrics = detection_metrics(predictions, [s.boxes for s in test], labels)
    t3 = time.perf_counter()
    cpu = time.process_time() - cpu0
    return {
        "seed": seed,
        "mode": "direct",
        "train_images": len(train),
        "test_images": len(test),
        "test_boxes": metrics["ground_truth_boxes"],
        **_scores(metrics),
        "final_loss": info["final_loss"],
        "seconds": {
            "train": t1 - t0,
            "export": t2 - t1,
            "evaluate": t3 - t2,
            "total": t3 - t0,
            # CPU seconds of this process (all threads): what the run costs, whatever else shares the machine
            "cpu": cpu,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-photos", type=int, default=15)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--views", type=int)
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--fine-tune-blocks", type=int)
    parser.add_argument("--head-width", type=int)
    parser.add_argument("--head-depth", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="train_detector + ONNX export + ONNX Runtime evaluation only (no OpenVINO, parity, report or signing; "
        "the F1 threshold is then picked on the test photos)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument(
        "--inference-runs", type=int, default=0, help="time N device predict calls on the bundle (2 ORT threads)"
    )
    parser.add_argument(
        "--all-kfold", action="store_true", help="all 84 photos, 5-fold cross-validation by photo (the pipeline's)"
    )
    parser.add_argument(
        "--copies",
        choices=["one", "all"],
        default="one",
        help="with --all-kfold: one copy of each photo (picked by the seed; default) or all 252 images, the 3 "
        "augmented copies of each photo kept together in one fold",
    )
    parser.add_argument(
        "--kfold-train",
        action="store_true",
        help="only the --train-photos photos, no test split: the pipeline's default (k-fold below 50 photos)",
    )
    parser.add_argument(
        "--int8",
        choices=["auto", "off"],
        default="auto",
        help="auto (the product's default: INT8 export + its out-of-fold gate when NNCF is installed) or off "
        "(accuracy runs: the k-fold metrics are the FP32 models' either way, INT8 only adds NNCF passes per fold)",
    )
    parser.add_argument("--backbone", default=None, help="default: the one --weights belongs to, else train's default")
    parser.add_argument(
        "--weights", default="imagenet", help=f"default imagenet (EfficientNet-Lite0 via pip); SqueezeNet: {WEIGHTS}"
    )
    args = parser.parse_args()
    if not DATASET.is_dir():
        print(f"needs {DATASET}", file=sys.stderr)
        return 1
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    labels, samples = read_empty_shelf(DATASET)
    runs = []
    if args.all_kfold or args.kfold_train:
        for seed in args.seeds:
            r = run_all_kfold(seed, labels, samples, args)
            runs.append(r)
            print(json.dumps(r), flush=True)
        print(
            json.dumps(
                {
                    "median_map50": statistics.median(r["map50"] for r in runs),
                    "median_map50_95": statistics.median(r["map50_95"] for r in runs),
                }
            )
        )
        return 0
    for seed in args.seeds:
        r = run_seed(seed, labels, samples, args)
        runs.append(r)
        s = r["seconds"]
        print(
            f"seed {seed}: mAP@0.5 {r['map50']:.3f}  mAP@0.5:0.95 {r['map50_95']:.3f}  P {r['precision']:.2f} "
            f"R {r['recall']:.2f} F1 {r['f1']:.2f} @ {r['score_threshold']:.2f}  ({r['train_images']} train, "
            f"{r['test_images']} test photos, {r['test_boxes']} boxes)  "
            f"train {s['train']:.1f} s  export {s['export']:.1f} s  evaluate {s['evaluate']:.1f} s  "
            f"total {s['total']:.1f} s (cpu {s['cpu']:.1f} s)"
            + (f"  device {s['inference']['ms_per_image']:.1f} ms/image" if "inference" in s else ""),
            flush=True,
        )
    summary = {
        "seeds": args.seeds,
        "median_map50": statistics.median(r["map50"] for r in runs),
        "median_map50_95": statistics.median(r["map50_95"] for r in runs),
        "median_f1": statistics.median(r["f1"] for r in runs),
        "median_total_seconds": statistics.median(r["seconds"]["total"] for r in runs),
        "median_cpu_seconds": statistics.median(r["seconds"]["cpu"] for r in runs),
        "load_average": list(os.getloadavg()),
        "torch_threads": torch.get_num_threads(),
        "runs": runs,
    }
    print(
        f"median over seeds {args.seeds}: mAP@0.5 {summary['median_map50']:.3f}  mAP@0.5:0.95 "
        f"{summary['median_map50_95']:.3f}  F1 {summary['median_f1']:.3f}  run {summary['median_total_seconds']:.1f} s "
        f"(cpu {summary['median_cpu_seconds']:.1f} s; load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)"
    )
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
