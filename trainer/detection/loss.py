"""FCOS losses: sigmoid focal loss for classes, GIoU for boxes, binary cross-entropy for centre-ness."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossParts:
    """The three loss terms of one step (already normalised by the number of positive points)."""

    total: torch.Tensor
    cls: float
    box: float
    ctr: float


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0):
    """Summed focal loss (Lin et al.) of logits against 0/1 targets of the same shape."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * ce * (1 - p_t) ** gamma).sum()


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-box 1 - GIoU of pred [P, 4] and target [P, 4] boxes (x1, y1, x2, y2)."""
    x1 = torch.maximum(pred[:, 0], target[:, 0])
    y1 = torch.maximum(pred[:, 1], target[:, 1])
    x2 = torch.minimum(pred[:, 2], target[:, 2])
    y2 = torch.minimum(pred[:, 3], target[:, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    area_p = (pred[:, 2] - pred[:, 0]).clamp(min=0) * (pred[:, 3] - pred[:, 1]).clamp(min=0)
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = area_p + area_t - inter
    iou = inter / union.clamp(min=1e-9)
    ex1 = torch.minimum(pred[:, 0], target[:, 0])
    ey1 = torch.minimum(pred[:, 1], target[:, 1])
    ex2 = torch.maximum(pred[:, 2], target[:, 2])
    ey2 = torch.maximum(pred[:, 3], target[:, 3])
    enclosing = ((ex2 - ex1) * (ey2 - ey1)).clamp(min=1e-9)
    return 1 - (iou - (enclosing - union) / enclosing)


def fcos_loss(
    cls_logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    ctr_logits: torch.Tensor,
    labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_centerness: torch.Tensor,
    box_weight: float = 2.0,
) -> LossParts:
    """Loss over a batch: cls_logits [N, K, C], pred_boxes [N, K, 4] decoded, ctr_logits [N, K]; targets from
    trainer.detection.targets.assign_targets stacked over the batch (labels [N, K], boxes [N, K, 4], ctr [N, K])."""
    positive = labels >= 0
    num_pos = max(float(positive.sum()), 1.0)
    one_hot = torch.zeros_like(cls_logits)
    pos_idx = positive.nonzero(as_tuple=True)
    one_hot[pos_idx[0], pos_idx[1], labels[positive]] = 1.0
    cls = sigmoid_focal_loss(cls_logits, one_hot) / num_pos
    if positive.any():
        weights = gt_centerness[positive]
        box = (giou_loss(pred_boxes[positive], gt_boxes[positive]) * weights).sum() / weights.sum().clamp(min=1e-6)
        ctr = F.binary_cross_entropy_with_logits(ctr_logits[positive], gt_centerness[positive], reduction="sum")
        ctr = ctr / num_pos
    else:
        box = pred_boxes.sum() * 0.0
        ctr = ctr_logits.sum() * 0.0
    total = cls + box_weight * box + ctr
    return LossParts(total, float(cls.detach()), float(box.detach()), float(ctr.detach()))
