"""What a dataset holds and whether it is ready to train: counts per label and split, near-duplicates, verdict."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from edge.config import DatasetRulesConfig, ZoneConfig
from edge.datasets.zone_crops import zone_crop_counts
from edge.store import annotation_rows, labels, splits
from edge.store.projects import ProjectRecord
from edge.store.readiness import Task, readiness


def default_task(total_boxes: int) -> Task:
    """The task a dataset trains when none is chosen: detection once any box exists, else classification."""
    return "detection" if total_boxes else "classification"


def box_count(conn: sqlite3.Connection, project_id: int) -> int:
    """Boxes in the project's dataset."""
    return int(
        conn.execute(
            "SELECT COUNT(*) FROM boxes b JOIN labels l ON l.id = b.label_id WHERE l.project_id = ?", (project_id,)
        ).fetchone()[0]
    )


def summarise(
    conn: sqlite3.Connection,
    project: ProjectRecord,
    rules: DatasetRulesConfig,
    task: Task | None,
    zones: Sequence[ZoneConfig] | None,
) -> dict[str, Any]:
    """The summary DatasetStore.summary returns (see there); judged for `task`, else the project's own task."""
    pid = project.id
    images = int(conn.execute("SELECT COUNT(*) FROM images WHERE project_id = ?", (pid,)).fetchone()[0])
    tagged = int(
        conn.execute(
            "SELECT COUNT(*) FROM (SELECT image_id FROM image_tags UNION SELECT image_id FROM boxes "
            "UNION SELECT image_id FROM nothing_to_box) "
            "WHERE image_id IN (SELECT id FROM images WHERE project_id = ?)",
            (pid,),
        ).fetchone()[0]
    )
    total_boxes = box_count(conn, pid)
    # An image counts for a label when it carries it as a tag or on a box: a classifier trained on zone
    # crops learns from the boxes drawn around low-stock shelf areas.
    carrying = {
        int(r[0]): int(r[1])
        for r in conn.execute(
            "SELECT label_id, COUNT(DISTINCT image_id) FROM "
            "(SELECT label_id, image_id FROM image_tags UNION SELECT label_id, image_id FROM boxes) "
            "WHERE label_id IN (SELECT id FROM labels WHERE project_id = ?) GROUP BY label_id",
            (pid,),
        )
    }
    per_label = {
        lab.name: {"images": carrying.get(lab.id, 0), "boxes": lab.boxes} for lab in labels.label_records(conn, pid)
    }
    near = [
        [int(r[0]), int(r[1])]
        for r in conn.execute(
            "SELECT id, near_duplicate_of FROM images WHERE project_id = ? AND near_duplicate_of IS NOT NULL "
            "ORDER BY id",
            (pid,),
        )
    ]
    split_counts = splits.counts(conn, pid)
    resolved: Task = task or project.task or default_task(total_boxes)
    unit = None
    judged: dict[str, dict[str, int]] = per_label
    if resolved == "classification" and zones:
        crops = zone_crop_counts(annotation_rows.of_tagged_images(conn, pid), zones, list(per_label))
        for name, entry in per_label.items():
            entry["crops"] = crops.get(name, 0)
        # The trainer's own NONE class when the dataset has no none/other label of its own.
        judged = {**per_label, **{n: {"crops": c} for n, c in crops.items() if n not in per_label}}
        unit = "crops"
    ready, problems, warnings = readiness(
        judged, resolved, rules, tagged_images=tagged, near_duplicates=len(near), unit=unit
    )
    return {
        "project": {"id": project.id, "name": project.name, "task": project.task or "auto"},
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
