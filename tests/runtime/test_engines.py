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
