"""Real, tiny, signed bundles built without torch, for tests of every area until (and beside) the trainer.

The graphs are made with `onnx.helper`, honour the bundle tensor contract, and are steerable with generated
images:

- classification (`make_classification_bundle`): logits from the mean colour per channel, so a red image gives
  label "red" and a green one "green" (labels named red/green/blue map to those channels; other names take
  channels 0, 1, 2 in order). Input spec: RGB, scale 1/255, mean 0, std 1, stretch.
- detection (`make_detection_bundle`): fixed boxes (normalised to the network input) whose first class score is
  the mean darkness (1 - mean brightness) of the pixels inside the box and whose second class (if any) is the
  brightness. A black region therefore reports label "empty" with score ~1 there. Input: letterbox by default
  (the zero padding counts as dark, as on the device).

Both are converted to OpenVINO IR (`openvino.convert_model` + `openvino.save_model`) and signed with an ed25519
key kept in `key_dir` (created once, reused, so several versions share one trusted key). Each call returns
`TinyBundle(bundle_dir, public_key)`; the private key lies beside the public one as `signing.key`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edge.bundle import (
    ONNX_FILE,
    OPENVINO_BIN,
    OPENVINO_XML,
    REPORT,
    write_bundle,
    write_keypair,
)

OPSET = 17
IR_VERSION = 8
DEFAULT_DETECTION_BOXES: tuple[tuple[float, float, float, float], ...] = (
    (0.05, 0.05, 0.45, 0.95),  # left half
    (0.55, 0.05, 0.95, 0.95),  # right half
)
_CHANNEL_OF = {"red": 0, "green": 1, "blue": 2}


class TinyBundle(NamedTuple):
    """A built bundle directory and the PEM public key that verifies it (signing.key lies beside it)."""

    bundle_dir: Path
    public_key: Path


def ensure_keys(key_dir: Path) -> tuple[Path, Path]:
    """(signing.key, signing.pub) in key_dir, generated on first use."""
    key_dir.mkdir(parents=True, exist_ok=True)
    private, public = key_dir / "signing.key", key_dir / "signing.pub"
    if not private.exists():
        write_keypair(private, public)
    return private, public


def _input_info(size_hw: tuple[int, int]) -> Any:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size_hw[0], size_hw[1]])


def _const(name: str, array: np.ndarray) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(array, name=name)


def classification_graph(labels: Sequence[str], size: int, gain: float = 20.0, embedding: bool = False) -> Any:
    """ONNX model: input [N,3,size,size] (RGB 0..1) -> logits [N,C] = gain * (channel mean - mean of channels).

    With `embedding`, a second output `embedding` [N,3] holds the channel means minus their mean (the image's
    colour cast, so images of one colour have cosine ~1 to each other).
    """
    from onnx import TensorProto, helper

    c = len(labels)
    weights = np.zeros((3, c), dtype=np.float32)
    for i, label in enumerate(labels):
        channel = _CHANNEL_OF.get(label.lower(), i % 3)
        weights[:, i] = -gain / 3.0
        weights[channel, i] += gain
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["means"], axis=1),
        helper.make_node("MatMul", ["means", "weights"], ["logits"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", c])]
    if embedding:
        centre = np.eye(3, dtype=np.float32) - np.full((3, 3), 1.0 / 3.0, dtype=np.float32)
        nodes.append(helper.make_node("MatMul", ["means", "centre"], ["embedding"]))
        outputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3]))
    initializer = [_const("weights", weights)] + ([_const("centre", centre)] if embedding else [])
    graph = helper.make_graph(nodes, "tiny_colour_classifier", [_input_info((size, size))], outputs, initializer)
    return _model(graph)


def detection_graph(
    labels: Sequence[str],
    width: int,
    height: int,
    boxes: Sequence[tuple[float, float, float, float]],
    contrast: float = 1.0,
    pivot: float = 0.5,
) -> Any:
    """ONNX model: input [N,3,H,W] (0..1) -> boxes [N,K,4] (fixed) and scores [N,K,C] (darkness, brightness).

    `contrast`/`pivot` steepen the scores around a brightness: clip((b - pivot) * contrast + 0.5, 0, 1) (the
    defaults leave b as it is), so photos a little brighter or darker than the pivot score near 0 or 1.
    """
    from onnx import TensorProto, helper

    if not 1 <= len(labels) <= 2:
        raise ValueError("the tiny detector knows two classes at most: dark, bright")
    k = len(boxes)
    nodes: list[Any] = [helper.make_node("ReduceMean", ["input"], ["gray"], axes=[1], keepdims=1)]
    init = [
        _const("slice_axes", np.array([2, 3], dtype=np.int64)),
        _const("unsq1", np.array([1], dtype=np.int64)),
        _const("unsq2", np.array([2], dtype=np.int64)),
        _const("one", np.array(1.0, dtype=np.float32)),
        _const("box_const", np.asarray(boxes, dtype=np.float32).reshape(1, k, 4)),
        _const("k4", np.array([k, 4], dtype=np.int64)),
        _const("s0", np.array([0], dtype=np.int64)),
        _const("s1", np.array([1], dtype=np.int64)),
        _const("pivot", np.array(pivot, dtype=np.float32)),
        _const("contrast", np.array(contrast, dtype=np.float32)),
        _const("half", np.array(0.5, dtype=np.float32)),
        _const("zero", np.array(0.0, dtype=np.float32)),
    ]
    region_means = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        px1, py1 = round(x1 * width), round(y1 * height)
        px2, py2 = max(round(x2 * width), px1 + 1), max(round(y2 * height), py1 + 1)
        init += [
            _const(f"st{i}", np.array([py1, px1], dtype=np.int64)),
            _const(f"en{i}", np.array([py2, px2], dtype=np.int64)),
        ]
        nodes += [
            helper.make_node("Slice", ["gray", f"st{i}", f"en{i}", "slice_axes"], [f"region{i}"]),
            helper.make_node("ReduceMean", [f"region{i}"], [f"mean{i}"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Unsqueeze", [f"mean{i}", "unsq1"], [f"col{i}"]),
        ]
        region_means.append(f"col{i}")
    nodes += [
        helper.make_node("Concat", region_means, ["raw_bright"], axis=1),  # [N, K]
        helper.make_node("Sub", ["raw_bright", "pivot"], ["centred"]),
        helper.make_node("Mul", ["centred", "contrast"], ["steep"]),
        helper.make_node("Add", ["steep", "half"], ["shifted"]),
        helper.make_node("Clip", ["shifted", "zero", "one"], ["bright"]),
        helper.make_node("Sub", ["one", "bright"], ["dark"]),
        helper.make_node("Unsqueeze", ["dark", "unsq2"], ["dark3"]),
        helper.make_node("Unsqueeze", ["bright", "unsq2"], ["bright3"]),
    ]
    per_class = ["dark3", "bright3"][: len(labels)]
    nodes.append(helper.make_node("Concat", per_class, ["scores"], axis=2))
    nodes += [
        helper.make_node("Shape", ["input"], ["in_shape"]),
        helper.make_node("Slice", ["in_shape", "s0", "s1"], ["batch"]),
        helper.make_node("Concat", ["batch", "k4"], ["box_shape"], axis=0),
        helper.make_node("Expand", ["box_const", "box_shape"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_darkness_detector",
        [_input_info((height, width))],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", k, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", k, len(labels)]),
        ],
        initializer=init,
    )
    return _model(graph)


def _model(graph: Any) -> Any:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tiny_bundle")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _export(model: Any, work: Path, openvino: bool) -> dict[str, Path]:
    import onnx

    onnx_path = work / ONNX_FILE
    onnx.save_model(model, str(onnx_path))
    files = {ONNX_FILE: onnx_path}
    if openvino:
        import openvino as ov

        xml = work / OPENVINO_XML
        xml.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
        files[OPENVINO_XML] = xml
        files[OPENVINO_BIN] = work / OPENVINO_BIN
    report = work / REPORT
    report.write_text(json.dumps({"tiny": True, "note": "synthetic test bundle, not trained"}))
    files[REPORT] = report
    return files


def _manifest(
    *,
    name: str,
    version: str,
    task: str,
    labels: Sequence[str],
    alert_labels: Sequence[str] | None,
    input_spec: dict[str, Any],
    outputs: dict[str, Any],
    score_threshold: float,
) -> dict[str, Any]:
    return {
        "schema": 1,
        "name": name,
        "version": version,
        "created": "2026-11-21T00:00:00Z",
        "task": task,
        "labels": list(labels),
        "alert_labels": list(alert_labels or []),
        "input": input_spec,
        "outputs": outputs,
        "thresholds": {"score": score_threshold, "nms_iou": 0.5},
        "metrics": {"tiny": True},
        "dataset": {"sha256": "0" * 64, "counts": {label: 0 for label in labels}},
        "base": {"backbone": "none", "weights": "random"},
    }


def _rgb_input(width: int, height: int, resize: str) -> dict[str, Any]:
    """The manifest input of the tiny models: RGB scaled to 0..1, no mean or std."""
    return {
        "width": width,
        "height": height,
        "color": "RGB",
        "scale": 1.0 / 255.0,
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
        "resize": resize,
    }


def _signed(dest: Path, manifest: Any, graph: Any, openvino: bool, private: Path, public: Path) -> TinyBundle:
    """Export the graph and write the signed bundle at dest."""
    with tempfile.TemporaryDirectory() as tmp:
        files = _export(graph, Path(tmp), openvino)
        return TinyBundle(write_bundle(dest, manifest, files, private), public)


def make_classification_bundle(
    out_dir: Path,
    *,
    labels: Sequence[str] = ("red", "green"),
    alert_labels: Sequence[str] | None = None,
    size: int = 32,
    version: str = "tiny-cls-1",
    name: str = "tiny-colour",
    key_dir: Path | None = None,
    openvino: bool = True,
    score_threshold: float = 0.5,
    embedding: bool = False,
) -> TinyBundle:
    """A signed classification bundle at out_dir/<version> whose label is the dominant colour channel (with
    `embedding`, the manifest's outputs also declare the `embedding` tensor, as model-assisted labelling reads)."""
    private, public = ensure_keys(key_dir or out_dir / "keys")
    manifest = _manifest(
        name=name,
        version=version,
        task="classification",
        labels=labels,
        alert_labels=alert_labels,
        input_spec=_rgb_input(size, size, "stretch"),
        outputs={"type": "classification", "logits": "logits", "activation": "softmax"}
        | ({"embedding": "embedding"} if embedding else {}),
        score_threshold=score_threshold,
    )
    graph = classification_graph(labels, size, embedding=embedding)
    return _signed(out_dir / version, manifest, graph, openvino, private, public)


def make_detection_bundle(
    out_dir: Path,
    *,
    labels: Sequence[str] = ("empty", "stocked"),
    alert_labels: Sequence[str] | None = ("empty",),
    boxes: Sequence[tuple[float, float, float, float]] = DEFAULT_DETECTION_BOXES,
    width: int = 64,
    height: int = 64,
    resize: str = "letterbox",
    version: str = "tiny-det-1",
    name: str = "tiny-darkness",
    key_dir: Path | None = None,
    openvino: bool = True,
    score_threshold: float = 0.5,
    contrast: float = 1.0,
    pivot: float = 0.5,
) -> TinyBundle:
    """A signed detection bundle at out_dir/<version>: fixed boxes scored by how dark their region is."""
    private, public = ensure_keys(key_dir or out_dir / "keys")
    manifest = _manifest(
        name=name,
        version=version,
        task="detection",
        labels=labels,
        alert_labels=alert_labels,
        input_spec=_rgb_input(width, height, resize),
        outputs={"type": "detection", "boxes": "boxes", "scores": "scores", "nms": "device", "max_detections": 100},
        score_threshold=score_threshold,
    )
    graph = detection_graph(labels, width, height, boxes, contrast, pivot)
    return _signed(out_dir / version, manifest, graph, openvino, private, public)


def solid_image(bgr: tuple[int, int, int], width: int = 64, height: int = 48) -> np.ndarray:
    """A uint8 BGR image of one colour."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = bgr
    return image
