"""Box-aware augmentation keeps boxes on the pixels they describe."""

from __future__ import annotations

import numpy as np

from trainer.detection.augment import AugmentConfig, augment, crop, hflip, rotate, zoom_out


def _image_with_block(box: tuple[int, int, int, int], size: tuple[int, int] = (100, 200)) -> np.ndarray:
    image = np.full((*size, 3), 220, dtype=np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 20
    return image


def _dark_bounds(image: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(image[..., 0] < 100)
    h, w = image.shape[:2]
    return xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h


def test_hflip_mirrors_boxes_and_keeps_y() -> None:
    image = _image_with_block((20, 10, 60, 50))
    boxes = np.array([[0.1, 0.1, 0.3, 0.5]], dtype=np.float32)
    out, out_boxes = hflip(image, boxes)
    assert np.allclose(out_boxes, [[0.7, 0.1, 0.9, 0.5]])
    assert np.allclose(_dark_bounds(out), out_boxes[0])


def test_crop_moves_clips_and_drops_boxes() -> None:
    image = _image_with_block((20, 10, 60, 50))
    boxes = np.array([[0.1, 0.1, 0.3, 0.5], [0.9, 0.9, 1.0, 1.0]], dtype=np.float32)
    out, out_boxes, labels = crop(image, boxes, np.array([0, 1]), (0.05, 0.0, 0.55, 0.8), min_visible=0.35)
    assert out.shape[:2] == (80, 100)
    assert labels.tolist() == [0]  # the corner box is outside the crop
    assert np.allclose(out_boxes[0], _dark_bounds(out))


def test_zoom_out_and_rotation_keep_boxes_on_the_block() -> None:
    rng = np.random.default_rng(1)
    image = _image_with_block((80, 30, 120, 70))
    boxes = np.array([[0.4, 0.3, 0.6, 0.7]], dtype=np.float32)
    out, out_boxes = zoom_out(image, boxes, 1.3, rng)
    assert np.allclose(out_boxes[0], _dark_bounds(out), atol=0.01)
    still, same = rotate(image, boxes, 0.0)
    assert np.allclose(same, boxes, atol=0.01) and np.array_equal(still, image)
    turned, turned_boxes = rotate(image, boxes, 6.0)
    # the box stays centred on the block and roughly as large (the inscribed ellipse keeps it tight)
    dark = _dark_bounds(turned)
    assert abs((turned_boxes[0, 0] + turned_boxes[0, 2]) / 2 - (dark[0] + dark[2]) / 2) < 0.01
    assert turned_boxes[0, 2] - turned_boxes[0, 0] < (dark[2] - dark[0]) + 0.01


def test_random_views_never_flip_vertically() -> None:
    rng = np.random.default_rng(0)
    image = _image_with_block((80, 5, 120, 30))  # block near the top
    boxes = np.array([[0.4, 0.05, 0.6, 0.3]], dtype=np.float32)
    cfg = AugmentConfig(crop=0.0, zoom_out=0.0, rotate=0.0)
    for _ in range(20):
        out, out_boxes, labels = augment(image, boxes, np.array([0]), cfg, rng)
        assert out_boxes[0, 3] < 0.5 and labels.tolist() == [0]
        assert np.allclose(_dark_bounds(out)[1::2], out_boxes[0, 1::2], atol=0.02)


def test_inputs_are_left_alone() -> None:
    rng = np.random.default_rng(0)
    image = _image_with_block((20, 10, 60, 50))
    boxes = np.array([[0.1, 0.1, 0.3, 0.5]], dtype=np.float32)
    before_img, before_boxes = image.copy(), boxes.copy()
    for _ in range(10):
        augment(image, boxes, np.array([0]), AugmentConfig(), rng)
    assert np.array_equal(image, before_img) and np.array_equal(boxes, before_boxes)
