"""ModelRepository.offer: the start-up policy for the bundle edge.yaml names (model.bundle)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.model_repository import ModelRepository
from tests.helpers.tiny_bundle import TinyBundle, make_classification_bundle


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> list[TinyBundle]:
    """Two versions with the same `created` time, signed by one key, and one signed by another key."""
    root = tmp_path_factory.mktemp("offer")
    same_key = [make_classification_bundle(root, version=f"v{i}", openvino=False, key_dir=root / "k") for i in (1, 2)]
    stranger = make_classification_bundle(root / "other", version="v9", openvino=False, key_dir=root / "other-key")
    return [*same_key, stranger]


def test_offer_installs_into_an_empty_repository_then_never_goes_back(
    tmp_path: Path, versions: list[TinyBundle]
) -> None:
    v1, v2, _ = versions
    repo = ModelRepository(tmp_path / "models", [str(v1.public_key)])
    repo.load()
    offered = repo.offer(v1.bundle_dir)
    assert offered is not None and offered.version == "v1" and repo.active_version() == "v1"
    # Offered again (every restart with the same edge.yaml): nothing changes.
    again = repo.offer(v1.bundle_dir)
    assert again is not None and again.version == "v1"
    assert [row["version"] for row in repo.list_versions()] == ["v1"]
    # A bundle not newer than the running one is left alone: a stale config never rolls a model back.
    kept = repo.offer(v2.bundle_dir)
    assert kept is not None and kept.version == "v1"
    assert [row["version"] for row in repo.list_versions()] == ["v1"]


def test_offer_of_a_refused_bundle_keeps_the_running_model(tmp_path: Path, versions: list[TinyBundle]) -> None:
    v1, _, stranger = versions
    repo = ModelRepository(tmp_path / "models", [str(v1.public_key)])
    repo.load()
    assert repo.offer(tmp_path / "missing.tar.gz") is None  # nothing installed, nothing raised
    repo.install(v1.bundle_dir, activate=True)
    repo.models_dir.joinpath("active").unlink()
    # Installed but not active (a pointer lost): the offered version that is already there is activated.
    fresh = ModelRepository(tmp_path / "models", [str(v1.public_key)])
    fresh.load()
    assert fresh.active_version() is None
    assert fresh.offer(stranger.bundle_dir) is None
    assert fresh.last_refusal is not None and fresh.active_version() is None
    activated = fresh.offer(v1.bundle_dir)
    assert activated is not None and activated.version == "v1" and fresh.active_version() == "v1"
