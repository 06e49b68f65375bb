"""Batched inference (edge.runtime.batching): merged calls give one-by-one outputs; a stopped caller holds nobody.

Real ONNX Runtime and OpenVINO engines on the tiny bundles; no assertion on timings (timeouts only bound a hang).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from edge.bundle import ONNX_FILE, OPENVINO_XML, read_manifest
from edge.errors import EngineError
from edge.runtime.batching import MIN_SAMPLES, PROBE_EVERY, BatchingEngine, MergePolicy
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
def test_merged_call_equals_one_by_one(
    kind: str, file: str, det_bundle: TinyBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.runtime import engines

    monkeypatch.setattr(engines, "OV_MAX_ROWS", 16)  # OpenVINO's requests take the 11 rows at once (default 8)
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


@pytest.mark.parametrize("adaptive", [False, True])
def test_stopped_camera_does_not_hold_the_batch(det_bundle: TinyBundle, adaptive: bool) -> None:
    """Two cameras in step share calls; camera A's frames stop; B goes on although the budget is two minutes
    (adaptive=False: the service always merges and waits for expected callers, the case where holding could happen)."""
    inner = open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1)
    engine = BatchingEngine(inner, budget_ms=120_000, adaptive=adaptive)
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


def test_merge_policy_merges_only_while_merged_calls_are_cheaper_per_row() -> None:
    policy = MergePolicy()
    assert policy.merge() and policy.pays  # nothing measured: merge, to learn what a merged call costs
    for _ in range(MIN_SAMPLES):
        policy.record(requests=4, rows=16, ms=80.0)  # 5 ms per row merged
    assert not policy.merge()  # now learn what single calls cost
    for _ in range(MIN_SAMPLES):
        policy.record(requests=1, rows=4, ms=12.0)  # 3 ms per row alone
    assert not policy.pays and not policy.merge()  # merging costs more per row: one by one
    for _ in range(PROBE_EVERY - MIN_SAMPLES - 1):
        policy.record(requests=1, rows=4, ms=12.0)
        assert not policy.merge()
    policy.record(requests=1, rows=4, ms=12.0)
    assert policy.merge()  # a merged probe after PROBE_EVERY calls without one
    for _ in range(12):  # the load changed: merged calls became cheap
        policy.record(requests=4, rows=16, ms=16.0)  # 1 ms per row
    assert policy.pays and policy.merge()
    assert policy.as_dict()["merging"] is True and policy.as_dict()["single_row_ms"] == pytest.approx(3.0)
    assert policy.as_dict()["merged_row_ms"] < 3.0


class _CostedEngine:
    """A real engine whose calls cost a known extra time on top: `per_call_ms` + `per_row_ms` x rows of the call."""

    def __init__(self, inner: Any, per_call_ms: float, per_row_ms: float) -> None:
        self.inner, self.per_call_ms, self.per_row_ms = inner, per_call_ms, per_row_ms
        self.name, self.precision = inner.name, inner.precision
        self.input_names, self.output_names = inner.input_names, inner.output_names
        self.input_shapes = getattr(inner, "input_shapes", {})

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = next(iter(inputs.values())).shape[0]
        merged_rows = rows * rows if rows > 1 else rows  # merged calls grow worse than linearly when per_row_ms > 0
        time.sleep((self.per_call_ms + self.per_row_ms * merged_rows) / 1000.0)
        return dict(self.inner.infer(inputs))


@pytest.mark.parametrize(("per_call_ms", "per_row_ms", "merges"), [(0.0, 6.0, False), (25.0, 0.0, True)])
def test_adaptive_batching_follows_the_measured_cost(
    det_bundle: TinyBundle, per_call_ms: float, per_row_ms: float, merges: bool
) -> None:
    """Three cameras in step: where merged calls cost more per row the service stops merging (and waits for
    nobody); where a call's fixed cost dominates it keeps merging. Outputs equal one-by-one either way."""
    inner = open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1)
    engine = BatchingEngine(_CostedEngine(inner, per_call_ms, per_row_ms), budget_ms=50.0)
    plain = open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1)
    size = read_manifest(det_bundle.bundle_dir).input.height
    frames = {cam: _tensors(1, 1, size, seed=cam)[0] for cam in range(3)}
    in_step = threading.Barrier(3)
    mismatches: list[int] = []
    late_calls: list[int] = []

    def camera(cam: int) -> None:
        want = plain.infer({"input": frames[cam]})
        for i in range(40):
            in_step.wait(timeout=30)
            got = engine.submit({"input": frames[cam]}).result(timeout=30)
            if any(not np.allclose(got[k], want[k], rtol=1e-5, atol=1e-5) for k in want):
                mismatches.append(cam)
            if i == 25 and cam == 0:
                late_calls.append(engine.stats.calls)

    _run_cameras(camera, list(frames))
    assert not mismatches
    assert engine.policy is not None and engine.policy.pays is merges
    assert engine.policy.merges >= MIN_SAMPLES and engine.policy.singles >= MIN_SAMPLES  # both were measured
    later_calls, later_requests = engine.stats.calls - late_calls[0], 3 * 14  # about the last 14 rounds
    if merges:
        assert later_calls < later_requests  # requests still merged
    else:
        assert later_calls >= later_requests - 3  # one by one (a merged probe at most)


