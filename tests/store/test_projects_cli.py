"""`shelfwatch projects list|create` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.store import DatasetStore
from tests.store.helpers import image_bytes


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_create_then_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    rc, out, _ = run(
        capsys,
        *("projects", "create", "Dairy aisle", "--task", "detection", "--data-dir", data),
        *("--label", "gap=an empty slot = no product", "--label", "price tag", "--json"),
    )
    assert rc == 0
    made = json.loads(out.strip().splitlines()[-1])
    assert (made["name"], made["task"], made["default"]) == ("Dairy aisle", "detection", False)
    assert [(lab["name"], lab["description"]) for lab in made["labels"]] == [
        ("gap", "an empty slot = no product"),
        ("price tag", ""),
    ]
    rc, out, _ = run(capsys, "projects", "list", "--data-dir", data)
    assert rc == 0
    lines = out.strip().splitlines()
    assert lines[1].split()[:3] == ["1", "default", "auto"]
    assert "Dairy aisle" in lines[2] and "detection" in lines[2] and "gap, price tag" in lines[2]
    with DatasetStore(Path(data)) as store:
        assert [p.name for p in store.list_projects()] == ["default", "Dairy aisle"]


def test_refusals_are_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert run(capsys, "projects", "create", "Fridges", "--task", "classification", "--data-dir", data)[0] == 0
    rc, _, err = run(capsys, "projects", "create", "FRIDGES", "--task", "detection", "--data-dir", data)
    assert rc == 1 and err.startswith("error: project 'Fridges' already exists")
    rc, _, err = run(capsys, "projects", "list", "--data-dir", str(tmp_path / "typo"))
    assert rc == 1 and "no dataset store" in err
    with pytest.raises(SystemExit) as exit_:
        main(["projects", "create", "X", "--task", "segmentation", "--data-dir", data])
    assert exit_.value.code == 2


def test_dataset_commands_take_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    source = tmp_path / "src" / "low"
    source.mkdir(parents=True)
    for i in range(3):
        (source / f"s{i}.jpg").write_bytes(image_bytes(30 + i))
    assert run(capsys, "projects", "create", "Fridges", "--task", "classification", "--data-dir", str(data))[0] == 0
    argv = ("--data-dir", str(data), "--project", "Fridges", "--json")
    rc, out, _ = run(capsys, "dataset", "import", str(source.parent), "--format", "folders", *argv)
    assert rc == 0 and json.loads(out.strip().splitlines()[-1])["images"] == 3
    rc, out, _ = run(capsys, "dataset", "stats", *argv)
    stats = json.loads(out.strip().splitlines()[-1])
    assert (stats["project"]["name"], stats["images"], stats["task"]) == ("Fridges", 3, "classification")
    rc, out, _ = run(capsys, "dataset", "stats", "--data-dir", str(data), "--json")
    assert json.loads(out.strip().splitlines()[-1])["images"] == 0  # the default project
    rc, _, err = run(capsys, "dataset", "stats", "--data-dir", str(data), "--project", "nope")
    assert rc == 1 and "project 'nope' does not exist" in err
