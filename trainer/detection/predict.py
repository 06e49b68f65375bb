"""Run a detector the way the device does: edge preprocessing -> raw tensors -> edge decode (per-class NMS).

`Infer` is any callable from an input tensor to the two raw outputs (boxes, scores), so a torch module, an ONNX
Runtime session and an OpenVINO compiled model are evaluated through the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.bundle import InputSpec
from edge.runtime.postprocess import Detection, decode_detections
from edge.runtime.preprocess import Letterbox, preprocess

Infer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

# Scores this low only matter for mAP, which integrates the whole PR curve.
EVAL_SCORE_THRESHOLD = 0.01


def read_image(path: Path) -> np.ndarray:
    """A BGR uint8 image from disk; ValueError naming the file when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return image


def torch_infer(model: object) -> Infer:
    """An Infer for a torch detector module (eval mode, no gradients)."""
    import torch

    module = model  # typed loosely so this file imports without torch

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        module.eval()  # type: ignore[attr-defined]
        with torch.no_grad():
            boxes, scores = module(torch.from_numpy(batch))[:2]  # type: ignore[operator]  # a 3rd: features
        return boxes.numpy(), scores.numpy()

    return run


def onnx_infer(model_path: Path, input_name: str = "input", outputs: tuple[str, str] = ("boxes", "scores")) -> Infer:
    """An Infer running an ONNX file in ONNX Runtime on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = session.run(list(outputs), {input_name: batch})
        return np.asarray(boxes), np.asarray(scores)

    return run


def decode_batch(
    boxes: np.ndarray,
    scores: np.ndarray,
    placements: Sequence[Letterbox],
    labels: list[str],
    score_threshold: float = EVAL_SCORE_THRESHOLD,
    nms_iou: float = 0.5,
    max_detections: int = 100,
) -> list[list[Detection]]:
    """Raw outputs of a batch (boxes [N, K, 4], scores [N, K, C]) -> detections per image, the device's decode."""
    return [
        decode_detections(
            boxes[i],
            scores[i],
            labels,
            score_threshold,
            nms_iou,
            max_detections,
            valid_w=placement.valid_w,
            valid_h=placement.valid_h,
        )
        for i, placement in enumerate(placements)
    ]


def predict_detections(
    infer: Infer,
    images: Sequence[np.ndarray | Path],
    spec: InputSpec,
    labels: list[str],
    score_threshold: float = EVAL_SCORE_THRESHOLD,
    nms_iou: float = 0.5,
    max_detections: int = 100,
    batch_size: int = 8,
) -> list[list[Detection]]:
    """Detections per image (BGR arrays or paths), decoded exactly as edge.runtime.postprocess does on the device."""
    out: list[list[Detection]] = []
    for start in range(0, len(images), batch_size):
        chunk = [read_image(im) if isinstance(im, Path) else im for im in images[start : start + batch_size]]
        tensor, placements = preprocess(chunk, spec)
        boxes, scores = infer(tensor)
        out.extend(decode_batch(boxes, scores, placements, labels, score_threshold, nms_iou, max_detections))
    return out
