"""Fixtures of the model-assisted labelling tests: a real store, a real model repository with tiny signed bundles
(onnx.helper graphs run by real onnxruntime), and the real web app over them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from flask import Flask

from edge.config import EdgeConfig, ModelConfig
from edge.model_repository import ModelRepository
from edge.store import DatasetStore
from edge.web import Services, create_app
from tests.helpers.tiny_bundle import make_classification_bundle, make_detection_bundle
from tests.web.conftest import SignedIn, create_admin


@dataclass
class Bundles:
    keys: Path
    plain: Path  # red/green classifier without an embedding output
    embedded: Path  # the same with `embedding`
    detector: Path  # empty/stocked darkness detector


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    root = tmp_path_factory.mktemp("assist-bundles")
    keys = root / "keys"
    plain = make_classification_bundle(root, version="cls-plain", key_dir=keys, openvino=False)
    embedded = make_classification_bundle(root, version="cls-emb", key_dir=keys, openvino=False, embedding=True)
    detector = make_detection_bundle(root, version="det-1", key_dir=keys, openvino=False)
    return Bundles(plain.public_key, plain.bundle_dir, embedded.bundle_dir, detector.bundle_dir)


@dataclass
class Rig:
    app: Flask
    store: DatasetStore
    models: ModelRepository
    admin: SignedIn


@contextlib.contextmanager
def open_rig(data_dir: Path, bundles: Bundles) -> Iterator[Rig]:
    config = EdgeConfig(data_dir=data_dir, model=ModelConfig(engine="onnxruntime", threads=1))
    store = DatasetStore(data_dir)
    models = ModelRepository(data_dir / "models", [str(bundles.keys)])
    app = create_app(config, Services(store=store, models=models))
    app.config["TESTING"] = True
    try:
        yield Rig(app, store, models, create_admin(app.test_client()))
    finally:
        app.extensions["shelfwatch.stopping"].set()
        store.close()


@pytest.fixture
def rig(tmp_path: Path, bundles: Bundles) -> Iterator[Rig]:
    with open_rig(tmp_path / "data", bundles) as fresh:
        yield fresh


def colour_jpeg(bgr: tuple[int, int, int], seed: int, width: int = 64, height: int = 48) -> bytes:
    """A JPEG of one colour with noise (distinct bytes and perceptual hash per seed)."""
    rng = np.random.default_rng(seed)
    image = np.clip(np.array(bgr, dtype=np.float32) + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    # a seeded pattern of dark stripes makes each image's dHash different
    for x in rng.choice(width, size=6, replace=False):
        image[:, x : x + 3] //= 3
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


RED = (30, 30, 220)  # BGR
GREEN = (30, 220, 30)
