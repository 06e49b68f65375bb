"""INT8 export (NNCF): the convolutions are quantised, a classifier's linear head is not (trainer/export.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trainer.export import export_onnx, export_openvino_int8, nncf_available

pytestmark = pytest.mark.skipif(not nncf_available(), reason="NNCF is not installed (the trainer extra has it)")


class _Classifier(nn.Module):
    """A backbone's shape in little: convolutions, two pooled branches concatenated (as the embedder), a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 16, 3, padding=1))
        self.act = nn.ReLU6()
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.stem(x)
        embedding = torch.cat([self.act(raw).mean((2, 3)), raw.mean((2, 3))], 1)
        return self.head(embedding)


def test_int8_quantises_the_convolutions_and_keeps_the_head_fp32(tmp_path: Path) -> None:
    import openvino as ov

    torch.manual_seed(0)
    onnx = export_onnx(_Classifier().eval(), tmp_path / "model.onnx", 32, ["logits"])
    calibration = np.random.default_rng(0).normal(size=(16, 3, 32, 32)).astype(np.float32)
    files = export_openvino_int8(onnx, tmp_path / "openvino", calibration)
    model = ov.Core().read_model(str(files["openvino/int8/model.xml"]))
    ops = model.get_ordered_ops()
    fake_quantised = {op.get_friendly_name() for op in ops if op.get_type_name() == "FakeQuantize"}
    assert fake_quantised, "NNCF quantised nothing"
    convs = [op for op in ops if op.get_type_name() == "Convolution"]
    assert any(_producer(conv.input_value(0)).get_type_name() == "FakeQuantize" for conv in convs), (
        "the convolutions' inputs are not quantised"
    )
    heads = [op for op in ops if op.get_type_name() == "MatMul"]
    assert heads
    for head in heads:
        embedding, weights = (_producer(v) for v in head.input_values())
        # FP32 weights are a plain f32 constant (quantised ones: int8 constant -> Convert -> Multiply by a scale)
        assert weights.get_type_name() == "Constant", f"{head.get_friendly_name()} weights: {weights.get_type_name()}"
        assert weights.get_output_element_type(0).get_type_name() == "f32"
        # the embedding reaches the head unquantised, also through the concatenation of its two branches
        inputs = [_producer(v) for v in embedding.input_values()] if embedding.get_type_name() == "Concat" else []
        assert all(p.get_type_name() != "FakeQuantize" for p in [embedding, *inputs]), "the head's input is quantised"


def _producer(value: object) -> object:
    """The op that makes a value, through a Convert/Reshape of constants or weights NNCF may put between."""
    node = value.get_node()  # type: ignore[attr-defined]
    while node.get_type_name() in ("Convert", "Reshape", "Transpose") and node.get_input_size():
        node = node.input_value(0).get_node()
    return node
