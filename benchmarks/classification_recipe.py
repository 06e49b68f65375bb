"""What the few-shot classification recipe was chosen from: backbone, input size, pooling, views, head, on grocery5.

Every candidate is scored the same way: K images per class drawn from grocery5 `train/` (numpy default_rng(seed)
over the class's images sorted by file name, as benchmarks/train_classification.py draws them), the head fitted
on those only, accuracy on all 105 photos of `test/` (other visits; never used to choose anything inside a run:
the L2 strength of the logistic regression is chosen by cross-validation on the K images per class). Median over
seeds. This prints the table in docs/TRAINING.md.

Embeddings come from the project's own code (trainer.classify.Embedder through ONNX Runtime, the device's
preprocessing), and are cached per backbone and size under bench-out/features/ so a rerun costs seconds:

    .venv/bin/python benchmarks/classification_recipe.py [--seeds 0 1 2 3 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GROCERY = REPO.parent / "shared" / "datasets" / "grocery5"
SQUEEZENET = REPO.parent / "shared" / "weights" / "squeezenet1_1_torchvision" / "squeezenet1_1_imagenet_norm_fp32.npz"
CACHE = REPO / "bench-out" / "features"
AUG_VIEWS = 2  # augmented views per train/ image besides plain and flipped


def _grocery() -> tuple[list[str], list[tuple[Path, int, str, str]]]:
    """(labels, [(path, label index, split, name)]) of grocery5 through the project's folder reader."""
    from edge.datasets.formats import read_dataset

    ds = read_dataset(GROCERY, "folders")
    labels = list(ds.label_names)
    rows = [(Path(s.path), labels.index(s.tags[0]), s.split or "", s.name) for s in ds.samples]
    return labels, sorted(rows, key=lambda r: r[3])


def features(backbone: str, size: int, rows: list[tuple[Path, int, str, str]], threads: int | None) -> np.ndarray:
    """[N, V, D] avg+max pooled embeddings: views plain, h-flipped, then AUG_VIEWS augmentations (train/ only)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"grocery5-{backbone}-{size}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape[0] == len(rows):
            return cached
    from trainer.backbones import build_backbone
    from trainer.classify import Embedder, embed_images, input_spec_for
    from trainer.data import augment, load_image

    weights = str(SQUEEZENET) if backbone == "squeezenet1_1" else "imagenet"
    embedder = Embedder(build_backbone(backbone, weights), "avgmax").eval()
    spec = input_spec_for(backbone, size)
    views = 2 + AUG_VIEWS
    out = np.zeros((len(rows), views, embedder.dim), np.float32)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, len(rows), 16):
            images = []
            for i, (p, _, _, _) in enumerate(rows[start : start + 16], start):
                im = load_image(p)
                rng = np.random.default_rng(1000 + i)
                images += [im, im[:, ::-1].copy(), *(augment(im, rng) for _ in range(AUG_VIEWS))]
            emb = embed_images(embedder, images, spec, onnx_dir=Path(tmp), threads=threads)
            out[start : start + len(emb) // views] = emb.reshape(-1, views, embedder.dim)
    print(f"embedded {len(rows)} x {views} views, {backbone} {size}px in {time.monotonic() - started:.0f}s")
    np.save(path, out)
    return out


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
    args = parser.parse_args()
    if not GROCERY.is_dir():
        print(f"{GROCERY} is absent: this benchmark needs the shared datasets", file=sys.stderr)
        return 2
    from trainer.classify import fit_logistic_head

    labels, rows = _grocery()
    y_all = np.array([r[1] for r in rows])
    test = np.array([i for i, r in enumerate(rows) if r[2] == "test"])
    # (name, backbone, size, pooling, training views, C or None = chosen by CV, test-time flip)
    candidates = [
        ("SqueezeNet 224, avg, plain", "squeezenet1_1", 224, "avg", [0], None, False),
        ("SqueezeNet 224, avg+max, +flip", "squeezenet1_1", 224, "avgmax", [0, 1], None, False),
        ("Lite0 224, avg, plain", "efficientnet_lite0", 224, "avg", [0], None, False),
        ("Lite0 224, avg+max, +flip", "efficientnet_lite0", 224, "avgmax", [0, 1], None, False),
        ("Lite0 320, avg+max, +flip", "efficientnet_lite0", 320, "avgmax", [0, 1], None, False),
        ("Lite0 384, avg, +flip", "efficientnet_lite0", 384, "avg", [0, 1], None, False),
        ("Lite0 384, avg+max, plain", "efficientnet_lite0", 384, "avgmax", [0], None, False),
        ("Lite0 384, avg+max, +flip", "efficientnet_lite0", 384, "avgmax", [0, 1], None, False),
        ("Lite0 384, avg+max, +flip, fixed C=1", "efficientnet_lite0", 384, "avgmax", [0, 1], 1.0, False),
        ("Lite0 384, avg+max, +flip, fixed C=0.01", "efficientnet_lite0", 384, "avgmax", [0, 1], 0.01, False),
        ("Lite0 384, avg+max, +flip +2 augmented", "efficientnet_lite0", 384, "avgmax", [0, 1, 2, 3], None, False),
        ("Lite0 384, avg+max, +flip, flip at test too", "efficientnet_lite0", 384, "avgmax", [0, 1], None, True),
        ("Lite0 448, avg+max, +flip", "efficientnet_lite0", 448, "avgmax", [0, 1], None, False),
    ]
    table = []
    for name, backbone, size, pooling, views, c_fixed, tta in candidates:
        feats = features(backbone, size, rows, args.threads)
        if pooling == "avg":
            feats = feats[..., : feats.shape[-1] // 2]
        result: dict[str, object] = {"recipe": name}
        for per_class in (5, 15):
            accs, cs = [], []
            for seed in args.seeds:
                idx = draw(rows, len(labels), per_class, seed)
                x = feats[idx][:, views].reshape(-1, feats.shape[-1])
                y = np.repeat(y_all[idx], len(views))
                groups = np.repeat(np.arange(len(idx)), len(views))
                fit = fit_logistic_head(x, y, groups, len(labels), seed=seed, c=c_fixed)
                probs = fit.predict_proba(feats[test][:, 0])
                if tta:
                    probs = (probs + fit.predict_proba(feats[test][:, 1])) / 2
                accs.append(float((probs.argmax(1) == y_all[test]).mean()))
                cs.append(fit.c)
            result[f"acc_{per_class}"] = round(statistics.median(accs), 3)
            result[f"min_{per_class}"] = round(min(accs), 3)
            result[f"C_{per_class}"] = statistics.median(cs)
        print(json.dumps(result), flush=True)
        table.append(result)
    print("\n| recipe | 5/class median (min) | 15/class median (min) |\n|---|---|---|")
    for r in table:
        print(f"| {r['recipe']} | {r['acc_5']:.3f} ({r['min_5']:.3f}) | {r['acc_15']:.3f} ({r['min_15']:.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
