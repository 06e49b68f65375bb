"""Raw output tensors -> meaning: softmax, and per-class NMS for detection (NMS runs here, not in the graph)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One detected object: label, score and normalised x1, y1, x2, y2 of the original image."""

    label: str
    score: float
    bbox: tuple[float, float, float, float]


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax."""
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a [N, 4] and b [M, 4] in x1, y1, x2, y2."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy NMS; indices of the kept boxes, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = iou_matrix(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return keep


def decode_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: list[str],
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    valid_w: float = 1.0,
    valid_h: float = 1.0,
) -> list[Detection]:
    """One image's boxes [K, 4] and scores [K, C] -> detections after per-class NMS.

    `valid_w`/`valid_h` undo letterbox padding: box coordinates are divided by the share of the input that held
    the image, then clipped to 0..1.
    """
    out: list[Detection] = []
    b = boxes.astype(np.float32).copy()
    b[:, [0, 2]] /= valid_w
    b[:, [1, 3]] /= valid_h
    b = np.clip(b, 0.0, 1.0)
    for c, label in enumerate(labels):
        s = scores[:, c]
        idx = np.nonzero(s >= score_threshold)[0]
        if idx.size == 0:
            continue
        kept = nms(b[idx], s[idx], iou_threshold)
        for k in kept:
            i = idx[k]
            x1, y1, x2, y2 = (float(v) for v in b[i])
            if x2 > x1 and y2 > y1:
                out.append(Detection(label, float(s[i]), (x1, y1, x2, y2)))
    out.sort(key=lambda d: -d.score)
    return out[:max_detections]
