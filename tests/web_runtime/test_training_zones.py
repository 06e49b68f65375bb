"""Which zones a classifier is trained on: the ones the pipeline will crop."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import EdgeConfig, ZoneConfig
from edge.errors import ConflictError, NotFoundError
from edge.store import DatasetStore
from edge.training.plan import training_zones

RECT = [[0, 0], [1, 0], [1, 0.5], [0, 0.5]]
LOWER = [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]


def _config(tmp_path: Path, cameras: list[dict]) -> EdgeConfig:
    return EdgeConfig.model_validate({"data_dir": str(tmp_path), "cameras": cameras})


def test_detection_and_zoneless_cameras_train_on_whole_images(tmp_path: Path) -> None:
    cfg = _config(tmp_path, [{"id": "a", "source": 0, "zones": [{"id": "top", "polygon": RECT}]}])
    store = DatasetStore(tmp_path)
    assert training_zones(cfg, store, "detection") is None
    bare = _config(tmp_path, [{"id": "a", "source": 0}])
    assert training_zones(bare, store, "classification") is None


def test_page_edits_override_the_file_and_one_layout_is_used(tmp_path: Path) -> None:
    cfg = _config(
        tmp_path,
        [
            {"id": "a", "source": 0, "zones": [{"id": "top", "polygon": RECT}]},
            {"id": "b", "source": 1, "zones": [{"id": "top", "polygon": RECT}]},
        ],
    )
    store = DatasetStore(tmp_path)
    zones = training_zones(cfg, store, "classification")
    assert zones is not None and [z["id"] for z in zones] == ["top"]

    # Camera b's zones redrawn on the page: the layouts now differ and the camera must be named.
    store.set_zones("b", [ZoneConfig(id="bottom", polygon=LOWER)])  # type: ignore[arg-type]
    with pytest.raises(ConflictError, match="different zones"):
        training_zones(cfg, store, "classification")
    chosen = training_zones(cfg, store, "classification", camera="b")
    assert chosen is not None and [z["id"] for z in chosen] == ["bottom"]
    assert chosen[0]["polygon"] == [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]
    with pytest.raises(NotFoundError):
        training_zones(cfg, store, "classification", camera="nope")
