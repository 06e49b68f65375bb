"""Image -> input tensor, exactly as a bundle's `input` spec says. The trainer uses the same code, so training
and inference agree by construction."""

from __future__ import annotations

import threading
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


def to_tensor(resized_bgr: Sequence[np.ndarray], spec: InputSpec, out: np.ndarray | None = None) -> np.ndarray:
    """Stack resized BGR uint8 images into a float32 NCHW tensor with the spec's colour order, scale, mean, std.

    Written channel by channel into the one output array (`out` when given: [N, 3, H, W] float32), in place:
    the same float32 operations in the same order as `(x * scale - mean) / std` on the whole stack
    (bit-identical), without its four stack-sized temporaries. Those are megabytes each, and on a device whose
    allocator maps every large block afresh (edge.cameras.memory) each one costs page faults on every frame.
    """
    images = list(resized_bgr)
    if not images:
        raise ValueError("to_tensor needs at least one image")
    h, w = images[0].shape[:2]
    for i, image in enumerate(images):
        if image.shape[:2] != (h, w):
            raise ValueError(f"to_tensor: image {i} is {image.shape[1]}x{image.shape[0]}, not {w}x{h}")
    if out is None:
        out = np.empty((len(images), 3, h, w), dtype=np.float32)
    for i, image in enumerate(images):
        _normalise(image, spec, out[i])
    return out


def _normalise(images: np.ndarray, spec: InputSpec, out: np.ndarray) -> None:
    """uint8 [..., H, W, 3] BGR -> float32 [..., 3, H, W] in `out`: per channel x * scale (the uint8 value cast to
    float32 exactly), then - mean, then / std, each a float32 operation in place."""
    scale = np.float32(spec.scale)
    order = (2, 1, 0) if spec.color == "RGB" else (0, 1, 2)
    for c, source in enumerate(order):
        plane = out[..., c, :, :]
        np.multiply(images[..., source], scale, out=plane, dtype=np.float32)
        plane -= np.float32(spec.mean[c])
        plane /= np.float32(spec.std[c])


def preprocess(
    images_bgr: Sequence[np.ndarray], spec: InputSpec, buffers: PreprocessBuffers | None = None
) -> tuple[np.ndarray, list[Letterbox]]:
    """BGR uint8 images (any sizes) -> (float32 NCHW tensor, per-image placement).

    With `buffers` the resized images and the tensor are written into that thread's arrays from its previous
    call (bit-identical; the tensor is only valid until the same thread's next call with these buffers).
    """
    if buffers is None:
        resized, boxes = zip(*(resize_for(im, spec) for im in images_bgr), strict=True)
        return to_tensor(resized, spec), list(boxes)
    if not images_bgr:
        raise ValueError("to_tensor needs at least one image")
    stack, out = buffers.arrays(len(images_bgr), spec.height, spec.width)
    placements = [_resize_into(im, spec, stack[i]) for i, im in enumerate(images_bgr)]
    _normalise(stack, spec, out)
    return out, placements


def _resize_into(image_bgr: np.ndarray, spec: InputSpec, dst: np.ndarray) -> Letterbox:
    """resize_for() written into dst (H x W x 3 uint8, contiguous): the same pixels, no new array."""
    h, w = image_bgr.shape[:2]
    if spec.resize == "stretch":
        done = cv2.resize(image_bgr, (spec.width, spec.height), dst=dst, interpolation=cv2.INTER_LINEAR)
        if done is not dst:  # OpenCV wrote elsewhere (it should not for a matching contiguous dst)
            dst[...] = done
        return Letterbox(spec.width / w, spec.height / h, 1.0, 1.0)
    s = min(spec.width / w, spec.height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    dst[:nh, :nw] = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dst[nh:] = 0
    dst[:nh, nw:] = 0
    return Letterbox(s, s, nw / spec.width, nh / spec.height)


class PreprocessBuffers:
    """Arrays that preprocess() reuses, one set per thread: the resized uint8 images [N, H, W, 3] and the float32
    tensor [N, 3, H, W] of a call, kept for the thread's next call (grown to the most rows it asked for).

    A model wrapper keeps one: a camera's pipeline thread then writes every frame's crops and tensor into the same
    memory instead of fresh megabytes, which under the device's allocator (every block of 128 KiB or more its own
    mmap, edge.cameras.memory) page-faulted in on every frame (SqueezeNet 224, 4 zone crops: to_tensor 1.6 ms
    with fresh arrays, 0.4 ms reused; docs/BENCHMARKS.md issue 15, session 6). Costs each thread that calls the
    model its largest call's arrays (4 rows of 224 x 224: 3 MB; one 384 x 384 frame: 2.2 MB), freed with the
    thread.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def arrays(self, rows: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """This thread's uint8 image stack and float32 tensor for `rows` images, as [:rows] views."""
        kept: tuple[np.ndarray, np.ndarray] | None = getattr(self._local, "arrays", None)
        if kept is None or kept[0].shape[0] < rows or kept[0].shape[1:3] != (height, width):
            kept = (np.empty((rows, height, width, 3), np.uint8), np.empty((rows, 3, height, width), np.float32))
            self._local.arrays = kept
        return kept[0][:rows], kept[1][:rows]
