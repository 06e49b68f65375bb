"""Detection metrics: COCO mAP through pycocotools, plus the operating-point figures people act on.

mAP@0.5 and mAP@0.5:0.95 follow the COCO definition exactly (pycocotools' COCOeval, 101-point interpolated AP,
up to 100 detections per image). Precision, recall and F1 are counted at IoU 0.5 at one score threshold with
greedy matching per image and label (highest score first, each ground-truth box matched at most once); the PR
curve and the suggested threshold come from the same matching.

Boxes are normalised x1, y1, x2, y2. IoU does not change when an axis is scaled, so every image is handed to
pycocotools as 1000 x 1000 pixels; only COCO's small/medium/large split would depend on real sizes, and it is
not reported.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.datasets.model import Box
from edge.runtime.postprocess import Detection, iou_matrix

log = logging.getLogger(__name__)

_COCO_SIDE = 1000.0


@dataclass(frozen=True)
class _Scored:
    score: float
    label: int
    true_positive: bool


def _xywh(bbox: tuple[float, float, float, float]) -> list[float]:
    x1, y1, x2, y2 = bbox
    return [x1 * _COCO_SIDE, y1 * _COCO_SIDE, (x2 - x1) * _COCO_SIDE, (y2 - y1) * _COCO_SIDE]


def _coco_ap(
    predictions: Sequence[Sequence[Detection]], ground_truth: Sequence[Sequence[Box]], labels: list[str]
) -> tuple[float, float, dict[str, tuple[float | None, float | None]]]:
    """(mAP@0.5, mAP@0.5:0.95, per label (AP@0.5, AP@0.5:0.95)) from pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    index = {name: i + 1 for i, name in enumerate(labels)}
    images = [{"id": i + 1, "width": int(_COCO_SIDE), "height": int(_COCO_SIDE)} for i in range(len(ground_truth))]
    annotations: list[dict[str, Any]] = []
    for image_id, boxes in enumerate(ground_truth, start=1):
        for box in boxes:
            xywh = _xywh(box.as_tuple())
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": index[box.label],
                    "bbox": xywh,
                    "area": xywh[2] * xywh[3],
                    "iscrowd": 0,
                }
            )
    results = [
        {"image_id": image_id, "category_id": index[d.label], "bbox": _xywh(d.bbox), "score": float(d.score)}
        for image_id, dets in enumerate(predictions, start=1)
        for d in dets
    ]
    per_label: dict[str, tuple[float | None, float | None]] = {name: (None, None) for name in labels}
    if not annotations:
        return 0.0, 0.0, per_label
    if not results:
        for name in labels:
            if any(b.label == name for boxes in ground_truth for b in boxes):
                per_label[name] = (0.0, 0.0)
        return 0.0, 0.0, per_label

    # pycocotools prints progress to stdout; a `--json` command's stdout must stay clean.
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": i, "name": n} for n, i in index.items()],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # precision[T, R, K, A, M]: IoU thresholds x recall points x categories x area ranges x max-detection limits.
    precision = evaluator.eval["precision"]
    area_all, max_dets_100 = 0, len(evaluator.params.maxDets) - 1
    for k, name in enumerate(labels):
        table = precision[:, :, k, area_all, max_dets_100]
        if (table > -1).any():
            at50 = table[0][table[0] > -1]
            per_label[name] = (float(at50.mean()) if at50.size else 0.0, float(table[table > -1].mean()))
    map50_95, map50 = float(evaluator.stats[0]), float(evaluator.stats[1])
    # COCOeval reports -1 when nothing could be evaluated; for callers that is an AP of 0.
    return max(map50, 0.0), max(map50_95, 0.0), per_label


def _match(
    predictions: Sequence[Sequence[Detection]], ground_truth: Sequence[Sequence[Box]], labels: list[str], iou: float
) -> list[_Scored]:
    """Every detection with whether it matched a ground-truth box (greedy, highest score first)."""
    index = {name: i for i, name in enumerate(labels)}
    scored: list[_Scored] = []
    for dets, gts in zip(predictions, ground_truth, strict=True):
        for name, k in index.items():
            d = sorted((x for x in dets if x.label == name), key=lambda x: -x.score)
            g = [b.as_tuple() for b in gts if b.label == name]
            if not d:
                continue
            if not g:
                scored.extend(_Scored(x.score, k, False) for x in d)
                continue
            ious = iou_matrix(np.asarray([x.bbox for x in d], dtype=np.float64), np.asarray(g, dtype=np.float64))
            taken = np.zeros(len(g), dtype=bool)
            for i, x in enumerate(d):
                candidates = np.where(taken, -1.0, ious[i])
                j = int(candidates.argmax())
                hit = candidates[j] >= iou
                if hit:
                    taken[j] = True
                scored.append(_Scored(x.score, k, bool(hit)))
    return scored


