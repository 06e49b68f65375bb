"""The issue's done-when check on the real empty_shelf photos (skips without ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.store import DatasetStore


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    rc = main([*argv, "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_empty_shelf_yolo_import_stats_and_coco_round_trip(
    shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = shared_dir / "datasets" / "empty_shelf"
    first, second, coco = tmp_path / "first", tmp_path / "second", tmp_path / "coco"
    run_json(capsys, "dataset", "import", str(src), "--format", "yolo", "--data-dir", str(first))
    stats = run_json(capsys, "dataset", "stats", "--data-dir", str(first))
    # 252 label files hold 743 shapes (one per line). The issue's "492" is what `cat labels/*.txt | wc -l` gives:
    # 251 of the files lack a final newline, so cat glues each last line to the next file's first (743 - 251).
    shapes = sum(
        len([line for line in p.read_text().splitlines() if line.strip()])
        for p in (src / "train" / "labels").glob("*.txt")
    )
    assert (stats["images"], stats["boxes"]) == (252, shapes) == (252, 743)
    assert stats["per_label"] == {"empty_shelf": {"images": 252, "boxes": 743}}
    assert stats["task"] == "detection" and stats["ready"] is True

    run_json(capsys, "dataset", "export", "--format", "coco", "--out", str(coco), "--data-dir", str(first))
    run_json(capsys, "dataset", "import", str(coco), "--format", "coco", "--data-dir", str(second))
    again = run_json(capsys, "dataset", "stats", "--data-dir", str(second))
    assert (again["images"], again["boxes"], again["per_label"]) == (252, 743, stats["per_label"])
    # Same images, splits and boxes; COCO stores pixel coordinates, so boxes agree to within rounding.
    with DatasetStore(first) as a, DatasetStore(second) as b:
        before = {r.sha256: r for r in a.list_images(page_size=500)[0]}
        after = {r.sha256: r for r in b.list_images(page_size=500)[0]}
        assert before.keys() == after.keys()
        for sha, rec in before.items():
            assert after[sha].split == rec.split
            old = sorted(box.as_tuple() for box in rec.boxes)
            new = sorted(box.as_tuple() for box in after[sha].boxes)
            assert len(old) == len(new)
            assert all(o == pytest.approx(n, abs=1e-5) for o, n in zip(old, new, strict=True))
