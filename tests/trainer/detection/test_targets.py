"""Box coding and FCOS target assignment: what is encoded decodes back to the same box."""

from __future__ import annotations

import math

import torch

from trainer.detection.targets import Level, assign_targets, decode_ltrb, encode_ltrb, level_points

LEVELS = [Level(20, 20, 0.0, 0.4), Level(10, 10, 0.4, math.inf)]


def test_encode_decode_round_trip() -> None:
    points = torch.tensor([[0.3, 0.4], [0.5, 0.5], [0.71, 0.2]])
    boxes = torch.tensor([[0.1, 0.2, 0.6, 0.9], [0.45, 0.3, 0.52, 0.6], [0.7, 0.1, 0.9, 0.3]])
    ltrb = encode_ltrb(points, boxes)
    assert torch.all(ltrb > 0)
    assert torch.allclose(decode_ltrb(points, ltrb), boxes, atol=1e-6)


def test_level_points_are_cell_centres_row_major() -> None:
    points = level_points(Level(2, 4, 0.0, 1.0))
    assert points.shape == (8, 2)
    assert torch.allclose(points[0], torch.tensor([0.125, 0.25]))
    assert torch.allclose(points[5], torch.tensor([0.375, 0.75]))  # row 1, column 1


def test_assigned_targets_decode_back_to_the_ground_truth() -> None:
    gt = torch.tensor([[0.02, 0.02, 0.20, 0.25], [0.10, 0.10, 0.98, 0.98]])
    labels = torch.tensor([0, 2])
    t = assign_targets(LEVELS, gt, labels)
    points = torch.cat([level_points(lv) for lv in LEVELS])
    positive = t.labels >= 0
    assert positive.sum() >= 2
    # each positive point's encoded distances decode to exactly its assigned ground-truth box
    decoded = decode_ltrb(points[positive], encode_ltrb(points[positive], t.boxes[positive]))
    assert torch.allclose(decoded, t.boxes[positive], atol=1e-6)
    assert {tuple(b.tolist()) for b in t.boxes[positive]} == {tuple(b.tolist()) for b in gt}
    # the small box lives on the fine level, the large one (reach > 0.4) on the coarse level
    fine = torch.arange(points.shape[0]) < 400
    assert set(t.labels[positive & fine].tolist()) == {0}
    assert set(t.labels[positive & ~fine].tolist()) == {2}
    assert torch.all(t.centerness[positive] > 0) and torch.all(t.centerness[positive] <= 1)
    assert torch.all(t.centerness[~positive] == 0)


def test_a_box_between_cell_centres_still_gets_a_positive() -> None:
    tiny = torch.tensor([[0.501, 0.501, 0.52, 0.52]])  # smaller than a cell, no centre inside
    t = assign_targets(LEVELS, tiny, torch.tensor([1]))
    assert (t.labels == 1).sum() == 1


def test_no_boxes_means_all_background() -> None:
    t = assign_targets(LEVELS, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert t.labels.shape == (500,) and torch.all(t.labels == -1)
