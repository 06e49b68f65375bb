"""Train/test assignment: a pure function over (image, labels) rows, and the SQL around it."""

from __future__ import annotations

import math
import random
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from edge.datasets.model import SPLITS
from edge.errors import AnnotationError


def check_fraction(test_fraction: float) -> float:
    """`test_fraction` when strictly between 0 and 1; AnnotationError otherwise."""
    if not 0.0 < test_fraction < 1.0:
        raise AnnotationError(f"test_fraction {test_fraction} must be between 0 and 1")
    return test_fraction


def assign_splits(
    image_labels: Mapping[int, set[int]], candidates: Sequence[int], test_fraction: float, seed: int
) -> list[tuple[str, int]]:
    """(split, image id) for every candidate: train or test, stratified by each image's rarest label.

    `image_labels` maps every annotated image of the dataset to its label ids (the rarity of a label is counted
    over all of them); candidates without labels form one stratum of their own. Each stratum sends
    round(len * test_fraction) images to test, at least one from a stratum of five or more, and never all of a
    stratum with more than one image. The same rows and seed give the same answer.
    """
    check_fraction(test_fraction)
    label_count: Counter[int] = Counter(lab for labels in image_labels.values() for lab in labels)
    strata: dict[int, list[int]] = {}
    for image_id in candidates:
        labels = image_labels.get(image_id, set())
        stratum = min(labels, key=lambda lab: (label_count[lab], lab)) if labels else -1
        strata.setdefault(stratum, []).append(image_id)
    rng = random.Random(seed)
    updates: list[tuple[str, int]] = []
    for stratum in sorted(strata):
        members = strata[stratum]
        rng.shuffle(members)
        n_test = math.floor(len(members) * test_fraction + 0.5)
        if n_test == 0 and len(members) >= 5:
            n_test = 1
        n_test = min(n_test, len(members) - 1) if len(members) > 1 else 0
        updates += [("test", i) for i in members[:n_test]] + [("train", i) for i in members[n_test:]]
    return updates


def image_labels(conn: sqlite3.Connection, project_id: int) -> dict[int, set[int]]:
    """{image id: label ids it carries as a tag or on a box} for every annotated image of the project."""
    found: dict[int, set[int]] = {}
    for r in conn.execute(
        "SELECT image_id, label_id FROM (SELECT image_id, label_id FROM image_tags "
        "UNION SELECT image_id, label_id FROM boxes) WHERE label_id IN (SELECT id FROM labels WHERE project_id = ?)",
        (project_id,),
    ):
        found.setdefault(int(r[0]), set()).add(int(r[1]))
    return found


def candidates(conn: sqlite3.Connection, project_id: int, *, only_auto: bool) -> list[int]:
    """Ids of the images a split assigns: those in split 'auto' (every image with only_auto=False), in id order."""
    rows = conn.execute(
        "SELECT id FROM images WHERE project_id = ? AND (split = 'auto' OR ?) ORDER BY id", (project_id, not only_auto)
    )
    return [int(r[0]) for r in rows]


def apply(conn: sqlite3.Connection, updates: Iterable[tuple[str, int]]) -> None:
    """Write (split, image id) pairs."""
    conn.executemany("UPDATE images SET split = ? WHERE id = ?", updates)


def counts(conn: sqlite3.Connection, project_id: int) -> dict[str, int]:
    """The project's images per split, every split named."""
    found = {s: 0 for s in SPLITS}
    for r in conn.execute("SELECT split, COUNT(*) FROM images WHERE project_id = ? GROUP BY split", (project_id,)):
        found[r[0]] = int(r[1])
    return found
