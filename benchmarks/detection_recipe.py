"""Detection recipe search on empty_shelf by cross-validation over photos (docs/TRAINING.md, detection table).

Every variant is scored by grouped k-fold cross-validation over a set of photos, folds and validation carved as
the pipeline carves them (trainer.crossval), each fold's detector trained by train_detector on the frozen trunk's
cached views (trainer.detection.views) and scored on its test photos through the device decode; the mean over
folds is what the pipeline reports.

    # the 15 training photos of the 15-photo benchmark's seed S (3-fold CV on them: never its 69 test photos)
    .venv/bin/python benchmarks/detection_recipe.py --photos 15 --seed 0 --folds 3 epochs=20 lr=0.005
    # all 84 photos, 5-fold (what --all-kfold reports), two of the folds only
    .venv/bin/python benchmarks/detection_recipe.py --photos 84 --seed 0 --folds 5 --only 1 2 max_steps=600

A variant is `field=value` pairs of DetectorConfig (`aug.field=value` for its AugmentConfig); without pairs, the
defaults. The cached views of a (photos, seed, input size, cut, views) are kept in --cache-dir between runs.
Prints one JSON line per variant.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.train_detection import DATASET, read_empty_shelf  # noqa: E402
from edge.datasets.model import Sample  # noqa: E402


def photos_for(samples: list[Sample], photos: int, seed: int) -> list[Sample]:
    """One copy of each photo, picked as train_detection.py picks them: the 15-photo benchmark's training photos of
    `seed` for photos=15, every photo (one copy each) for photos=84."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[Path(s.name).name.split("_jpg.rf.")[0]].append(s)
    rng = random.Random(seed)
    if photos >= len(groups):
        return [rng.choice(sorted(groups[k], key=lambda s: s.name)) for k in sorted(groups)]
    from benchmarks.train_detection import split_by_photo

    return split_by_photo(samples, photos, seed)[0]


def parse_variant(pairs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """DetectorConfig and AugmentConfig overrides from field=value pairs."""
    from trainer.detection import AugmentConfig, DetectorConfig

    kinds = {f.name: f.type for f in fields(DetectorConfig)} | {f"aug.{f.name}": f.type for f in fields(AugmentConfig)}
    cfg: dict[str, Any] = {}
    aug: dict[str, Any] = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        if key not in kinds:
            raise SystemExit(f"unknown field {key}")
        parsed: Any = None if value == "None" else (float(value) if "." in value or "e" in value else int(value))
        (aug if key.startswith("aug.") else cfg)[key.removeprefix("aug.")] = parsed
    return cfg, aug


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--only", type=int, nargs="*", help="run only these folds (1-based)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--copies",
        choices=["one", "all"],
        default="one",
        help="train on one copy of each training photo (default) or on all its augmented copies; the test photos "
        "are one copy each either way, and no copy of a test photo is ever trained on",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="also score each fold's detector with the test-time flip (Detector.tta_flip): the same trained model, so "
        "the pair shows what the flip alone gives",
    )
    parser.add_argument(
        "--nms",
        type=float,
        nargs="*",
        default=[],
        help="also score each fold's detector at these per-class NMS IoUs (the recipe's own: DetectorConfig.nms_iou): "
        "the same trained model, so information on the decode alone",
    )
    parser.add_argument("--cache-dir", type=Path, default=REPO / "bench-out" / "detection-views")
    parser.add_argument("variant", nargs="*")
    args = parser.parse_args()
    import torch

    from trainer.crossval import carve_validation, kfold_splits
    from trainer.data import group_key
    from trainer.detection import DetectorConfig, detection_metrics, train_detector
    from trainer.detection.augment import AugmentConfig
    from trainer.detection.views import ViewCache, views_for
    from trainer.weight_signatures import resolve_backbone

    torch.set_num_threads(args.threads)
    labels, samples = read_empty_shelf(DATASET)
    items = photos_for(samples, args.photos, args.seed)
    overrides, aug = parse_variant(args.variant)
    backbone = resolve_backbone(None, "imagenet")
    cfg = replace(
        DetectorConfig(seed=args.seed, backbone=backbone), **overrides, augment=replace(AugmentConfig(), **aug)
    )
    groups = [group_key(s.name) for s in items]
    copies: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        copies[group_key(s.name)].append(s)
    strata = [0] * len(items)
    test_folds = kfold_splits(groups, strata, args.folds, args.seed)

    views = views_for(len(items) * (3 if args.copies == "all" else 1), cfg)
    cache = ViewCache(ViewCache.key_for(backbone, "imagenet", cfg), list(labels), views)
    stored = args.cache_dir / (
        f"p{args.photos}{'c' if args.copies == 'all' else ''}-s{args.seed}-"
        f"{cfg.input_size}-ft{cfg.fine_tune_blocks}-v{views}-r{cfg.center_radius}-n.pt"  # -n: views seeded by name
    )
    if aug == {} and stored.is_file():
        saved = torch.load(stored, weights_only=False)
        cache.features, cache.tap16, cache.targets, cache.photos = saved
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for f, test in enumerate(test_folds, start=1):
        if args.only and f not in args.only:
            continue
        held = set(test)
        others = [i for i in range(len(items)) if i not in held]
        train, val = carve_validation(others, groups, strata, args.seed + f)
        train_items = [items[i] for i in train]
        if args.copies == "all":
            train_items = [c for i in train for c in sorted(copies[groups[i]], key=lambda s: s.name)]
        model, info = train_detector(
            train_items, [items[i] for i in val], labels, backbone, "imagenet", cfg, cache=cache
        )
        if aug == {} and not stored.is_file() and len(cache.photos) >= len(items):
            stored.parent.mkdir(parents=True, exist_ok=True)
            torch.save((cache.features, cache.tap16, cache.targets, cache.photos), stored)
        test_samples = [items[i] for i in test]
        cache.fill(model, test_samples, cfg, 1)
        predictions = cache.predict(model, test_samples, nms_iou=cfg.nms_iou)
        truth = [s.boxes for s in test_samples]
        metrics = detection_metrics(predictions, truth, labels)
        rows.append({"fold": f, "map50": metrics["map50"], "map50_95": metrics["map50_95"], "epochs": info["epochs"]})
        if args.tta:
            model.tta_flip = True
            flipped = detection_metrics(cache.predict(model, test_samples, nms_iou=cfg.nms_iou), truth, labels)
            model.tta_flip = False
            rows[-1] |= {"map50_tta": flipped["map50"], "map50_95_tta": flipped["map50_95"]}
        for iou in args.nms:
            swept = detection_metrics(cache.predict(model, test_samples, nms_iou=iou), truth, labels)
            rows[-1] |= {f"map50_nms{iou:g}": swept["map50"], f"map50_95_nms{iou:g}": swept["map50_95"]}
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {
        "photos": len(items),
        "seed": args.seed,
        "folds": args.folds,
        "only": args.only,
        "variant": args.variant,
        "copies": args.copies,
        "map50": statistics.fmean(r["map50"] for r in rows),
        "map50_95": statistics.fmean(r["map50_95"] for r in rows),
        **(
            {
                "map50_tta": statistics.fmean(r["map50_tta"] for r in rows),
                "map50_95_tta": statistics.fmean(r["map50_95_tta"] for r in rows),
            }
            if args.tta
            else {}
        ),
        **{
            f"{k}_nms{iou:g}": statistics.fmean(r[f"{k}_nms{iou:g}"] for r in rows)
            for iou in args.nms
            for k in ("map50", "map50_95")
        },
        "per_fold": rows,
        "seconds": round(time.perf_counter() - started, 1),
        "load": os.getloadavg()[0],
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
