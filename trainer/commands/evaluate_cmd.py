"""`shelfwatch evaluate`: evaluate a bundle on any dataset with the exported model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a bundle's model on a dataset and print the metrics (JSON with --json)."""
    from trainer.commands._common import read_zones
    from trainer.evaluate import evaluate_bundle

    result = evaluate_bundle(
        Path(args.bundle),
        Path(args.data),
        args.format,
        engine=args.engine,
        zones=read_zones(args.zones),
        trusted_key=args.key,
        target_precision=args.target_precision,
    )
    if args.json:
        from edge.cli import print_json

        print_json(result)
    elif result["task"] == "classification":
        print(f"{result['samples']} samples: accuracy {result['accuracy']:.3f}, macro F1 {result['macro_f1']:.3f}")
        for name, v in result["per_label"].items():
            print(f"  {name}: precision {v['precision']:.3f} recall {v['recall']:.3f} f1 {v['f1']:.3f}")
    else:
        print(", ".join(f"{k} {result[k]:.3f}" for k in ("map50", "map50_95", "precision", "recall", "f1")))
    return 0


def register(sub: Any) -> None:
    """Add `shelfwatch evaluate`."""
    p = sub.add_parser("evaluate", help="evaluate a bundle on a dataset with its exported model")
    p.add_argument("--bundle", required=True, help="bundle directory")
    p.add_argument("--data", required=True, help="dataset folder (or annotations file for coco/csv)")
    p.add_argument("--format", default=None, help="coco, yolo, voc, folders or csv (default: detect)")
    p.add_argument("--engine", default="onnxruntime", choices=["onnxruntime", "openvino"])
    p.add_argument("--zones", default=None, help="YAML/JSON zones: evaluate zone crops (classification)")
    p.add_argument("--key", default=None, help="verify the bundle's signature against this public key first")
    p.add_argument("--target-precision", type=float, default=0.9, help="precision the suggested threshold aims at")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_evaluate)