def _operating_points(scored: list[_Scored], total_gt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds descending, precision, recall) with one point per distinct score."""
    if not scored:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    scores = np.asarray([s.score for s in scored])
    hits = np.asarray([s.true_positive for s in scored], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], hits[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(1.0 - hits)
    # Keep the last index of each run of equal scores: a threshold admits all detections at that score.
    last = np.r_[scores[1:] != scores[:-1], True]
    precision = tp[last] / (tp[last] + fp[last])
    recall = tp[last] / max(total_gt, 1)
    return scores[last], precision, recall


def _counts_at(scored: list[_Scored], total_gt: int, threshold: float) -> dict[str, float]:
    tp = sum(1 for s in scored if s.true_positive and s.score >= threshold)
    fp = sum(1 for s in scored if not s.true_positive and s.score >= threshold)
    fn = total_gt - tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / total_gt if total_gt else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def detection_metrics(
    predictions: list[list[Detection]],
    ground_truth: list[list[Box]],
    labels: list[str],
    iou: float = 0.5,
    score_threshold: float | None = None,
    target_precision: float = 0.9,
    curve_points: int = 101,
) -> dict[str, Any]:
    """mAP (COCO), precision/recall/F1 at `iou` and a score threshold (given, or the one with the best F1), the PR
    curve, and the lowest threshold whose precision reaches `target_precision` (the most recall at that precision).

    `predictions[i]` and `ground_truth[i]` belong to the same image; evaluate with a low score threshold (0.01 or
    below) in decoding, otherwise mAP is cut short.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} prediction lists for {len(ground_truth)} images")
    known = set(labels)
    unknown = {d.label for dets in predictions for d in dets} | {b.label for gts in ground_truth for b in gts}
    unknown -= known
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not among {labels}")

    map50, map50_95, per_label_ap = _coco_ap(predictions, ground_truth, labels)
    scored = _match(predictions, ground_truth, labels, iou)
    total_gt = sum(len(g) for g in ground_truth)
    thresholds, precision, recall = _operating_points(scored, total_gt)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)

    chosen_by = "given"
    if score_threshold is None:
        chosen_by = "best_f1"
        score_threshold = float(thresholds[int(f1.argmax())]) if thresholds.size else 0.5
    suggested: float | None = None
    suggested_recall = 0.0
    reaching = np.nonzero(precision >= target_precision)[0]
    if reaching.size:
        best = reaching[int(recall[reaching].argmax())]
        suggested, suggested_recall = float(thresholds[best]), float(recall[best])

    per_label: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(labels):
        own = [s for s in scored if s.label == k]
        gt_count = sum(1 for g in ground_truth for b in g if b.label == name)
        ap50, ap = per_label_ap[name]
        per_label[name] = {
            "ap50": ap50,
            "ap50_95": ap,
            "ground_truth": gt_count,
            **_counts_at(own, gt_count, score_threshold),
        }

    if thresholds.size > curve_points:
        picks = np.unique(np.linspace(0, thresholds.size - 1, curve_points).round().astype(int))
    else:
        picks = np.arange(thresholds.size)
    overall = _counts_at(scored, total_gt, score_threshold)
    return {
        "map50": map50,
        "map50_95": map50_95,
        "iou": iou,
        "score_threshold": score_threshold,
        "score_threshold_chosen_by": chosen_by,
        "precision": overall["precision"],
        "recall": overall["recall"],
        "f1": overall["f1"],
        "tp": overall["tp"],
        "fp": overall["fp"],
        "fn": overall["fn"],
        "per_label": per_label,
        "pr_curve": [
            {"threshold": float(thresholds[i]), "precision": float(precision[i]), "recall": float(recall[i])}
            for i in picks
        ],
        "suggested_threshold": {
            "target_precision": target_precision,
            "threshold": suggested,
            "recall": suggested_recall,
        },
        "images": len(ground_truth),
        "ground_truth_boxes": total_gt,
        "detections": sum(len(p) for p in predictions),
    }


def compare_detections(a: list[list[Detection]], b: list[list[Detection]], iou: float = 0.5) -> dict[str, Any]:
    """Agreement between two engines' detections on the same images (parity check).

    Per image and label, detections of `a` (highest score first) are matched greedily to `b` at IoU >= `iou`.
    `agreement` = 2 * matched / (len(a) + len(b)) over all images (1.0 when both found nothing); the matched
    pairs give the lowest and mean IoU and the largest score difference.
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} images against {len(b)}")
    matched = 0
    ious: list[float] = []
    score_diffs: list[float] = []
    identical_images = 0
    for dets_a, dets_b in zip(a, b, strict=True):
        image_matched = 0
        for name in {d.label for d in dets_a} & {d.label for d in dets_b}:
            da = sorted((d for d in dets_a if d.label == name), key=lambda d: -d.score)
            db = [d for d in dets_b if d.label == name]
            m = iou_matrix(np.asarray([d.bbox for d in da]), np.asarray([d.bbox for d in db]))
            taken = np.zeros(len(db), dtype=bool)
            for i, det in enumerate(da):
                candidates = np.where(taken, -1.0, m[i])
                j = int(candidates.argmax())
                if candidates[j] >= iou:
                    taken[j] = True
                    image_matched += 1
                    ious.append(float(candidates[j]))
                    score_diffs.append(abs(det.score - db[j].score))
        matched += image_matched
        if image_matched == len(dets_a) == len(dets_b):
            identical_images += 1
    total = sum(len(d) for d in a) + sum(len(d) for d in b)
    return {
        "images": len(a),
        "detections_a": sum(len(d) for d in a),
        "detections_b": sum(len(d) for d in b),
        "matched": matched,
        "agreement": 2 * matched / total if total else 1.0,
        "images_agreeing": identical_images,
        "min_iou": min(ious) if ious else None,
        "mean_iou": float(np.mean(ious)) if ious else None,
        "max_score_diff": max(score_diffs) if score_diffs else None,
    }
