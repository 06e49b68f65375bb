"""Image -> input tensor, exactly as a bundle's `input` spec says. The trainer uses the same code, so training
and inference agree by construction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.bundle import InputSpec


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed into the network input: scale and the share of the input it covers."""

    scale_x: float
    scale_y: float
    valid_w: float  # fraction of the input width holding image (1.0 for stretch)
    valid_h: float


def resize_for(image_bgr: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Letterbox]:
    """Resize one BGR uint8 image to the network size (stretch or letterbox, padding bottom/right)."""
    h, w = image_bgr.shape[:2]
    if spec.resize == "stretch":
        out = cv2.resize(image_bgr, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        return out, Letterbox(spec.width / w, spec.height / h, 1.0, 1.0)
    s = min(spec.width / w, spec.height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    canvas = np.zeros((spec.height, spec.width, 3), dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, Letterbox(s, s, nw / spec.width, nh / spec.height)


def to_tensor(resized_bgr: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Stack resized BGR uint8 images into a float32 NCHW tensor with the spec's colour order, scale, mean, std.

    Written channel by channel into the one output array, in place: the same float32 operations in the same
    order as `(x * scale - mean) / std` on the whole stack (bit-identical), without its four stack-sized
    temporaries. Those are megabytes each, and on a device whose allocator maps every large block afresh
    (edge.cameras.memory) each one costs page faults on every frame.
    """
    images = list(resized_bgr)
    if not images:
        raise ValueError("to_tensor needs at least one image")
    h, w = images[0].shape[:2]
    out = np.empty((len(images), 3, h, w), dtype=np.float32)
    scale = np.float32(spec.scale)
    mean = [np.float32(m) for m in spec.mean]
    std = [np.float32(s) for s in spec.std]
    order = (2, 1, 0) if spec.color == "RGB" else (0, 1, 2)
    for i, image in enumerate(images):
        if image.shape[:2] != (h, w):
            raise ValueError(f"to_tensor: image {i} is {image.shape[1]}x{image.shape[0]}, not {w}x{h}")
        for c, source in enumerate(order):
            plane = out[i, c]
            plane[...] = image[..., source]
            plane *= scale
            plane -= mean[c]
            plane /= std[c]
    return out


def preprocess(images_bgr: Sequence[np.ndarray], spec: InputSpec) -> tuple[np.ndarray, list[Letterbox]]:
    """BGR uint8 images (any sizes) -> (float32 NCHW tensor, per-image placement)."""
    resized, boxes = zip(*(resize_for(im, spec) for im in images_bgr), strict=True)
    return to_tensor(resized, spec), list(boxes)