class _ThreadRecorder:
    """A real engine that notes the thread of every call."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.threads = inner, []  # type: ignore[var-annotated]
        self.name, self.precision = inner.name, inner.precision
        self.input_names, self.output_names = inner.input_names, inner.output_names
        self.input_shapes = getattr(inner, "input_shapes", {})

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.threads.append(threading.get_ident())
        return dict(self.inner.infer(inputs))


def test_a_lone_caller_runs_on_its_own_thread(det_bundle: TinyBundle) -> None:
    """infer() of the only caller, with the engine free: the call runs on the caller's thread (no hand-over to
    the worker), counted like any call; the same outputs as the plain engine; held() still queues it."""
    recorder = _ThreadRecorder(open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1))
    engine = BatchingEngine(recorder, budget_ms=50.0)
    plain = open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1)
    size = read_manifest(det_bundle.bundle_dir).input.height
    for tensor in _tensors(6, 1, size, seed=4):
        got, want = engine.infer({"input": tensor}), plain.infer({"input": tensor})
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6)
    assert recorder.threads == [threading.get_ident()] * 6
    assert engine.stats.calls == engine.stats.inline == 6 and engine.stats.requests == 6
    assert engine.policy is not None and engine.policy.singles == 6
    done: list[dict[str, np.ndarray]] = []
    with engine.held():
        caller = threading.Thread(target=lambda: done.append(engine.infer({"input": _tensors(1, 1, size)[0]})))
        caller.start()
        assert wait_until(lambda: engine.queued() == 1, timeout=30)  # held: queued, not run on its thread
        assert not done
    caller.join(timeout=30)
    assert done and engine.stats.calls == 7 and engine.stats.inline == 6
    assert recorder.threads[-1] not in (threading.get_ident(), caller.ident)  # the worker ran it


def test_a_caller_goes_through_the_service_while_another_is_active(
    det_bundle: TinyBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's-thread path is only for a caller alone: while another caller asked within ALONE_SECONDS its
    requests go to the worker (where callers in step merge); once the other is quiet that long, its own thread
    again. Merging off (the policy measured it does not pay), a free engine runs any request on its caller."""
    from edge.runtime import batching

    monkeypatch.setattr(batching, "ALONE_SECONDS", 0.5)
    recorder = _ThreadRecorder(open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1))
    engine = BatchingEngine(recorder, budget_ms=1.0)
    size = read_manifest(det_bundle.bundle_dir).input.height
    frame = {"input": _tensors(1, 1, size)[0]}
    other = threading.Thread(target=lambda: engine.infer(frame))
    other.start()
    other.join(timeout=30)
    assert recorder.threads == [other.ident]  # it was alone
    engine.infer(frame)
    assert recorder.threads[-1] != threading.get_ident()  # the other asked a moment ago: through the worker
    time.sleep(0.6)
    engine.infer(frame)
    assert recorder.threads[-1] == threading.get_ident()  # the other has been quiet for ALONE_SECONDS
    assert engine.stats.inline == 2 and engine.stats.calls == 3
    assert engine.policy is not None
    monkeypatch.setattr(engine.policy, "merge", lambda: False)
    other = threading.Thread(target=lambda: engine.infer(frame))
    other.start()
    other.join(timeout=30)
    engine.infer(frame)
    assert recorder.threads[-2:] == [other.ident, threading.get_ident()] and engine.stats.inline == 4


