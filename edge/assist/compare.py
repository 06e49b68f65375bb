"""Compare a new model version with the running one on the same images, measured by one piece of code.

Hold-out projects: the images are the project's test split (images the store's split puts in `test`, annotated)
plus the inbox frames a person reviewed (annotated); both versions run through edge.runtime (never torch).

Cross-validated projects (no test split, and the new bundle's `evaluation.method` is `kfold`: its shipped
model trained on every image, so scoring it on the project's images would grade it on its own training set): the
images are the annotated images added since the running version was installed (so the running version never
trained on them; reviewed inbox frames are among them) that the new run's folds tested. The new version's answer
for each is its out-of-fold prediction (report.json `evaluation.out_of_fold`, trainer/out_of_fold.py: the fold
model that did not train on it); the running version runs on them through edge.runtime. Neither version trained
on any of these images. The fold models learned from (k-1)/k of the photos, so if anything this errs against the
new version.

Classification scores top-1 accuracy against the image's tag; detection mAP@0.5 (all-point interpolated AP per
label with ground truth, averaged), the device's version of the trainer's headline metrics.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.assist.room import photo
from edge.datasets.model import Box
from edge.errors import ShelfwatchError
from edge.runtime.postprocess import Detection
from edge.store import DatasetStore, assist_rows
from edge.store.records import ImageRecord

log = logging.getLogger(__name__)

EVAL_SCORE_FLOOR = 0.01  # detections kept for the AP curve
MAX_EVAL_IMAGES = 2000


@dataclass(frozen=True)
class Comparison:
    """Both versions' headline metric on the same images."""

    metric: str
    new_version: str
    new: float | None
    running_version: str | None
    running: float | None
    images: int
    test_images: int
    inbox_images: int
    fold_images: int = 0  # cross-validated projects: images the new run's folds tested (inbox ones included)
    images_from: str = ""  # which images, in words (the decision quotes it)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (kept in the run history)."""
        return asdict(self)


def evaluation_images(store: DatasetStore, project_id: int) -> tuple[list[ImageRecord], int, int]:
    """(records, how many from the test split, how many reviewed inbox frames) of the comparison set."""
    with store.assist_tx() as conn:
        test_ids = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM images WHERE project_id = ? AND split = 'test' AND "  # noqa: S608 (a fixed clause)
                f"{assist_rows.HAS_ANNOTATION} ORDER BY id",
                (project_id,),
            )
        ]
        inbox_ids = [i for i in assist_rows.reviewed_inbox_ids(conn, project_id) if i not in set(test_ids)]
        ids = (test_ids + inbox_ids)[:MAX_EVAL_IMAGES]
        records = assist_rows.image_records(conn, ids)
    return records, len([i for i in test_ids if i in ids]), len([i for i in inbox_ids if i in ids])


