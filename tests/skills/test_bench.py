"""`shelfwatch bench --skill`: the example's cascade measured against its models alone, nothing sent or logged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from edge.cli import main
from tests.skills.conftest import EXAMPLE, ShelfPhotos, make_projects


def test_bench_skill_measures_the_example(tmp_path: Path, shelf_photos: ShelfPhotos, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "x")
    projects = make_projects(tmp_path / "data", tmp_path / "bundles", shelf_photos)
    folder = tmp_path / "frames"
    folder.mkdir()
    for n, photo in enumerate(shelf_photos.gap + shelf_photos.stocked):
        shutil.copyfile(photo, folder / f"{n:02d}.jpg")
    config = tmp_path / "edge.yaml"
    config.write_text(
        EXAMPLE.replace("/srv/frames", str(folder))
        + yaml.safe_dump(
            {
                "data_dir": str(projects.data_dir),
                "model": {"engine": "onnxruntime", "threads": 1, "trusted_keys": [str(projects.public_key)]},
            }
        )
    )
    assert main(["bench", "--skill", str(config), "--frames", "6", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["camera"] == "aisle3" and result["skills"] == ["gaps", "which"]
    assert result["idle"] == {} and result["frames"] == 6
    # One detector call serves both skills' `det`; the classifier runs on its boxes: two calls on a gap frame.
    assert result["model_calls_per_frame"] == 2
    assert result["models_alone_ms"] > 0 and result["cascade_ms"] > 0
    assert set(result["block_ms"]) >= {"gaps/det", "gaps/hook", "which/kind", "which/event"}
    assert not (projects.data_dir / "events.db").exists()  # the bench never logs nor sends events
    with pytest.raises(SystemExit):
        main(["bench", "--source", str(folder)])  # without --skill, --bundle is needed
