"""Box-aware augmentation for shelf photos: horizontal flip, scale/crop, small rotation, colour.

No vertical flip: shelves have a floor and a ceiling, and an upside-down shelf is not a view the camera will see.
Boxes are normalised x1, y1, x2, y2 arrays [G, 4]; every function returns new arrays and leaves its inputs alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """How strong each augmentation is; probabilities are per view."""

    flip: float = 0.5
    crop: float = 0.7
    min_crop_side: float = 0.6  # a crop keeps at least this share of each side
    zoom_out: float = 0.15  # chance to shrink the photo onto a larger canvas instead of cropping
    max_zoom_out: float = 1.4
    rotate: float = 0.4
    max_degrees: float = 7.0
    colour: float = 0.8
    grayscale: float = 0.1
    blur: float = 0.1
    min_visible: float = 0.35  # a box cut by a crop survives when this share of its area stays in view


def hflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right."""
    out = boxes.copy()
    out[:, 0] = 1.0 - boxes[:, 2]
    out[:, 2] = 1.0 - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), out


def crop(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    window: tuple[float, float, float, float],
    min_visible: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut the normalised window (x1, y1, x2, y2) out of the image; boxes are clipped to it and dropped when less
    than `min_visible` of their area stays inside."""
    h, w = image.shape[:2]
    wx1, wy1, wx2, wy2 = window
    px1, py1 = round(wx1 * w), round(wy1 * h)
    px2, py2 = max(px1 + 1, round(wx2 * w)), max(py1 + 1, round(wy2 * h))
    out_img = image[py1:py2, px1:px2]
    # Use the pixel-exact window so boxes and pixels agree.
    wx1, wy1, wx2, wy2 = px1 / w, py1 / h, px2 / w, py2 / h
    clipped = boxes.copy()
    clipped[:, [0, 2]] = np.clip(boxes[:, [0, 2]], wx1, wx2)
    clipped[:, [1, 3]] = np.clip(boxes[:, [1, 3]], wy1, wy2)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = visible >= min_visible * np.maximum(area, 1e-12)
    clipped = clipped[keep]
    clipped[:, [0, 2]] = (clipped[:, [0, 2]] - wx1) / (wx2 - wx1)
    clipped[:, [1, 3]] = (clipped[:, [1, 3]] - wy1) / (wy2 - wy1)
    return np.ascontiguousarray(out_img), clipped, labels[keep]


def zoom_out(image: np.ndarray, boxes: np.ndarray, factor: float, rng: np.random.Generator):
    """Place the photo at a random spot on a canvas `factor` times larger, filled with its mean colour."""
    h, w = image.shape[:2]
    ch, cw = round(h * factor), round(w * factor)
    ox, oy = int(rng.integers(0, cw - w + 1)), int(rng.integers(0, ch - h + 1))
    canvas = np.empty((ch, cw, 3), dtype=np.uint8)
    canvas[:] = image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    canvas[oy : oy + h, ox : ox + w] = image
    out = boxes.copy()
    out[:, [0, 2]] = (boxes[:, [0, 2]] * w + ox) / cw
    out[:, [1, 3]] = (boxes[:, [1, 3]] * h + oy) / ch
    return canvas, out


def rotate(image: np.ndarray, boxes: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the centre (black corners, like the tilted copies in real datasets); each box becomes the
    bounds of its rotated inscribed ellipse, which stays tight where rotating the corners would grow the box."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    out_img = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    if len(boxes) == 0:
        return out_img, boxes.copy()
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 * w
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 * h
    rx = (boxes[:, 2] - boxes[:, 0]) / 2 * w
    ry = (boxes[:, 3] - boxes[:, 1]) / 2 * h
    px = cx[:, None] + rx[:, None] * np.cos(angles)[None]
    py = cy[:, None] + ry[:, None] * np.sin(angles)[None]
    qx = matrix[0, 0] * px + matrix[0, 1] * py + matrix[0, 2]
    qy = matrix[1, 0] * px + matrix[1, 1] * py + matrix[1, 2]
    out = np.stack([qx.min(1) / w, qy.min(1) / h, qx.max(1) / w, qy.max(1) / h], axis=1)
    return out_img, np.clip(out, 0.0, 1.0)


def colour_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast, saturation and hue shift (shop lighting and camera white balance vary)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
    hsv[..., 1] *= rng.uniform(0.6, 1.4)
    hsv[..., 2] *= rng.uniform(0.7, 1.3)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    contrast = rng.uniform(0.75, 1.25)
    out = (out - out.mean()) * contrast + out.mean()
    return np.clip(out, 0, 255).astype(np.uint8)


def augment(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random view of a BGR uint8 image with its boxes [G, 4] and labels [G]."""
    boxes = boxes.astype(np.float32).reshape(-1, 4)
    if rng.random() < cfg.flip:
        image, boxes = hflip(image, boxes)
    if rng.random() < cfg.zoom_out:
        image, boxes = zoom_out(image, boxes, rng.uniform(1.05, cfg.max_zoom_out), rng)
    elif rng.random() < cfg.crop:
        cw = rng.uniform(cfg.min_crop_side, 1.0)
        ch = float(np.clip(cw * rng.uniform(0.8, 1.25), cfg.min_crop_side, 1.0))
        x1, y1 = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
        image, boxes, labels = crop(image, boxes, labels, (x1, y1, x1 + cw, y1 + ch), cfg.min_visible)
    if rng.random() < cfg.rotate:
        image, boxes = rotate(image, boxes, rng.uniform(-cfg.max_degrees, cfg.max_degrees))
    if rng.random() < cfg.colour:
        image = colour_jitter(image, rng)
    if rng.random() < cfg.grayscale:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < cfg.blur:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    return image, boxes, labels