def test_merging_off_runs_every_request_alone_with_the_same_outputs(det_bundle: TinyBundle) -> None:
    """set_merging("off") (the bench's --merge off): requests queued together still leave one per engine call, in
    arrival order, with one-by-one outputs; "adaptive" brings the policy back and they merge again."""
    engine = BatchingEngine(open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1), budget_ms=5.0)
    plain = open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1)
    size = read_manifest(det_bundle.bundle_dir).input.height
    requests = _tensors(4, 1, size, seed=7)
    engine.set_merging("off")
    with engine.held():
        futures = [engine.submit({"input": t}) for t in requests]
    results = [f.result(timeout=30) for f in futures]
    assert engine.stats.calls == 4 and engine.stats.largest_call == 1
    for tensor, got in zip(requests, results, strict=True):
        want = plain.infer({"input": tensor})
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)
    engine.set_merging("adaptive")
    with engine.held():
        futures = [engine.submit({"input": t}) for t in requests]
    for f in futures:
        f.result(timeout=30)
    assert engine.stats.calls == 5 and engine.stats.largest_call == 4  # merged again (the policy starts merging)
    with pytest.raises(ValueError, match="adaptive, always or off"):
        engine.set_merging("never")


@pytest.mark.parametrize(("kind", "file"), ENGINES)
def test_lanes_split_queued_requests_and_give_one_by_one_outputs(kind: str, file: str, det_bundle: TinyBundle) -> None:
    """A two-thread engine (ONNX Runtime: a second one-thread session; OpenVINO: a second compiled model of two
    one-thread streams) offers two one-thread lanes: requests queued together leave as one call per free lane
    (each an equal share), on `infer_lane`, with the outputs of one-by-one inference; set_lanes(1) brings back one
    call on all threads."""
    inner = open_engine(kind, det_bundle.bundle_dir / file, threads=2)
    assert getattr(inner, "lanes", 1) == 2
    engine = BatchingEngine(inner, budget_ms=5.0)
    plain = open_engine(kind, det_bundle.bundle_dir / file, threads=1)
    size = read_manifest(det_bundle.bundle_dir).input.height
    requests = _tensors(4, 1, size, seed=9) + _tensors(1, 3, size, seed=10)
    for tensor in requests:  # a lane alone gives the two-thread engine's outputs
        lane, full = inner.infer_lane({"input": tensor}), inner.infer({"input": tensor})  # type: ignore[attr-defined]
        for name in full:
            np.testing.assert_allclose(lane[name], full[name], rtol=1e-5, atol=1e-5)
    # more callers than lanes at once: each waits for a free lane, each gets its own rows
    lane_out: dict[int, dict[str, np.ndarray]] = {}

    def on_a_lane(i: int) -> None:
        lane_out[i] = inner.infer_lane({"input": requests[i]})  # type: ignore[attr-defined]

    callers = [threading.Thread(target=on_a_lane, args=(i,)) for i in range(len(requests))]
    for t in callers:
        t.start()
    for t in callers:
        t.join(timeout=60)
    assert sorted(lane_out) == list(range(len(requests)))
    for i, tensor in enumerate(requests):
        want = plain.infer({"input": tensor})
        for name in want:
            np.testing.assert_allclose(lane_out[i][name], want[name], rtol=1e-5, atol=1e-5)
    with engine.held():
        futures = [engine.submit({"input": t}) for t in requests]
    results = [f.result(timeout=30) for f in futures]
    # 5 requests, 2 free lanes: the first call takes a share of 3, the rest leave as the lanes free up (one call
    # or two, as the first call's timing has it), at least one of them on a lane; never one call of all five.
    calls, lane_calls = engine.stats.calls, engine.stats.lane_calls
    assert 2 <= calls <= 3 and lane_calls >= 1 and engine.stats.largest_call == 3 and engine.stats.rows == 7
    for tensor, got in zip(requests, results, strict=True):
        want = plain.infer({"input": tensor})
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)
    engine.set_lanes(1)
    with engine.held():
        futures = [engine.submit({"input": t}) for t in requests]
    for f in futures:
        f.result(timeout=30)
    assert engine.stats.calls == calls + 1 and engine.stats.lane_calls == lane_calls  # one call on all threads


