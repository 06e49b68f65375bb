"""Anchor-free (FCOS-style) box coding and target assignment, all in normalised image coordinates.

Every feature-map cell is a point (cx, cy) = ((j + 0.5) / W, (i + 0.5) / H). A point predicts the distances from
itself to the four sides of a box (left, top, right, bottom), so a box is encoded as `ltrb` and decoded back with
x1 = cx - l, y1 = cy - t, x2 = cx + r, y2 = cy + b. Distances are regressed in units of the level's cell size
(`exp(raw) * cell`), which keeps the head's outputs in the same range at every level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Level:
    """One pyramid level as the head sees it: grid size and the box sizes it is responsible for."""

    height: int
    width: int
    # A point on this level takes a box whose largest side distance max(l, t, r, b), in normalised units, lies in
    # [min_reach, max_reach): small boxes on the fine level, large ones on the coarse level (FCOS's size ranges).
    min_reach: float
    max_reach: float

    @property
    def cell(self) -> tuple[float, float]:
        """Cell width and height in normalised units."""
        return 1.0 / self.width, 1.0 / self.height


def level_points(level: Level) -> torch.Tensor:
    """Cell centres [H*W, 2] (cx, cy) in normalised units, row-major like a flattened feature map."""
    ys = (torch.arange(level.height, dtype=torch.float32) + 0.5) / level.height
    xs = (torch.arange(level.width, dtype=torch.float32) + 0.5) / level.width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)


def level_cells(levels: list[Level]) -> torch.Tensor:
    """Per point of all levels concatenated: the cell size [K, 2] (w, h) used to scale regressed distances."""
    return torch.cat([torch.tensor(lv.cell, dtype=torch.float32).expand(lv.height * lv.width, 2) for lv in levels])


def encode_ltrb(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Distances [P, 4] from points [P, 2] to the sides of boxes [P, 4] (x1, y1, x2, y2)."""
    return torch.stack(
        [
            points[:, 0] - boxes[:, 0],
            points[:, 1] - boxes[:, 1],
            boxes[:, 2] - points[:, 0],
            boxes[:, 3] - points[:, 1],
        ],
        dim=1,
    )


def decode_ltrb(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """Boxes (x1, y1, x2, y2) from points [..., 2] and side distances [..., 4]; inverse of encode_ltrb."""
    return torch.cat([points - ltrb[..., :2], points + ltrb[..., 2:]], dim=-1)


@dataclass
class Targets:
    """Training targets for one image over the K points of all levels."""

    labels: torch.Tensor  # [K] int64 class index, -1 for background
    boxes: torch.Tensor  # [K, 4] assigned ground-truth box (meaningful where labels >= 0)
    centerness: torch.Tensor  # [K] FCOS centre-ness of the point inside its box (0 for background)


def assign_targets(
    levels: list[Level],
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    center_radius: float = 1.5,
) -> Targets:
    """FCOS assignment with centre sampling: a point is positive for a box when it lies inside the box, within
    `center_radius` cells of the box centre, and the box's size suits the point's level; ties go to the smaller
    box."""
    points = torch.cat([level_points(lv) for lv in levels])
    cells = level_cells(levels)
    reach_lo = torch.cat([torch.full((lv.height * lv.width,), lv.min_reach) for lv in levels])
    reach_hi = torch.cat([torch.full((lv.height * lv.width,), lv.max_reach) for lv in levels])
    k = points.shape[0]
    if gt_boxes.numel() == 0:
        return Targets(torch.full((k,), -1, dtype=torch.int64), torch.zeros(k, 4), torch.zeros(k))

    gt = gt_boxes.float()
    ltrb = torch.stack(
        [
            points[:, None, 0] - gt[None, :, 0],
            points[:, None, 1] - gt[None, :, 1],
            gt[None, :, 2] - points[:, None, 0],
            gt[None, :, 3] - points[:, None, 1],
        ],
        dim=2,
    )  # [K, G, 4]
    inside_box = ltrb.min(dim=2).values > 0
    centre_x = (gt[:, 0] + gt[:, 2]) / 2
    centre_y = (gt[:, 1] + gt[:, 3]) / 2
    near_centre = ((points[:, None, 0] - centre_x[None]).abs() < center_radius * cells[:, None, 0]) & (
        (points[:, None, 1] - centre_y[None]).abs() < center_radius * cells[:, None, 1]
    )
    reach = ltrb.max(dim=2).values
    suits_level = (reach >= reach_lo[:, None]) & (reach < reach_hi[:, None])
    candidate = inside_box & near_centre & suits_level

    # Every box gets at least the point nearest its centre (on a level that suits it when one has a point inside),
    # so small, thin or oddly sized boxes are never dropped from training.
    centre_dist = (points[:, None, 0] - centre_x[None]).abs() / cells[:, None, 0] + (
        points[:, None, 1] - centre_y[None]
    ).abs() / cells[:, None, 1]
    for g in torch.nonzero(~candidate.any(dim=0)).flatten().tolist():
        pool = inside_box[:, g] & suits_level[:, g]
        if not pool.any():
            pool = inside_box[:, g] if inside_box[:, g].any() else torch.ones(k, dtype=torch.bool)
        dist = torch.where(pool, centre_dist[:, g], torch.full((k,), float("inf")))
        candidate[int(dist.argmin()), g] = True

    area = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    area_per_point = torch.where(candidate, area[None, :].expand(k, -1), torch.full_like(reach, float("inf")))
    best_area, best_gt = area_per_point.min(dim=1)
    positive = torch.isfinite(best_area)
    labels = torch.where(positive, gt_labels.long()[best_gt], torch.full((k,), -1, dtype=torch.int64))
    boxes = gt[best_gt]
    chosen = ltrb[torch.arange(k), best_gt].clamp(min=1e-6)
    lr = chosen[:, [0, 2]]
    tb = chosen[:, [1, 3]]
    centerness = torch.sqrt(
        (lr.min(dim=1).values / lr.max(dim=1).values) * (tb.min(dim=1).values / tb.max(dim=1).values)
    )
    centerness = torch.where(positive, centerness, torch.zeros_like(centerness))
    return Targets(labels, boxes, centerness)
