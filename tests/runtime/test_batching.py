"""Batched inference (edge.runtime.batching): merged calls give one-by-one outputs; a stopped caller holds nobody.

Real ONNX Runtime and OpenVINO engines on the tiny bundles; no assertion on timings (timeouts only bound a hang).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edge.bundle import ONNX_FILE, OPENVINO_XML, read_manifest
from edge.errors import EngineError
from edge.runtime.batching import BatchingEngine
from edge.runtime.engines import open_engine
from edge.runtime.postprocess import Detection
from edge.runtime.wrappers import ClassificationModel, DetectionModel, load_model
from tests.helpers.tiny_bundle import TinyBundle
from tests.helpers.waiting import wait_until

ENGINES = [("onnxruntime", ONNX_FILE), ("openvino", OPENVINO_XML)]


def _tensors(count: int, rows: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((rows, 3, size, size), dtype=np.float32) for _ in range(count)]


@pytest.mark.parametrize(("kind", "file"), ENGINES)
def test_merged_call_equals_one_by_one(kind: str, file: str, det_bundle: TinyBundle) -> None:
    plain = open_engine(kind, det_bundle.bundle_dir / file, threads=1)
    batching = BatchingEngine(open_engine(kind, det_bundle.bundle_dir / file, threads=1), budget_ms=5.0)
    size = read_manifest(det_bundle.bundle_dir).input.height
    requests = _tensors(5, 1, size) + _tensors(2, 3, size, seed=1)  # frames and zone-crop stacks mixed
    with batching.held():
        futures = [batching.submit({"input": t}) for t in requests]
    results = [f.result(timeout=30) for f in futures]
    assert batching.stats.calls == 1 and batching.stats.largest_call == len(requests)  # really one engine call
    assert batching.stats.rows == 11
    for tensor, got in zip(requests, results, strict=True):
        want = plain.infer({"input": tensor})
        assert set(got) == set(want)
        for name in want:
            assert got[name].shape == want[name].shape
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["onnxruntime", "openvino"])
def test_wrappers_on_threads_batch_and_match(kind: str, cls_bundle: TinyBundle) -> None:
    """Cameras' zone crops from several threads through the model wrapper: same labels and scores as alone."""
    model = load_model(cls_bundle.bundle_dir, engine=kind, threads=1, batch_budget_ms=20.0)
    alone = load_model(cls_bundle.bundle_dir, engine=kind, threads=1, batch_budget_ms=None)
    assert isinstance(model, ClassificationModel) and isinstance(model.engine, BatchingEngine)
    assert not isinstance(alone.engine, BatchingEngine)
    rng = np.random.default_rng(3)
    crops = {cam: [rng.integers(0, 256, (40, 30 + 7 * i, 3), dtype=np.uint8) for i in range(4)] for cam in range(4)}
    got: dict[int, list[dict[str, float]]] = {}
    start = threading.Barrier(4)

    def camera(cam: int) -> None:
        start.wait(timeout=30)
        for _ in range(5):
            got[cam] = [r.label_scores for r in model.predict_batch(crops[cam])]

    threads = [threading.Thread(target=camera, args=(cam,)) for cam in crops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert model.engine.stats.requests == 20
    for cam, images in crops.items():
        want = [r.label_scores for r in alone.predict_batch(images)]
        for g, w in zip(got[cam], want, strict=True):
            assert g == pytest.approx(w, abs=1e-5)


def test_detection_wrapper_batches_frames(det_bundle: TinyBundle) -> None:
    model = load_model(det_bundle.bundle_dir, engine="onnxruntime", threads=1)
    alone = load_model(det_bundle.bundle_dir, engine="onnxruntime", threads=1, batch_budget_ms=None)
    assert isinstance(model, DetectionModel) and isinstance(model.engine, BatchingEngine)
    frame = np.full((48, 64, 3), 230, dtype=np.uint8)
    frame[:, :30] = 0  # dark left half: label "empty" there
    results: list[list[Detection]] = []
    with model.engine.held():
        threads = [threading.Thread(target=lambda: results.append(model.predict(frame))) for _ in range(3)]
        for t in threads:
            t.start()
        assert wait_until(lambda: model.engine.queued() == 3, timeout=30)
    for t in threads:
        t.join(timeout=30)
    want = [(d.label, round(d.score, 4)) for d in alone.predict(frame)]
    assert want and want[0][0] == "empty"
    assert model.engine.stats.calls == 1 and model.engine.stats.largest_call == 3
    assert [[(d.label, round(d.score, 4)) for d in got] for got in results] == [want] * 3


def test_stopped_camera_does_not_hold_the_batch(det_bundle: TinyBundle) -> None:
    """Two cameras in step share calls; camera A's frames stop; B goes on although the budget is two minutes."""
    engine = BatchingEngine(open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1), budget_ms=120_000)
    size = read_manifest(det_bundle.bundle_dir).input.height
    frame = _tensors(1, 1, size)[0]
    in_step = threading.Barrier(2)
    b_done: list[int] = []
    errors: list[BaseException] = []

    def camera(name: str, frames: int) -> None:
        try:
            for i in range(frames):
                if i < 4:
                    in_step.wait(timeout=30)
                engine.submit({"input": frame}).result(timeout=30)  # raises TimeoutError if held
                if name == "b":
                    b_done.append(i)
        except BaseException as err:
            errors.append(err)

    a = threading.Thread(target=camera, args=("a", 4))  # its frames stop after 4
    b = threading.Thread(target=camera, args=("b", 12))
    a.start(), b.start()
    a.join(timeout=60), b.join(timeout=90)
    assert not errors, errors
    assert b_done == list(range(12))
    assert engine.stats.requests == 16


def test_engine_error_reaches_every_caller_of_the_call(cls_bundle: TinyBundle) -> None:
    engine = BatchingEngine(open_engine("onnxruntime", cls_bundle.bundle_dir / ONNX_FILE, threads=1))
    bad = np.zeros((1, 3, 7, 7), dtype=np.float32)  # wrong spatial size for the model
    with engine.held():
        futures = [engine.submit({"input": bad}) for _ in range(2)]
    for f in futures:
        with pytest.raises(EngineError):
            f.result(timeout=30)
    with pytest.raises(EngineError, match="batch size"):
        engine.submit({"input": bad, "other": np.zeros((2, 1), dtype=np.float32)})
