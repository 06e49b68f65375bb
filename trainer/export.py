"""Export a trained network: ONNX (one file, dynamic batch), OpenVINO IR FP32 and FP16, optional INT8 (NNCF),
and a parity check of every exported model, run through the device's own engines (edge.runtime), against the torch
module on real evaluation images.

The ONNX file uses the TorchScript-based exporter (`dynamo=False`): it is deterministic, writes one file with the
weights inside, and handles these small CNNs without onnxscript's graph rewrites. The parity check runs the same
input tensor through torch and every exported file; each task's recipe says what to compare and what fails. For
classification, FP32 models must agree within `FP32_TOLERANCE` (relative to the output range) and top-1 exactly,
or export fails loudly; FP16 must keep top-1 agreement of at least `REDUCED_TOP1_MIN` (checked on 10 or more
images); INT8 (opt-in) below that is a warning in the report. Detection compares raw boxes and scores and the
share of decoded detections both models find (trainer/recipes/detection.py).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from trainer.errors import TrainingError

if TYPE_CHECKING:
    from edge.runtime.engines import Engine

log = logging.getLogger(__name__)

OPSET = 17
FP32_TOLERANCE = 1e-3
REDUCED_TOP1_MIN = 0.9
MIN_IMAGES_TO_FAIL_REDUCED = 10  # below this one flipped image says little about a reduced-precision model


def export_onnx(model: nn.Module, path: Path, input_size: int | tuple[int, int], output_names: Sequence[str]) -> Path:
    """Write `model` as one ONNX file with input `input` [N, 3, H, W] (size: square int or (H, W)), dynamic batch."""
    model.eval()
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    dummy = torch.zeros(1, 3, height, width)
    dynamic = {"input": {0: "batch"}} | {name: {0: "batch"} for name in output_names}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (see the module docstring); its deprecation notice is noise.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=list(output_names),
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise TrainingError(f"ONNX export put {len(external)} tensors in external files; a bundle needs one file")
    onnx.checker.check_model(proto)
    return path


def export_openvino(onnx_path: Path, out_dir: Path) -> dict[str, Path]:
    """OpenVINO IR from the ONNX file: FP32 in out_dir/model.xml, FP16 weights in out_dir/fp16/model.xml."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fp16").mkdir(exist_ok=True)
    ov.save_model(model, str(out_dir / "model.xml"), compress_to_fp16=False)
    ov.save_model(model, str(out_dir / "fp16" / "model.xml"), compress_to_fp16=True)
    return {
        "openvino/model.xml": out_dir / "model.xml",
        "openvino/model.bin": out_dir / "model.bin",
        "openvino/fp16/model.xml": out_dir / "fp16" / "model.xml",
        "openvino/fp16/model.bin": out_dir / "fp16" / "model.bin",
    }


def nncf_available() -> bool:
    """Whether NNCF (needed for INT8) is installed."""
    try:
        import nncf  # noqa: F401
    except ImportError:
        return False
    return True


def export_openvino_int8(onnx_path: Path, out_dir: Path, calibration: np.ndarray) -> dict[str, Path]:
    """INT8 IR quantised by NNCF post-training quantisation, calibrated on training images' tensors."""
    if not nncf_available():
        raise TrainingError(
            "INT8 export needs NNCF, which is not installed: pip install 'shelfwatch[int8]' (or nncf), "
            "or train without --int8"
        )
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    # The classifier's linear head (a MatMul; the CNNs have no other) stays FP32: its input, the embedding,
    # concatenates pooled features of very different ranges that one INT8 scale crushes, and the head's weights
    # (fitted on standardised features) magnify that. Quantised, the 4-zone synthetic-shelf model agreed with FP32
    # on 44% of zone crops, in FP32 on 98%; grocery5 test/ 98% -> 100% (docs/BENCHMARKS.md, issue 15). It is a
    # few kFLOPs of the model's hundreds of MFLOPs.
    head = nncf.IgnoredScope(types=["MatMul"], validate=False)
    quantised = nncf.quantize(model, dataset, subset_size=min(300, len(calibration)), ignored_scope=head)
    (out_dir / "int8").mkdir(parents=True, exist_ok=True)
    ov.save_model(quantised, str(out_dir / "int8" / "model.xml"))
    return {
        "openvino/int8/model.xml": out_dir / "int8" / "model.xml",
        "openvino/int8/model.bin": out_dir / "int8" / "model.bin",
    }