def out_of_fold_rows(bundle_dir: Path) -> list[dict[str, Any]] | None:
    """The bundle's out-of-fold predictions when it was evaluated by k-fold (None: a hold-out bundle, or one made
    before the trainer wrote them). The report is one of the bundle's signed files, verified at install."""
    try:
        report = json.loads((bundle_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    evaluation = report.get("evaluation") if isinstance(report, dict) else None
    if not isinstance(evaluation, dict) or evaluation.get("method") != "kfold":
        return None
    rows = evaluation.get("out_of_fold")
    return (
        [r for r in rows if isinstance(r, dict) and isinstance(r.get("sha256"), str)] if isinstance(rows, list) else []
    )


def fold_images(
    store: DatasetStore, project_id: int, rows: Sequence[dict[str, Any]], since: str
) -> tuple[list[ImageRecord], int]:
    """(records, how many are reviewed inbox frames): the project's annotated images added after `since` (the
    running version's install, in seconds; an image of that very second is left out) whose file the new run's folds
    tested."""
    tested = {r["sha256"] for r in rows}
    with store.assist_tx() as conn:
        ids = [
            int(r[0])
            for r in conn.execute(
                "SELECT id, sha256 FROM images WHERE project_id = ? AND created > ? AND "  # noqa: S608 (fixed clause)
                f"{assist_rows.HAS_ANNOTATION} ORDER BY id",
                (project_id, since),
            )
            if r[1] in tested
        ][:MAX_EVAL_IMAGES]
        inbox = set(assist_rows.reviewed_inbox_ids(conn, project_id))
        records = assist_rows.image_records(conn, ids)
    return records, sum(1 for i in ids if i in inbox)


def score_rows(task: str, rows: Sequence[dict[str, Any]], records: Sequence[ImageRecord]) -> float | None:
    """The headline metric of out-of-fold predictions on these images (matched by the file's sha256)."""
    by_sha = {r["sha256"]: r for r in rows}
    if not records:
        return None
    found = [by_sha[r.sha256] for r in records]
    if task == "classification":
        tags = [{t.casefold() for t in r.tags} for r in records]
        return float(np.mean([str(row.get("label", "")).casefold() in t for row, t in zip(found, tags, strict=True)]))
    predictions = [
        [Detection(str(b[0]), float(b[1]), (float(b[2]), float(b[3]), float(b[4]), float(b[5]))) for b in row["boxes"]]
        for row in found
    ]
    return map50(predictions, [r.boxes for r in records])


def _iou(a: tuple[float, float, float, float], b: Box) -> float:
    ix = max(0.0, min(a[2], b.x2) - max(a[0], b.x1))
    iy = max(0.0, min(a[3], b.y2) - max(a[1], b.y1))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def average_precision(scored: list[tuple[float, bool]], positives: int) -> float:
    """All-point interpolated AP of (score, true positive) detections against `positives` ground-truth boxes."""
    if positives == 0:
        return 0.0
    scored = sorted(scored, key=lambda s: -s[0])
    tp = np.cumsum([1.0 if hit else 0.0 for _, hit in scored])
    fp = np.cumsum([0.0 if hit else 1.0 for _, hit in scored])
    recall = tp / positives if len(scored) else np.array([])
    precision = tp / np.maximum(tp + fp, 1e-12) if len(scored) else np.array([])
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    steps = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def map50(predictions: Sequence[list[Detection]], truths: Sequence[list[Box]]) -> float:
    """mAP@0.5 over the labels that have ground truth (greedy matching, best score first, per image and label)."""
    labels = sorted({b.label.casefold() for boxes in truths for b in boxes})
    aps = []
    for label in labels:
        scored: list[tuple[float, bool]] = []
        positives = 0
        for found, boxes in zip(predictions, truths, strict=True):
            gt = [b for b in boxes if b.label.casefold() == label]
            positives += len(gt)
            used = [False] * len(gt)
            for det in sorted((d for d in found if d.label.casefold() == label), key=lambda d: -d.score):
                best, best_iou = -1, 0.5
                for j, box in enumerate(gt):
                    iou = _iou(det.bbox, box)
                    if not used[j] and iou >= best_iou:
                        best, best_iou = j, iou
                if best >= 0:
                    used[best] = True
                scored.append((det.score, best >= 0))
        aps.append(average_precision(scored, positives))
    return float(np.mean(aps)) if aps else 0.0


def score(model: Any, store: DatasetStore, records: Sequence[ImageRecord]) -> float | None:
    """The model's headline metric on these images (accuracy or mAP@0.5); None without images."""
    if not records:
        return None
    pixels = [photo(store, r.id) for r in records]
    if model.task == "classification":
        results = model.predict_batch(pixels)
        hits = [
            bool(r.tags) and res.label.casefold() in {t.casefold() for t in r.tags}
            for r, res in zip(records, results, strict=True)
        ]
        return float(np.mean(hits))
    found = model.predict_batch(pixels, score_threshold=EVAL_SCORE_FLOOR)
    return map50(found, [r.boxes for r in records])


def compare(
    store: DatasetStore,
    project_id: int,
    metric: str,
    new_dir: Path,
    running_dir: Path | None,
    loader: Callable[[Path], Any],
    running_installed: str | None = None,
) -> Comparison | None:
    """Both versions' metric on the project's comparison images; None when there are no such images.

    Without a test split, a k-fold bundle is compared on the images added since `running_installed` (the running
    version's install time) with its out-of-fold predictions; without that time, or such images, not at all."""
    records, n_test, n_inbox = evaluation_images(store, project_id)
    counts: dict[str, Any] = {"test_images": n_test, "inbox_images": n_inbox}
    counts["images_from"] = f"test split {n_test}, reviewed inbox {n_inbox}"
    rows = None if n_test else out_of_fold_rows(new_dir)  # a test split, when the project has one, comes first
    if rows is not None:
        if running_dir is None or running_installed is None:
            return None
        records, n_inbox = fold_images(store, project_id, rows, running_installed)
        counts = {"test_images": 0, "inbox_images": n_inbox, "fold_images": len(records)}
        counts["images_from"] = (
            f"added since the running version, reviewed inbox {n_inbox}; the new version's out-of-fold predictions, "
            "neither version trained on them"
        )
    if not records:
        return None
    new_model = loader(new_dir)
    new_score = score(new_model, store, records) if rows is None else score_rows(new_model.task, rows, records)
    running_score = _running_score(store, records, running_dir, loader)
    return Comparison(
        metric=metric,
        new_version=new_model.version,
        new=None if new_score is None else round(new_score, 4),
        running_version=None if running_dir is None else running_dir.name,
        running=None if running_score is None else round(running_score, 4),
        images=len(records),
        **counts,
    )


def _running_score(
    store: DatasetStore, records: Sequence[ImageRecord], running_dir: Path | None, loader: Callable[[Path], Any]
) -> float | None:
    running_score = None
    if running_dir is not None:
        try:
            running_score = score(loader(running_dir), store, records)
        except ShelfwatchError as err:  # labels of another task, an unloadable bundle: no comparison
            log.warning("the running model could not be scored on the comparison images: %s", err)
    return running_score
