"""Small generated images for the store tests."""

from __future__ import annotations

import cv2
import numpy as np


def image_array(seed: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A smooth random BGR picture: distinct per seed, with structure for the perceptual hash to see."""
    rng = np.random.default_rng(seed)
    noise = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 4).astype(np.float32)
    # Stretched to 20..200: strong structure, and room to brighten without clipping.
    low, high = smooth.min(), smooth.max()
    return (20 + (smooth - low) * (180 / max(high - low, 1))).astype(np.uint8)


def encode(array: np.ndarray, ext: str = ".jpg", quality: int = 95) -> bytes:
    """Encode a BGR array to file bytes."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, array, params)
    assert ok
    return buf.tobytes()


def image_bytes(seed: int, ext: str = ".jpg", width: int = 64, height: int = 48) -> bytes:
    """A generated image, encoded."""
    return encode(image_array(seed, width, height), ext)
