"""`shelfwatch dataset import|export|stats|split` end to end, through the real CLI entry point."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from edge.cli import main
from edge.datasets.model import Box
from edge.store import DatasetStore
from tests.store.helpers import image_bytes


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    """Run the CLI with --json; the last stdout line is the JSON object."""
    rc = main([*argv, "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out.strip().splitlines()[-1])


def run_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the CLI expecting exit 1; returns stderr."""
    assert main(list(argv)) == 1
    return capsys.readouterr().err


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    """A data dir with 2 labels, 18 images: 10 tagged, 6 with boxes, 2 untagged."""
    data_dir = tmp_path / "populated"
    with DatasetStore(data_dir) as store:
        store.create_label("low", "shelf nearly empty")
        store.create_label("none", "anything else")
        for i in range(18):
            rec = store.add_image(image_bytes(i, ".png" if i % 3 == 0 else ".jpg"), filename=f"cap{i}.jpg")
            if i < 10:
                store.set_annotations(rec.id, ["low" if i % 2 else "none"], [])
            elif i < 16:
                store.set_annotations(rec.id, [], [Box("low", 0.1, 0.1, 0.4, 0.5), Box("none", 0.5, 0.5, 0.9, 0.9)])
    return data_dir


def test_stats_reports_the_summary(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stats = run_json(capsys, "dataset", "stats", "--data-dir", str(populated))
    assert (stats["images"], stats["tagged"], stats["untagged"], stats["boxes"]) == (18, 16, 2, 12)
    # An image counts for a label it carries as a tag (5 each) or on a box (6 more images each).
    assert stats["per_label"] == {"low": {"images": 11, "boxes": 6}, "none": {"images": 11, "boxes": 6}}
    assert stats["task"] == "detection" and stats["ready"] is False
    classification = run_json(capsys, "dataset", "stats", "--data-dir", str(populated), "--task", "classification")
    assert classification["ready"] is True
    assert main(["dataset", "stats", "--data-dir", str(populated)]) == 0
    human = capsys.readouterr().out
    assert "not ready:" in human and "label 'low' has 6 boxes" in human


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_box_formats_round_trip_through_the_cli(
    populated: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"export-{fmt}"
    exported = run_json(capsys, "dataset", "export", "--format", fmt, "--out", str(out), "--data-dir", str(populated))
    assert exported["images"] == 18 and exported["boxes"] == 12
    fresh = tmp_path / f"fresh-{fmt}"
    imported = run_json(capsys, "dataset", "import", str(out), "--format", fmt, "--data-dir", str(fresh))
    assert (imported["images"], imported["boxes"], imported["duplicates"]) == (18, 12, 0)
    before = run_json(capsys, "dataset", "stats", "--data-dir", str(populated))
    after = run_json(capsys, "dataset", "stats", "--data-dir", str(fresh))
    assert after["boxes"] == before["boxes"] and after["images"] == before["images"]
    assert {k: v["boxes"] for k, v in after["per_label"].items()} == {"low": 6, "none": 6}


@pytest.mark.parametrize("fmt", ["folders", "csv"])
def test_tag_formats_round_trip_the_tags(
    populated: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"export-{fmt}"
    run_json(
        capsys, "dataset", "export", "--format", fmt, "--only-tagged", "--out", str(out), "--data-dir", str(populated)
    )
    fresh = tmp_path / f"fresh-{fmt}"
    run_json(capsys, "dataset", "import", str(out), "--data-dir", str(fresh))  # format detected
    after = run_json(capsys, "dataset", "stats", "--data-dir", str(fresh))
    assert {k: v["images"] for k, v in after["per_label"].items()} == {"low": 5, "none": 5}


def test_import_from_a_zip_archive(populated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "coco"
    run_json(capsys, "dataset", "export", "--format", "coco", "--out", str(out), "--data-dir", str(populated))
    archive = Path(shutil.make_archive(str(tmp_path / "dataset"), "zip", out))
    imported = run_json(capsys, "dataset", "import", str(archive), "--data-dir", str(tmp_path / "fresh"))
    assert imported["format"] == "coco" and imported["images"] == 18 and imported["boxes"] == 12


def test_an_archive_escaping_its_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.jpg", image_bytes(1))
    err = run_error(capsys, "dataset", "import", str(archive), "--data-dir", str(tmp_path / "d"))
    assert err.startswith("error: ") and "escape" in err
    assert not (tmp_path / "escape.jpg").exists()


def test_a_corrupt_image_imports_nothing(populated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "yolo"
    run_json(capsys, "dataset", "export", "--format", "yolo", "--out", str(out), "--data-dir", str(populated))
    victim = sorted(out.rglob("*.jpg"))[3]
    victim.write_bytes(victim.read_bytes()[:200])
    fresh = tmp_path / "fresh"
    err = run_error(capsys, "dataset", "import", str(out), "--format", "yolo", "--data-dir", str(fresh))
    assert "nothing imported" in err and victim.name in err
    stats = run_json(capsys, "dataset", "stats", "--data-dir", str(fresh))
    assert stats["images"] == 0 and stats["per_label"] == {}
    assert [p for p in (fresh / "images").rglob("*") if p.is_file()] == []


def test_split_assigns_train_and_test(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "dataset", "split", "--data-dir", str(populated))
    assert result["splits"]["auto"] == 0
    assert result["splits"]["train"] + result["splits"]["test"] == 18
    assert result["splits"]["test"] >= 3


def test_errors_are_one_line_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    err = run_error(capsys, "dataset", "stats", "--data-dir", str(missing))
    assert "no dataset store" in err and not missing.exists()
    err = run_error(capsys, "dataset", "stats")
    assert "--data-dir" in err
    err = run_error(capsys, "dataset", "import", str(missing), "--data-dir", str(tmp_path / "d"))
    assert "does not exist" in err
    DatasetStore(tmp_path / "d").close()
    err = run_error(
        capsys, "dataset", "export", "--format", "pdf", "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "d")
    )
    assert "unknown dataset format 'pdf'" in err


def test_config_file_gives_data_dir_and_rules(
    populated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(f"data_dir: {populated}\ndataset: {{min_images: 5, min_boxes_per_label_detection: 6}}\n")
    stats = run_json(capsys, "dataset", "stats", "--config", str(config))
    assert stats["images"] == 18 and stats["ready"] is True