def compare_logits(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """max |difference|, the same relative to the output range, and the share of rows with the same top-1."""
    diff = float(np.max(np.abs(reference - other))) if reference.size else 0.0
    scale = max(1.0, float(np.max(np.abs(reference)))) if reference.size else 1.0
    agree = float(np.mean(reference.argmax(-1) == other.argmax(-1))) if reference.size else 1.0
    return {"max_abs_diff": diff, "relative_diff": diff / scale, "top1_agreement": agree}


Outputs = dict[str, np.ndarray]
Infer = Callable[[np.ndarray], Outputs]
# (engine name, torch's outputs, the exported model's outputs, input tensor, its images) -> (statistics, failure,
# warning): the task's rule for "the exported model computes what was trained".
ParityRule = Callable[[str, Infer, Infer, np.ndarray, list[np.ndarray]], tuple[dict[str, Any], str | None, str | None]]

# Bundle file -> the name its parity entry has in the report; OpenVINO variants all compute in fp32 here, so
# what is measured is what the stored (FP16-compressed, INT8-quantised) weights do.
PARITY_FILES = {
    "onnxruntime": "model.onnx",
    "openvino": "openvino/model.xml",
    "openvino_fp16": "openvino/fp16/model.xml",
    "openvino_int8": "openvino/int8/model.xml",
}


def exported_engine(name: str, path: Path, threads: int | None = None) -> Engine:
    """The device's engine (edge.runtime's registry) for one exported model file, computing in fp32."""
    from edge.errors import EngineError
    from edge.runtime.engines import open_engine

    try:
        return open_engine("onnxruntime" if name == "onnxruntime" else "openvino", path, threads, "fp32")
    except EngineError as err:
        raise TrainingError(f"the exported model {path.name} does not load: {err}") from err


def check_parity(
    module: nn.Module,
    model_files: dict[str, Path],
    tensor: np.ndarray,
    images: list[np.ndarray],
    *,
    input_name: str,
    output_names: Sequence[str],
    rule: ParityRule,
    header: dict[str, Any] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Every exported model file (ONNX Runtime, OpenVINO FP32 / FP16 / INT8 when present) through the device's
    engines against the torch module on `tensor` (the preprocessed `images`); raises past the task's `rule`."""
    module.eval()
    last: list[tuple[np.ndarray, Outputs]] = []

    def reference(batch: np.ndarray) -> Outputs:
        if last and last[0][0].shape == batch.shape and np.array_equal(last[0][0], batch):
            return last[0][1]
        with torch.no_grad():
            raw = module(torch.from_numpy(batch))
        values = raw if isinstance(raw, tuple | list) else (raw,)
        outputs = {name: v.numpy() for name, v in zip(output_names, values, strict=True)}
        last[:] = [(batch, outputs)]
        return outputs

    report: dict[str, Any] = {"images": len(tensor), **(header or {}), "warnings": []}
    failures = []
    for name, rel in PARITY_FILES.items():
        if rel not in model_files:
            continue
        engine = exported_engine(name, model_files[rel], threads)

        def exported(batch: np.ndarray, engine: Engine = engine) -> Outputs:
            return engine.infer({input_name: batch})

        stats, failure, warning = rule(name, reference, exported, tensor, images)
        report[name] = stats
        if failure:
            failures.append(failure)
        if warning:
            report["warnings"].append(warning)
    report["passed"] = not failures
    if failures:
        raise TrainingError("exported model disagrees with the trained one: " + "; ".join(failures))
    return report
