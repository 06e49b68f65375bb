"""Export a trained network: ONNX (one file, dynamic batch), OpenVINO IR FP32 and FP16, optional INT8 (NNCF),
and a parity check of every exported model against the torch module on real evaluation images.

The ONNX file uses the TorchScript-based exporter (`dynamo=False`): it is deterministic, writes one file with the
weights inside, and handles these small CNNs without onnxscript's graph rewrites. The parity check runs the same
input tensor through torch, ONNX Runtime and OpenVINO and records max |difference| of the outputs and the share of
images whose top-1 class agrees; FP32 models must agree within `FP32_TOLERANCE` (relative to the output range)
and top-1 exactly, or export fails loudly. FP16 must keep top-1 agreement of at least `REDUCED_TOP1_MIN` (checked
on 10 or more images); INT8 (opt-in) below that is a warning in the report.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainer.errors import TrainingError

log = logging.getLogger(__name__)

OPSET = 17
FP32_TOLERANCE = 1e-3
REDUCED_TOP1_MIN = 0.9
MIN_IMAGES_TO_FAIL_REDUCED = 10  # below this one flipped image says little about a reduced-precision model


@dataclass(frozen=True)
class ExportedFiles:
    """Bundle-relative name -> file on disk, for every model file written."""

    files: dict[str, Path]
    int8: bool


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
    quantised = nncf.quantize(model, dataset, subset_size=min(300, len(calibration)))
    (out_dir / "int8").mkdir(parents=True, exist_ok=True)
    ov.save_model(quantised, str(out_dir / "int8" / "model.xml"))
    return {
        "openvino/int8/model.xml": out_dir / "int8" / "model.xml",
        "openvino/int8/model.bin": out_dir / "int8" / "model.bin",
    }


def run_onnxruntime(onnx_path: Path, batch: np.ndarray, threads: int | None = None) -> list[np.ndarray]:
    """Outputs of the ONNX model on one input batch (CPU provider)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in session.run(None, {"input": batch})]


def run_openvino(xml_path: Path, batch: np.ndarray) -> list[np.ndarray]:
    """Outputs of an OpenVINO IR on one input batch (CPU, full precision hint so FP32 stays FP32)."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(str(xml_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(batch)
    return [np.asarray(result[out]) for out in compiled.outputs]


def _compare(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    diff = float(np.max(np.abs(reference - other))) if reference.size else 0.0
    scale = max(1.0, float(np.max(np.abs(reference)))) if reference.size else 1.0
    agree = float(np.mean(reference.argmax(-1) == other.argmax(-1))) if reference.size else 1.0
    return {"max_abs_diff": diff, "relative_diff": diff / scale, "top1_agreement": agree}


def classification_parity(
    model: nn.Module,
    model_files: dict[str, Path],
    batch: np.ndarray,
    *,
    compare: Callable[[np.ndarray, np.ndarray], dict[str, float]] = _compare,
) -> dict[str, Any]:
    """torch vs ONNX Runtime vs OpenVINO (FP32, FP16, INT8 when present) on `batch`; raises past tolerance."""
    model.eval()
    with torch.no_grad():
        reference = model(torch.from_numpy(batch)).numpy()
    engines: dict[str, tuple[Callable[[Path, np.ndarray], list[np.ndarray]], Path]] = {
        "onnxruntime": (run_onnxruntime, model_files["model.onnx"])
    }
    for name, rel in (
        ("openvino", "openvino/model.xml"),
        ("openvino_fp16", "openvino/fp16/model.xml"),
        ("openvino_int8", "openvino/int8/model.xml"),
    ):
        if rel in model_files:
            engines[name] = (run_openvino, model_files[rel])
    report: dict[str, Any] = {"images": len(batch), "tolerance": FP32_TOLERANCE, "warnings": []}
    failures = []
    for name, (run, path) in engines.items():
        stats = compare(reference, run(path, batch)[0])
        report[name] = stats
        if name in ("onnxruntime", "openvino"):
            if stats["relative_diff"] > FP32_TOLERANCE or stats["top1_agreement"] < 1.0:
                failures.append(f"{name}: {stats}")
        elif stats["top1_agreement"] < REDUCED_TOP1_MIN:
            message = (
                f"{name}: top-1 agreement with the trained model {stats['top1_agreement']:.2f} "
                f"< {REDUCED_TOP1_MIN} on {len(batch)} images"
            )
            # FP16 is what a device may pick by itself, so it must hold; INT8 is opt-in and reported.
            if name == "openvino_fp16" and len(batch) >= MIN_IMAGES_TO_FAIL_REDUCED:
                failures.append(message)
            else:
                report["warnings"].append(message + "; prefer the FP32 model")
    report["passed"] = not failures
    if failures:
        raise TrainingError("exported model disagrees with the trained one: " + "; ".join(failures))
    return report
