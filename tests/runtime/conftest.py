"""Tiny real bundles shared by the runtime tests (built once per session: ONNX + OpenVINO IR each)."""

from __future__ import annotations

import pytest

from tests.helpers.tiny_bundle import TinyBundle, make_classification_bundle, make_detection_bundle


@pytest.fixture(scope="session")
def cls_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    """Classification red/green/blue by dominant channel."""
    return make_classification_bundle(tmp_path_factory.mktemp("rt-cls"), labels=("red", "green", "blue"))


@pytest.fixture(scope="session")
def det_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    """Detection of dark left/right halves, 64x64 letterbox."""
    return make_detection_bundle(tmp_path_factory.mktemp("rt-det"))


@pytest.fixture(scope="session")
def det_top_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    """Detection boxes in the top half of the network input: what a 2:1 image fills under letterbox."""
    return make_detection_bundle(
        tmp_path_factory.mktemp("rt-det-top"),
        boxes=((0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5)),
        version="tiny-det-top",
    )


@pytest.fixture(scope="session")
def det_overlap_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    """Two heavily overlapping boxes plus a separate one, stretch resize: NMS must merge the pair."""
    return make_detection_bundle(
        tmp_path_factory.mktemp("rt-det-nms"),
        boxes=((0.10, 0.10, 0.50, 0.90), (0.12, 0.10, 0.52, 0.90), (0.60, 0.10, 0.90, 0.90)),
        resize="stretch",
        version="tiny-det-nms",
    )
