"""ONNX Runtime and OpenVINO engines on real tiny bundles: same numbers, explicit precision, auto selection."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import ONNX_FILE, OPENVINO_XML, read_manifest
from edge.errors import ConfigError, EngineError
from edge.runtime.engines import Engine, OnnxRuntimeEngine, OpenVinoEngine, create_engine
from tests.helpers.tiny_bundle import TinyBundle, make_classification_bundle


def cpu_capabilities() -> list[str]:
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


@pytest.mark.parametrize("which", ["cls_bundle", "det_bundle"])
def test_engines_agree(which: str, request: pytest.FixtureRequest) -> None:
    bundle: TinyBundle = request.getfixturevalue(which)
    manifest = read_manifest(bundle.bundle_dir)
    shape = (3, 3, manifest.input.height, manifest.input.width)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    ort_engine = OnnxRuntimeEngine(bundle.bundle_dir / ONNX_FILE, threads=1)
    ov_engine = OpenVinoEngine(bundle.bundle_dir / OPENVINO_XML, threads=1, precision="fp32")
    assert ov_engine.precision == "fp32"
    a, b = ort_engine.infer({"input": x}), ov_engine.infer({"input": x})
    assert set(a) == set(b) == set(ort_engine.output_names)
    for name in a:
        assert a[name].shape == b[name].shape
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-4)


def test_engines_follow_the_protocol(cls_bundle: TinyBundle) -> None:
    for engine in (
        OnnxRuntimeEngine(cls_bundle.bundle_dir / ONNX_FILE),
        OpenVinoEngine(cls_bundle.bundle_dir / OPENVINO_XML),
    ):
        assert isinstance(engine, Engine)
        assert engine.input_names == ["input"] and engine.output_names == ["logits"]


def test_openvino_outputs_are_copies(cls_bundle: TinyBundle) -> None:
    """The infer request reuses buffers; what a caller kept must not change on the next call."""
    engine = OpenVinoEngine(cls_bundle.bundle_dir / OPENVINO_XML, threads=1)
    red = np.zeros((1, 3, 32, 32), np.float32)
    red[:, 0] = 1
    first = engine.infer({"input": red})["logits"]
    kept = first.copy()
    engine.infer({"input": 1 - red})
    np.testing.assert_array_equal(first, kept)


def test_openvino_precision_is_explicit_and_recorded(cls_bundle: TinyBundle) -> None:
    caps = cpu_capabilities()
    xml = cls_bundle.bundle_dir / OPENVINO_XML
    bf16 = OpenVinoEngine(xml, threads=1, precision="bf16")
    assert bf16.requested_precision == "bf16"
    assert bf16.precision == ("bf16" if "BF16" in caps else "fp32")
    # Without native fp16 OpenVINO substitutes another precision (bf16 where it has it): recorded, not hidden.
    fp16 = OpenVinoEngine(xml, threads=1, precision="fp16")
    assert fp16.requested_precision == "fp16"
    assert fp16.precision in {"fp16", "bf16", "fp32"}
    assert (fp16.precision == "fp16") == ("FP16" in caps)
    # fp32 stays exact where bf16 rounds: 20 * (1 - 1/3) = 13.333... keeps its digits only in fp32.
    x = np.zeros((1, 3, 32, 32), np.float32)
    x[:, 0] = 1
    fp32_logit = OpenVinoEngine(xml, threads=1, precision="fp32").infer({"input": x})["logits"][0, 0]
    assert abs(fp32_logit - 40.0 / 3.0) < 1e-4
    if bf16.precision == "bf16":
        assert abs(bf16.infer({"input": x})["logits"][0, 0] - 40.0 / 3.0) > 1e-4


def test_unknown_precision_refused(cls_bundle: TinyBundle) -> None:
    with pytest.raises(EngineError, match="unknown OpenVINO precision"):
        OpenVinoEngine(cls_bundle.bundle_dir / OPENVINO_XML, precision="int4")  # type: ignore[arg-type]


def test_create_engine_choices(cls_bundle: TinyBundle, tmp_path: Path) -> None:
    manifest = read_manifest(cls_bundle.bundle_dir)
    # auto: ONNX Runtime (measured faster here, docs/BUNDLE.md); OpenVINO when a precision only it computes is asked.
    assert create_engine(cls_bundle.bundle_dir, manifest).name == "onnxruntime"
    assert create_engine(cls_bundle.bundle_dir, manifest, "auto", precision="bf16").name == "openvino"
    assert create_engine(cls_bundle.bundle_dir, manifest, "onnxruntime").name == "onnxruntime"
    onnx_only = make_classification_bundle(tmp_path, openvino=False, version="onnx-only")
    onnx_manifest = read_manifest(onnx_only.bundle_dir)
    assert create_engine(onnx_only.bundle_dir, onnx_manifest, "auto").name == "onnxruntime"
    with pytest.raises(EngineError, match="has no OpenVINO model"):
        create_engine(onnx_only.bundle_dir, onnx_manifest, "openvino")


def test_auto_falls_back_when_openvino_cannot_load(cls_bundle: TinyBundle, tmp_path: Path) -> None:
    broken = Path(shutil.copytree(cls_bundle.bundle_dir, tmp_path / "broken"))
    (broken / OPENVINO_XML).write_text("<not-an-ir/>")
    manifest = read_manifest(broken)
    engine = create_engine(broken, manifest, "auto", precision="fp16")  # OpenVINO first, then the fallback
    assert engine.name == "onnxruntime"
    with pytest.raises(EngineError, match=r"OpenVINO cannot load model.xml"):
        create_engine(broken, manifest, "openvino")


def test_auto_falls_back_when_onnxruntime_cannot_load(cls_bundle: TinyBundle, tmp_path: Path) -> None:
    broken = Path(shutil.copytree(cls_bundle.bundle_dir, tmp_path / "broken"))
    (broken / ONNX_FILE).write_bytes(b"not a model")
    manifest = read_manifest(broken)
    engine = create_engine(broken, manifest, "auto")
    assert engine.name == "openvino" and engine.precision == "fp32"
    (broken / OPENVINO_XML).write_text("<not-an-ir/>")
    with pytest.raises(EngineError, match=r"no engine can run bundle .*ONNX Runtime cannot load.*OpenVINO cannot load"):
        create_engine(broken, manifest, "auto")


def test_bad_model_file_is_an_engine_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EngineError, match=r"ONNX Runtime cannot load model.onnx"):
        OnnxRuntimeEngine(bad)


def test_wrong_input_is_an_engine_error(cls_bundle: TinyBundle) -> None:
    engine = OnnxRuntimeEngine(cls_bundle.bundle_dir / ONNX_FILE)
    with pytest.raises(EngineError, match="inference failed"):
        engine.infer({"input": np.zeros((1, 3, 8), np.float32)})


@pytest.mark.parametrize("kind", ["onnxruntime", "openvino"])
def test_concurrent_callers_get_their_own_results(cls_bundle: TinyBundle, kind: str) -> None:
    """Callers from several threads serialise on the engine and each gets the answer to its own input."""
    import threading

    manifest = read_manifest(cls_bundle.bundle_dir)
    engine = create_engine(cls_bundle.bundle_dir, manifest, kind, threads=1)  # type: ignore[arg-type]
    wrong: list[tuple[int, int]] = []

    def caller(channel: int) -> None:
        x = np.zeros((1, 3, 32, 32), np.float32)
        x[:, channel] = 1
        for _ in range(30):
            got = int(engine.infer({"input": x})["logits"][0].argmax())
            if got != channel:
                wrong.append((channel, got))

    threads = [threading.Thread(target=caller, args=(c,)) for c in (0, 1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert wrong == []


def test_engine_registry_feeds_config_and_construction(cls_bundle: TinyBundle) -> None:
    from edge.config import EdgeConfig, parse_yaml_config
    from edge.runtime.engines import ENGINE_KINDS, OpenVinoSettings, open_engine

    assert list(ENGINE_KINDS) == ["onnxruntime", "openvino", "openvino_int8"]
    manifest = read_manifest(cls_bundle.bundle_dir)
    # The plain name and the mapping form with an engine's own settings both validate and build that engine.
    plain = parse_yaml_config("model: {engine: openvino, precision: fp32}", EdgeConfig).model
    assert isinstance(plain.engine, OpenVinoSettings)
    mapped = parse_yaml_config("model: {engine: {kind: openvino, precision: fp16, threads: 1}}", EdgeConfig).model
    engine = create_engine(cls_bundle.bundle_dir, manifest, mapped.engine, mapped.threads, mapped.precision)
    assert engine.name == "openvino" and engine.requested_precision == "fp16"
    assert EdgeConfig.model_validate({"model": {"engine": mapped.engine}}).model_dump(mode="json")["model"][
        "engine"
    ] == {"kind": "openvino", "precision": "fp16", "threads": 1}
    with pytest.raises(ConfigError, match=r"edge.yaml:1: model.engine.onnxruntime.precision: Extra inputs"):
        parse_yaml_config("model: {engine: {kind: onnxruntime, precision: fp16}}", EdgeConfig, source="edge.yaml")
    with pytest.raises(ConfigError, match="unknown engine 'tensorrt'; use auto, onnxruntime, openvino, openvino_int8"):
        parse_yaml_config("model: {engine: tensorrt}", EdgeConfig)
    # One model file, no bundle (what the trainer checks its exports with).
    single = open_engine("openvino", cls_bundle.bundle_dir / OPENVINO_XML, threads=1)
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    reference = open_engine("onnxruntime", cls_bundle.bundle_dir / ONNX_FILE).infer({"input": x})["logits"]
    assert np.allclose(single.infer({"input": x})["logits"], reference, atol=1e-4)
    with pytest.raises(EngineError, match="not auto"):
        open_engine("auto", cls_bundle.bundle_dir / ONNX_FILE)


def test_auto_prefers_the_int8_ir_when_the_bundle_ships_it(cls_bundle: TinyBundle, tmp_path: Path) -> None:
    """An NNCF-quantised IR at openvino/int8/model.xml: `auto` runs it (engine openvino_int8, precision int8) and
    it classifies like FP32; without the file auto keeps ONNX Runtime."""
    pytest.importorskip("nncf", reason="NNCF (trainer extra) quantises the test IR")
    import nncf
    import openvino as ov

    from edge.bundle import file_entry
    from edge.runtime.engines import OPENVINO_INT8_XML

    bundle = tmp_path / "b"
    shutil.copytree(cls_bundle.bundle_dir, bundle)
    manifest = read_manifest(bundle)
    assert create_engine(bundle, manifest, "auto").name == "onnxruntime"
    size = manifest.input.height
    rng = np.random.default_rng(0)
    calibration = [rng.random((1, 3, size, size), dtype=np.float32) for _ in range(8)]
    quantised = nncf.quantize(ov.Core().read_model(str(bundle / OPENVINO_XML)), nncf.Dataset(calibration))
    ov.save_model(quantised, str(bundle / OPENVINO_INT8_XML))
    files = dict(manifest.files) | {
        OPENVINO_INT8_XML: file_entry(bundle / OPENVINO_INT8_XML),
        "openvino/int8/model.bin": file_entry(bundle / "openvino/int8/model.bin"),
    }
    with_int8 = manifest.model_copy(update={"files": files})
    engine = create_engine(bundle, with_int8, "auto")
    assert (engine.name, engine.precision) == ("openvino_int8", "int8")
    fp32 = create_engine(bundle, with_int8, "onnxruntime")
    x = np.stack([np.full((3, size, size), 0.1, np.float32) for _ in range(3)])
    for channel in range(3):
        x[channel, channel] = 0.9  # image c is dominated by channel c
    assert (engine.infer({"input": x})["logits"].argmax(1) == fp32.infer({"input": x})["logits"].argmax(1)).all()


def test_onnxruntime_runs_on_the_shared_bounded_arena(cls_bundle: TinyBundle) -> None:
    """The session is built with the CPU arena on, from the process's shared arena, and every call shrinks it
    (read back from ONNX Runtime); `arena_mb: 0` builds it without; the outputs are the same either way."""
    from edge.runtime import engines

    model = cls_bundle.bundle_dir / ONNX_FILE
    shared = OnnxRuntimeEngine(model, threads=1)
    options = shared._session.get_session_options()
    assert options.enable_cpu_mem_arena is True
    assert options.get_session_config_entry("session.use_env_allocators") == "1"
    assert shared._run_options.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"
    # One arena per process: the first engine registered it, every later one gets that size.
    assert shared.arena_mb == engines._ort_arena["mb"] > 0
    assert OnnxRuntimeEngine(model, threads=1, arena_mb=shared.arena_mb + 1).arena_mb == shared.arena_mb
    plain = OnnxRuntimeEngine(model, threads=1, arena_mb=0)
    assert plain.arena_mb == 0 and plain._run_options is None
    assert plain._session.get_session_options().enable_cpu_mem_arena is False
    rng = np.random.default_rng(1)
    for rows in (1, 7, 300):  # 300 rows: a call larger than what the tiny model primed the arena with
        x = rng.random((rows, 3, 32, 32), dtype=np.float32)
        np.testing.assert_allclose(shared.infer({"input": x})["logits"], plain.infer({"input": x})["logits"], rtol=1e-6)
    # The engine config reaches it: `arena_mb` in edge.yaml.
    from edge.config import EdgeConfig, parse_yaml_config

    cfg = parse_yaml_config("model: {engine: {kind: onnxruntime, arena_mb: 0}}", EdgeConfig).model
    built = create_engine(cls_bundle.bundle_dir, read_manifest(cls_bundle.bundle_dir), cfg.engine, 1)
    assert isinstance(built, OnnxRuntimeEngine) and built.arena_mb == 0


def test_openvino_runs_large_batches_in_slices(cls_bundle: TinyBundle) -> None:
    """A dynamic-batch model runs at most max_rows rows per request (OpenVINO keeps the largest input's buffers):
    the outputs of a sliced batch equal one request's; the batching service merges no more rows than that; the
    latency hint (one stream) is what the compiled model runs with."""
    from edge.runtime import engines
    from edge.runtime.batching import BatchingEngine

    xml = cls_bundle.bundle_dir / OPENVINO_XML
    sliced = OpenVinoEngine(xml, threads=1)
    assert sliced.max_rows == engines.OV_MAX_ROWS
    assert str(sliced._compiled.get_property("PERFORMANCE_HINT")).endswith("LATENCY")
    assert int(sliced._compiled.get_property("NUM_STREAMS")) == 1
    whole = OpenVinoEngine(xml, threads=1, max_rows=64)
    x = np.random.default_rng(2).random((2 * engines.OV_MAX_ROWS + 3, 3, 32, 32), dtype=np.float32)
    got, want = sliced.infer({"input": x}), whole.infer({"input": x})
    assert got["logits"].shape == (len(x), 3)
    np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-5, atol=1e-6)
    reference = OnnxRuntimeEngine(cls_bundle.bundle_dir / ONNX_FILE, threads=1).infer({"input": x})["logits"]
    np.testing.assert_allclose(got["logits"], reference, atol=1e-4)
    assert BatchingEngine(sliced).max_rows == engines.OV_MAX_ROWS
    assert BatchingEngine(whole).max_rows == 32  # the service's own limit when the engine's is larger
    from edge.config import EdgeConfig, parse_yaml_config

    cfg = parse_yaml_config("model: {engine: {kind: openvino, max_rows: 4}}", EdgeConfig).model
    built = create_engine(cls_bundle.bundle_dir, read_manifest(cls_bundle.bundle_dir), cfg.engine, 1)
    assert isinstance(built, OpenVinoEngine) and built.max_rows == 4
