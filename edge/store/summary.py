"""What a dataset holds and whether it is ready to train: counts per label and split, near-duplicates, verdict."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from edge.config import DatasetRulesConfig, ZoneConfig
from edge.datasets.zone_crops import zone_crop_counts
from edge.store import annotation_rows, labels, splits
from edge.store.readiness import Task, readiness


def default_task(total_boxes: int) -> Task:
    """The task a dataset trains when none is chosen: detection once any box exists, else classification."""
    return "detection" if total_boxes else "classification"


def box_count(conn: sqlite3.Connection) -> int:
    """Boxes in the dataset."""
    return int(conn.execute("SELECT COUNT(*) FROM boxes").fetchone()[0])


def summarise(
    conn: sqlite3.Connection, rules: DatasetRulesConfig, task: Task | None, zones: Sequence[ZoneConfig] | None
) -> dict[str, Any]:
    """The summary DatasetStore.summary returns (see there)."""
    images = int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])
    tagged = int(
        conn.execute(
            "SELECT COUNT(*) FROM (SELECT image_id FROM image_tags UNION SELECT image_id FROM boxes)"
        ).fetchone()[0]
    )
    total_boxes = box_count(conn)
    # An image counts for a label when it carries it as a tag or on a box: a classifier trained on zone
    # crops learns from the boxes drawn around low-stock shelf areas.
    carrying = {
        int(r[0]): int(r[1])
        for r in conn.execute(
            "SELECT label_id, COUNT(DISTINCT image_id) FROM "
            "(SELECT label_id, image_id FROM image_tags UNION SELECT label_id, image_id FROM boxes) "
            "GROUP BY label_id"
        )
    }
    per_label = {
        lab.name: {"images": carrying.get(lab.id, 0), "boxes": lab.boxes} for lab in labels.label_records(conn)
    }
    near = [
        [int(r[0]), int(r[1])]
        for r in conn.execute(
            "SELECT id, near_duplicate_of FROM images WHERE near_duplicate_of IS NOT NULL ORDER BY id"
        )
    ]
    split_counts = splits.counts(conn)
    resolved: Task = task or default_task(total_boxes)
    unit = None
    judged: dict[str, dict[str, int]] = per_label
    if resolved == "classification" and zones:
        crops = zone_crop_counts(annotation_rows.of_tagged_images(conn), zones, list(per_label))
        for name, entry in per_label.items():
            entry["crops"] = crops.get(name, 0)
        # The trainer's own NONE class when the dataset has no none/other label of its own.
        judged = {**per_label, **{n: {"crops": c} for n, c in crops.items() if n not in per_label}}
        unit = "crops"
    ready, problems, warnings = readiness(
        judged, resolved, rules, tagged_images=tagged, near_duplicates=len(near), unit=unit
    )
    return {
        "images": images,
        "tagged": tagged,
        "untagged": images - tagged,
        "boxes": total_boxes,
        "per_label": per_label,
        "task": resolved,
        "unit": unit or ("boxes" if resolved == "detection" else "images"),
        "zones": len(zones) if resolved == "classification" and zones else 0,
        "ready": ready,
        "problems": problems,
        "warnings": warnings,
        "near_duplicates": near,
        "splits": split_counts,
    }
