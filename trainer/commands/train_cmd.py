"""`shelfwatch train`: train a model from a dataset and write a signed bundle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.vocabulary import BACKBONES, DEFAULT_BACKBONE, TASKS


def cmd_train(args: argparse.Namespace) -> int:
    """Run one training and print where the bundle is (JSON with --json)."""
    from trainer.commands._common import ProgressBar, read_zones, require_torch

    require_torch()
    from trainer.pipeline import TrainSpec, run_training
    from trainer.weight_signatures import resolve_backbone

    weights = None if args.weights.lower() in ("none", "random") else args.weights
    spec = TrainSpec(
        data=Path(args.data),
        fmt=args.format,
        task=args.task,
        out=Path(args.out),
        backbone=resolve_backbone(args.backbone, weights),
        weights=weights,
        epochs=args.epochs,
        seed=args.seed,
        signing_key=Path(args.signing_key) if args.signing_key else None,
        name=args.name,
        input_size=args.input_size,
        zones=read_zones(args.zones),
        threads=args.threads,
        int8=args.int8,
        alert_labels=args.alert_label or None,
        min_per_label=args.min_per_label,
        fine_tune={"auto": None, "on": True, "off": False}[args.fine_tune],
        evaluation=args.evaluation,
        folds=args.folds,
    )
    result = run_training(spec, progress=None if args.no_progress else ProgressBar())
    for warning in result.warnings:
        sys.stderr.write(f"WARNING: {warning}\n")
    if result.public_key is not None and spec.signing_key is None:
        sys.stderr.write(f"signed with the kept key; the device must trust {result.public_key}\n")
    if args.json:
        from edge.cli import print_json

        payload: dict[str, Any] = {
            "bundle": str(result.bundle_dir),
            "version": result.version,
            "task": spec.task,
            "seconds": result.seconds,
            "metrics": result.metrics,
            "base": result.report.get("base"),  # backbone and the weights it started from
            "evaluation": result.metrics.get("evaluation"),  # hold-out or k-fold, and why
            "warnings": result.warnings,
            "public_key": str(result.public_key) if result.public_key else None,
            "report": str(result.bundle_dir / "report.html"),
        }
        print_json(payload)
    else:
        m = result.metrics
        headline = ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float))
        ev = m.get("evaluation") or {}
        method = f"{ev['folds']}-fold cross-validation" if ev.get("method") == "kfold" else "hold-out test split"
        print(f"bundle {result.version} written to {result.bundle_dir} ({headline}; {method}); report: report.html")
    return 0


def register(sub: Any) -> None:
    """Add `shelfwatch train`."""
    p = sub.add_parser("train", help="train a model from a dataset and write a signed bundle")
    p.add_argument("--data", required=True, help="dataset folder (or annotations file for coco/csv)")
    p.add_argument("--format", default=None, help="coco, yolo, voc, folders or csv (default: detect)")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--out", required=True, help="bundle directory to write (new, empty, or an older bundle)")
    p.add_argument(
        "--backbone",
        default=None,
        choices=BACKBONES,
        help=f"default: the backbone a --weights FILE belongs to, else {DEFAULT_BACKBONE} (ImageNet weights via pip)",
    )
    p.add_argument(
        "--weights",
        default="imagenet",
        help="a .pth/.npz state dict, 'imagenet' (published torchvision file, cached) or 'none' (random init)",
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: early stopping on validation)")
    p.add_argument("--signing-key", default=None, help="ed25519 private key (PEM); default: keys/ beside --out")
    p.add_argument("--seed", type=int, default=0, help="random seed (same data + seed = same model)")
    p.add_argument("--name", default="shelfwatch", help="model name in the manifest")
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help=(
            "square network input size (default: classification 384 with efficientnet_lite0, zone crops their own "
            "shape at ~98k pixels, 224 for other backbones; detection: the detector's own)"
        ),
    )
    p.add_argument("--zones", default=None, help="YAML/JSON list of zones (id, polygon): train on zone crops")
    p.add_argument("--alert-label", action="append", default=[], help="a label meaning low stock (repeatable)")
    p.add_argument("--min-per-label", type=int, default=10, help="refuse labels with fewer images (default 10)")
    p.add_argument(
        "--fine-tune",
        choices=["auto", "on", "off"],
        default="auto",
        help="also train the backbone's last modules (auto: classification when every label has 100+ training images; "
        "detection from 50 photos on, its stride-16 stage)",
    )
    p.add_argument(
        "--evaluation",
        choices=["auto", "kfold", "holdout"],
        default="auto",
        help="how to measure the model (auto: k-fold cross-validation below 50 photos, unless the dataset has "
        "its own test split)",
    )
    p.add_argument("--folds", type=int, default=None, help="k of k-fold (default 5 for classification, 3 detection)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="export an INT8 OpenVINO model (NNCF), shipped only when within 1 point of FP32 "
        "(default: when NNCF is installed; --no-int8 skips it)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_train)