def _run_cameras(camera: Any, cams: list[int]) -> None:
    """Each camera's loop on its own thread, all at once; returns when all ended."""
    threads = [threading.Thread(target=camera, args=(cam,)) for cam in cams]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)


class _LanedRecorder:
    """A real one-thread engine offering two lanes, each call slowed by `ms`; it records what ran at once."""

    def __init__(self, inner: Any, ms: float) -> None:
        self.inner, self.ms, self.lanes = inner, ms, 2
        self.name, self.precision = inner.name, inner.precision
        self.input_names, self.output_names = inner.input_names, inner.output_names
        self.input_shapes = getattr(inner, "input_shapes", {})
        self._lock = threading.Lock()
        self.narrow = self.full = 0  # running now
        self.most_narrow = 0
        self.beside = 0  # lane calls that started while another lane call ran
        self.overlaps: list[str] = []  # a full call beside anything, or more lanes than offered
        self.full_threads: list[int] = []
        self.lane_calls = 0

    def _enter(self, narrow: bool) -> None:
        with self._lock:
            if narrow:
                self.narrow += 1
                self.lane_calls += 1
                self.most_narrow = max(self.most_narrow, self.narrow)
                self.beside += self.narrow > 1
            else:
                self.full += 1
                self.full_threads.append(threading.get_ident())
            if self.full > 1 or (self.full and self.narrow) or self.narrow > self.lanes:
                self.overlaps.append(f"full {self.full} narrow {self.narrow}")

    def _leave(self, narrow: bool) -> None:
        with self._lock:
            if narrow:
                self.narrow -= 1
            else:
                self.full -= 1

    def _call(self, inputs: dict[str, np.ndarray], narrow: bool) -> dict[str, np.ndarray]:
        self._enter(narrow)
        try:
            time.sleep(self.ms / 1000.0)
            return dict(self.inner.infer(inputs))
        finally:
            self._leave(narrow)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._call(inputs, narrow=False)

    def infer_lane(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._call(inputs, narrow=True)


def test_two_cameras_out_of_step_run_side_by_side_on_the_two_lanes(det_bundle: TinyBundle) -> None:
    """Two free-running cameras whose requests come while the other's call runs: the second one starts on the
    free lane at once (a worker of its own), it does not wait for the first call to end (before session 11 the
    one worker ran them one after the other, on one lane at a time), and while both send no call takes all
    threads."""
    inner = open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1)
    recorder = _LanedRecorder(inner, ms=30.0)
    engine = BatchingEngine(recorder, budget_ms=8.0)
    size = read_manifest(det_bundle.bundle_dir).input.height
    frames = {cam: _tensors(1, 1, size, seed=40 + cam)[0] for cam in range(2)}
    wants = {cam: inner.infer({"input": f}) for cam, f in frames.items()}
    mismatches: list[int] = []

    def camera(cam: int) -> None:
        time.sleep(0.012 * cam)  # out of step: camera 1 asks while camera 0's call runs
        for _ in range(12):
            got = engine.infer({"input": frames[cam]})
            if any(not np.allclose(got[k], wants[cam][k], rtol=1e-5, atol=1e-5) for k in wants[cam]):
                mismatches.append(cam)
            time.sleep(0.002)  # the camera's own work between frames

    _run_cameras(camera, list(frames))
    assert not mismatches and engine.stats.requests == 24
    assert not recorder.overlaps, recorder.overlaps[:3]
    assert recorder.most_narrow == 2 and engine.stats.most_lanes == 2
    assert recorder.beside >= recorder.lane_calls // 4, (recorder.beside, recorder.lane_calls)
    # While both send, no call takes all threads (the other camera's request would wait for it): the first
    # request of all may, before the second camera asked.
    assert len(recorder.full_threads) <= 1 and recorder.lane_calls >= 23, (recorder.full_threads, recorder.lane_calls)


