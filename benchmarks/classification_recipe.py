"""What the few-shot classification recipe was chosen from: backbone, input size, pooling, views, head, on grocery5.

Every candidate is scored the same way: K images per class drawn from grocery5 `train/` (numpy default_rng(seed)
over the class's images sorted by file name, as benchmarks/train_classification.py draws them), the head fitted
on those only, accuracy on all 105 photos of `test/` (other visits; never used to choose anything inside a run:
the L2 strength of the logistic regression is chosen by cross-validation on the K images per class). Median over
seeds. This prints the table in docs/TRAINING.md.

Pooled layer outputs come from the project's backbones through the device's preprocessing, and are cached per
backbone and size under bench-out/features/ so a rerun costs seconds (a first run embeds 348 photos x 2 views at
5 sizes: about 10 minutes on two busy cores):

    .venv/bin/python benchmarks/classification_recipe.py [--seeds 0 1 2 3 4] [--threads 2] [--only 'views']
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GROCERY = REPO.parent / "shared" / "datasets" / "grocery5"
SQUEEZENET = REPO.parent / "shared" / "weights" / "squeezenet1_1_torchvision" / "squeezenet1_1_imagenet_norm_fp32.npz"
CACHE = REPO / "bench-out" / "features"


def _grocery() -> tuple[list[str], list[tuple[Path, int, str, str]]]:
    """(labels, [(path, label index, split, name)]) of grocery5 through the project's folder reader."""
    from edge.datasets.formats import read_dataset

    ds = read_dataset(GROCERY, "folders")
    labels = list(ds.label_names)
    rows = [(Path(s.path), labels.index(s.tags[0]), s.split or "", s.name) for s in ds.samples]
    return labels, sorted(rows, key=lambda r: r[3])


def _cached(path: Path, rows: list[tuple[Path, int, str, str]]) -> dict[str, np.ndarray] | None:
    """The feature arrays saved at `path` when they cover `rows` (else None: compute them); makes the cache folder."""
    CACHE.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        cached = dict(np.load(path))
        if all(len(v) == len(rows) for v in cached.values()):
            return cached
    return None


def features(backbone: str, size: int, rows: list[tuple[Path, int, str, str]], threads: int) -> dict[str, np.ndarray]:
    """Pooled outputs [N, 2 views (plain, mirrored), D] of the layers the candidates combine, cached on disk.

    EfficientNet-Lite0: `head` (after ReLU6, what its ImageNet classifier pools) avg and max, `pre` (the head
    before ReLU6) avg and max, `b15` (the last block, 320 channels) avg. SqueezeNet: `trunk` avg and max.
    Images go through the device's preprocessing at the backbone's input spec.
    """
    import torch

    from edge.runtime.preprocess import preprocess
    from trainer.backbones import build_backbone
    from trainer.classify import input_spec_for
    from trainer.data import load_image

    path = CACHE / f"grocery5-{backbone}-{size}-v2.npz"
    cached = _cached(path, rows)
    if cached is not None:
        return cached
    torch.set_num_threads(threads)
    weights = str(SQUEEZENET) if backbone == "squeezenet1_1" else "imagenet"
    model = build_backbone(backbone, weights).eval()
    spec = input_spec_for(backbone, size)
    out: dict[str, list[np.ndarray]] = {}

    def keep(name: str, a: torch.Tensor) -> None:
        for how, pooled in (("avg", a.mean((2, 3))), ("max", a.amax((2, 3)))):
            out.setdefault(f"{name}_{how}", []).append(pooled.reshape(-1, 2, a.shape[1]).numpy())

    started = time.monotonic()
    with torch.no_grad():
        for start in range(0, len(rows), 16):
            images = []
            for p, *_ in rows[start : start + 16]:
                im = load_image(p)
                images += [im, np.ascontiguousarray(im[:, ::-1])]
            x = torch.from_numpy(preprocess(images, spec)[0])
            if backbone == "efficientnet_lite0":
                b15 = model.features[:17](x)
                pre = model.features[17](b15)  # the head before its ReLU6
                keep("b15", b15)
                keep("pre", pre)
                keep("head", pre.clamp(0, 6))
            else:
                keep("trunk", model.features(x))
    print(f"embedded {len(rows)} x 2 views, {backbone} {size}px in {time.monotonic() - started:.0f}s", flush=True)
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return arrays


