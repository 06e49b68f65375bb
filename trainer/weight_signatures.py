"""Which backbone a weights file belongs to, from a few key names and shapes, without importing torch for .npz.

The trainer API uses it while queueing a job (a job that names no backbone but whose configured weights are a
SqueezeNet file trains SqueezeNet), and weight loading uses it to refuse another backbone's file in one sentence
instead of a wall of missing and unexpected key names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# A key (and its shape) that only one backbone's state dict has.
SIGNATURES: dict[str, tuple[str, tuple[int, ...]]] = {
    "squeezenet1_1": ("features.0.weight", (64, 3, 3, 3)),
    "mobilenet_v3_small": ("features.0.0.weight", (16, 3, 3, 3)),
    "mobilenet_v3_large": ("features.16.0.weight", (960, 160, 1, 1)),
    "efficientnet_lite0": ("_conv_stem.weight", (32, 3, 3, 3)),
}
_KEYS = {key for key, _ in SIGNATURES.values()}
_NOT_FILES = {"", "none", "random", "imagenet"}


def owner_of_shapes(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """The backbone whose signature key and shape appear in `shapes` (key -> shape), if exactly one does."""
    owners = [name for name, (key, shape) in SIGNATURES.items() if tuple(shapes.get(key, ())) == shape]
    if "mobilenet_v3_large" in owners:  # the large net has the small one's 16x3x3x3 stem too
        owners = ["mobilenet_v3_large"]
    return owners[0] if len(owners) == 1 else None


def backbone_of_file(path: Path) -> str | None:
    """The backbone a .npz/.pth weights file belongs to (None: unreadable or not recognisable)."""
    path = Path(path).expanduser()
    if not path.is_file():
        return None
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return owner_of_shapes({k: tuple(arrays[k].shape) for k in arrays.files if k in _KEYS})
        except (OSError, ValueError):
            return None
    from trainer.errors import WeightsError
    from trainer.weights import read_state_dict  # torch: only for .pth files

    try:
        state = read_state_dict(path)
    except WeightsError:
        return None
    return owner_of_shapes({k: tuple(v.shape) for k, v in state.items() if k in _KEYS})


def resolve_backbone(backbone: str | None, weights: str | Path | None) -> str:
    """The backbone to train: the one named, else the one a weights file belongs to, else the default.

    So `--weights squeezenet.npz` (or trainer.yaml `training.weights: squeezenet.npz`) without a backbone trains
    SqueezeNet instead of refusing the file for the default EfficientNet-Lite0.
    """
    from edge.vocabulary import DEFAULT_BACKBONE

    if backbone:
        return backbone
    if weights is not None and str(weights).strip().lower() not in _NOT_FILES:
        owner = backbone_of_file(Path(weights))
        if owner is not None:
            return owner
    return DEFAULT_BACKBONE