@pytest.mark.parametrize("lanes", [2, 1])
def test_cameras_in_step_run_side_by_side_on_lanes_and_a_lone_one_on_all_threads(
    det_bundle: TinyBundle, lanes: int
) -> None:
    """Four cameras in step: with lanes two one-thread calls run at once (never more, never beside a call on all
    threads), every camera gets its own rows; then one camera alone runs on all threads on its own thread.
    With set_lanes(1) nothing runs on a lane."""
    inner = open_engine("onnxruntime", det_bundle.bundle_dir / ONNX_FILE, threads=1)
    recorder = _LanedRecorder(inner, ms=30.0)
    engine = BatchingEngine(recorder, budget_ms=8.0)
    engine.set_lanes(lanes)
    assert engine.lanes == lanes
    size = read_manifest(det_bundle.bundle_dir).input.height
    frames = {cam: _tensors(1, 1, size, seed=20 + cam)[0] for cam in range(4)}
    wants = {cam: inner.infer({"input": f}) for cam, f in frames.items()}
    in_step = threading.Barrier(4)
    mismatches: list[int] = []

    def camera(cam: int) -> None:
        for _ in range(8):
            in_step.wait(timeout=30)
            got = engine.infer({"input": frames[cam]})
            if any(not np.allclose(got[k], wants[cam][k], rtol=1e-5, atol=1e-5) for k in wants[cam]):
                mismatches.append(cam)

    _run_cameras(camera, list(frames))
    assert not mismatches and engine.stats.requests == 32
    assert not recorder.overlaps, recorder.overlaps[:3]
    if lanes == 2:
        assert recorder.most_narrow == 2 and engine.stats.most_lanes == 2
        assert recorder.lane_calls == engine.stats.lane_calls >= engine.stats.calls - 4
    else:
        assert recorder.lane_calls == 0 and engine.stats.lane_calls == 0
    time.sleep(1.1)  # the others have been quiet for ALONE_SECONDS
    before = len(recorder.full_threads)
    engine.infer({"input": frames[0]})
    assert recorder.full_threads[before:] == [threading.get_ident()]  # alone: all threads, on its own thread


def test_openvino_lanes_run_a_large_batch_in_slices_of_their_share(det_bundle: TinyBundle) -> None:
    """An OpenVINO lane runs at most max_rows / lanes rows a request (each lane's request keeps the buffers of its
    largest slice): a 5-row batch on a lane of a max_rows=4, two-lane engine still gives every row, as one call."""
    inner = open_engine("openvino", det_bundle.bundle_dir / OPENVINO_XML, threads=2)
    inner.max_rows = 4  # type: ignore[attr-defined]
    plain = open_engine("openvino", det_bundle.bundle_dir / OPENVINO_XML, threads=1)
    size = read_manifest(det_bundle.bundle_dir).input.height
    (batch,) = _tensors(1, 5, size, seed=21)
    steps: list[int] = []
    request_infer = inner._sliced  # type: ignore[attr-defined]

    def recording(request: Any, inputs: dict[str, np.ndarray], step: int | None = None) -> dict[str, np.ndarray]:
        steps.append(step or 0)
        return request_infer(request, inputs, step)  # type: ignore[no-any-return]

    inner._sliced = recording  # type: ignore[attr-defined]
    got = inner.infer_lane({"input": batch})  # type: ignore[attr-defined]
    assert steps == [2]  # 4 rows shared by 2 lanes
    want = plain.infer({"input": batch})
    for name in want:
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)