def multi_view_features(rows: list[tuple[Path, int, str, str]], threads: int) -> dict[str, np.ndarray]:
    """Lite0 384 `pre_avg` and `b15_avg` [N, 8 views, D] of the production views (trainer.classify.training_views:
    image, mirror, six fixed crops), embedded through ONNX Runtime as a run does; cached on disk."""
    import onnxruntime as ort
    import torch
    from torch import nn

    from edge.runtime.preprocess import preprocess
    from trainer.backbones import build_backbone
    from trainer.classify import MULTI_CROP_VIEWS, input_spec_for, training_views
    from trainer.data import load_image
    from trainer.export import export_onnx

    path = CACHE / f"grocery5-efficientnet_lite0-384-views{MULTI_CROP_VIEWS}.npz"
    cached = _cached(path, rows)
    if cached is not None:
        return cached
    features = build_backbone("efficientnet_lite0", "imagenet").eval().features

    class Taps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = features  # registered: its weights are the ONNX file's, not traced constants

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            b15 = self.features[:17](x)
            return self.features[17](b15).mean((2, 3)), b15.mean((2, 3))

    spec = input_spec_for("efficientnet_lite0", 384)
    onnx = export_onnx(Taps().eval(), CACHE / "taps.onnx", 384, ["pre_avg", "b15_avg"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)  # unused below 9 views: the views are fixed
    out: dict[str, list[np.ndarray]] = {"pre_avg": [], "b15_avg": []}
    started = time.monotonic()
    for start in range(0, len(rows), 4):
        images = [v for p, *_ in rows[start : start + 4] for v in training_views(load_image(p), MULTI_CROP_VIEWS, rng)]
        for name, value in zip(out, session.run(None, {"input": preprocess(images, spec)[0]}), strict=True):
            out[name].append(value.reshape(-1, MULTI_CROP_VIEWS, value.shape[1]))
    print(f"embedded {len(rows)} x {MULTI_CROP_VIEWS} views in {time.monotonic() - started:.0f}s", flush=True)
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return arrays


MV = "efficientnet_lite0 multi-view"  # candidates on multi_view_features


def _block(pooled: dict[str, np.ndarray], name: str) -> np.ndarray:
    """One pooled block; `name/l2` L2-normalises each view's vector."""
    key, _, how = name.partition("/")
    block = pooled[key]
    return block / np.linalg.norm(block, axis=-1, keepdims=True) if how == "l2" else block


def draw(rows: list[tuple[Path, int, str, str]], n_labels: int, per_class: int, seed: int) -> np.ndarray:
    """Indices of `per_class` random train/ images per label (the benchmark's draw)."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in range(n_labels):
        pool = [i for i, r in enumerate(rows) if r[1] == label and r[2] == "train"]
        chosen += [pool[j] for j in rng.choice(len(pool), per_class, replace=False)]
    return np.array(chosen)


def main() -> int:
    """Score every candidate and print one JSON line each, then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="score only the recipes whose name contains this")
    args = parser.parse_args()
    if not GROCERY.is_dir():
        print(f"{GROCERY} is absent: this benchmark needs the shared datasets", file=sys.stderr)
        return 2
    from trainer.classify import fit_logistic_head

    labels, rows = _grocery()
    y_all = np.array([r[1] for r in rows])
    test = np.array([i for i, r in enumerate(rows) if r[2] == "test"])
    sq, lite = "squeezenet1_1", "efficientnet_lite0"
    both = ["head_avg", "head_max"]
    pb, l2 = ["pre_avg", "b15_avg"], ["pre_avg/l2", "b15_avg/l2"]
    # (name, backbone, size, pooled blocks, training views, C (None: by CV), CV rule)
    candidates = [
        ("SqueezeNet 224, avg, plain", sq, 224, ["trunk_avg"], [0], None, "min"),
        ("SqueezeNet 224, avg+max, +mirror", sq, 224, ["trunk_avg", "trunk_max"], [0, 1], None, "min"),
        ("Lite0 224, avg, plain", lite, 224, ["head_avg"], [0], None, "min"),
        ("Lite0 224, avg+max, +mirror", lite, 224, both, [0, 1], None, "min"),
        ("Lite0 320, avg+max, +mirror", lite, 320, both, [0, 1], None, "min"),
        ("Lite0 384, avg, plain", lite, 384, ["head_avg"], [0], None, "min"),
        ("Lite0 384, avg, +mirror", lite, 384, ["head_avg"], [0, 1], None, "min"),
        ("Lite0 384, avg+max, +mirror", lite, 384, both, [0, 1], None, "min"),
        ("Lite0 448, avg+max, +mirror", lite, 448, both, [0, 1], None, "min"),
        ("Lite0 384, head before ReLU6 avg, +mirror", lite, 384, ["pre_avg"], [0, 1], None, "min"),
        ("Lite0 384, head avg + last block avg, +mirror", lite, 384, ["head_avg", "b15_avg"], [0, 1], None, "min"),
        (
            "Lite0 384, pre-ReLU6 head avg + last block avg, +mirror",
            lite,
            384,
            ["pre_avg", "b15_avg"],
            [0, 1],
            None,
            "min",
        ),
        ("  same, fixed C = 0.01", lite, 384, ["pre_avg", "b15_avg"], [0, 1], 0.01, "min"),
        ("  same, fixed C = 0.1", lite, 384, ["pre_avg", "b15_avg"], [0, 1], 0.1, "min"),
        ("  same, fixed C = 1", lite, 384, ["pre_avg", "b15_avg"], [0, 1], 1.0, "min"),
        ("  same, C by CV, one-standard-error rule", lite, 384, ["pre_avg", "b15_avg"], [0, 1], None, "1se"),
        ("  same, 3 views: + centre crop", MV, 384, pb, [0, 1, 2], None, "1se"),
        ("  same, 4 views: + centre crops of image and mirror", MV, 384, pb, [0, 1, 2, 3], None, "1se"),
        ("  same, 6 views: + top-left, bottom-right crops", MV, 384, pb, list(range(6)), None, "1se"),
        ("  same, 8 views: + the mirror's corners (shipped, 25 photos)", MV, 384, pb, list(range(8)), None, "1se"),
        ("  same, 8 views, lowest-loss rule", MV, 384, pb, list(range(8)), None, "min"),
        ("  same, 8 views, each block L2-normalised", MV, 384, l2, list(range(8)), None, "1se"),
        ("  same, 2 views, each block L2-normalised", MV, 384, l2, [0, 1], None, "1se"),
        ("  same, 2 views (image + mirror) through ONNX Runtime", MV, 384, pb, [0, 1], None, "1se"),
    ]
    table = []
    for name, backbone, size, blocks, views, c_fixed, rule in candidates:
        if args.only not in name:
            continue
        pooled = (
            multi_view_features(rows, args.threads) if backbone == MV else features(backbone, size, rows, args.threads)
        )
        feats = np.concatenate([_block(pooled, b) for b in blocks], -1)
        result: dict[str, object] = {"recipe": name.strip()}
        for per_class in (5, 15):
            accs, cs = [], []
            for seed in args.seeds:
                idx = draw(rows, len(labels), per_class, seed)
                x = feats[idx][:, views].reshape(-1, feats.shape[-1])
                y = np.repeat(y_all[idx], len(views))
                groups = np.repeat(np.arange(len(idx)), len(views))
                fit = fit_logistic_head(x, y, groups, len(labels), seed=seed, c=c_fixed, rule=rule)
                probs = fit.predict_proba(feats[test][:, 0])
                accs.append(float((probs.argmax(1) == y_all[test]).mean()))
                cs.append(fit.c)
            result[f"acc_{per_class}"] = round(statistics.median(accs), 3)
            result[f"min_{per_class}"] = round(min(accs), 3)
            result[f"C_{per_class}"] = cs
        print(json.dumps(result), flush=True)
        table.append(result)
    print("\n| recipe | 5/class median (min) | 15/class median (min) |\n|---|---|---|")
    for r in table:
        print(f"| {r['recipe']} | {r['acc_5']:.3f} ({r['min_5']:.3f}) | {r['acc_15']:.3f} ({r['min_15']:.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
