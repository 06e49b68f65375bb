"""ModelRepository on real signed bundles and a real directory: install, activate, rollback, prune, restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge.bundle import ONNX_FILE, Manifest, pack_bundle
from edge.errors import BundleError, ConflictError, EngineError, NotFoundError
from edge.model_repository import ModelRepository
from tests.helpers.tiny_bundle import TinyBundle, make_classification_bundle


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> list[TinyBundle]:
    """Four versions signed by one key (ONNX only, for speed)."""
    root = tmp_path_factory.mktemp("versions")
    return [
        make_classification_bundle(root, version=f"v{i}", openvino=False, key_dir=root / "keys") for i in range(1, 5)
    ]


@pytest.fixture
def repo(tmp_path: Path, versions: list[TinyBundle]) -> ModelRepository:
    return ModelRepository(tmp_path / "models", [str(versions[0].public_key)], keep_versions=3)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its content: 'left everything as it was' made checkable."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_install_activate_and_listeners(repo: ModelRepository, versions: list[TinyBundle]) -> None:
    seen: list[tuple[str, Path]] = []
    repo.on_activate(lambda manifest, path: seen.append((manifest.version, path)))
    assert repo.active() is None and repo.active_dir() is None
    manifest = repo.install(versions[0].bundle_dir)
    assert manifest.version == "v1"
    assert (repo.models_dir / "v1" / ONNX_FILE).is_file()
    assert repo.active() is None  # installed, not active
    repo.activate("v1")
    assert repo.active_version() == "v1"
    assert repo.active_dir() == repo.models_dir / "v1"
    assert (repo.models_dir / "active").read_text().strip() == "v1"
    assert seen == [("v1", repo.models_dir / "v1")]
    repo.install(versions[1].bundle_dir, activate=True)
    assert repo.active_version() == "v2" and repo.previous_version() == "v1"
    assert [v for v, _ in seen] == ["v1", "v2"]


def test_install_from_archive(repo: ModelRepository, versions: list[TinyBundle], tmp_path: Path) -> None:
    archive = pack_bundle(versions[2].bundle_dir, tmp_path / "v3.tar.gz")
    assert repo.install(archive, activate=True).version == "v3"
    assert repo.active_version() == "v3"
    assert not [p for p in repo.models_dir.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_rollback_in_one_call(repo: ModelRepository, versions: list[TinyBundle]) -> None:
    with pytest.raises(ConflictError, match="no previous model version"):
        repo.rollback()
    repo.install(versions[0].bundle_dir, activate=True)
    repo.install(versions[1].bundle_dir, activate=True)
    assert repo.rollback().version == "v1"
    assert repo.active_version() == "v1" and repo.previous_version() == "v2"
    assert repo.rollback().version == "v2"  # and forward again


def test_install_is_idempotent_but_conflicting_content_refused(
    repo: ModelRepository, versions: list[TinyBundle], tmp_path: Path
) -> None:
    repo.install(versions[0].bundle_dir)
    assert repo.install(versions[0].bundle_dir).version == "v1"
    other = make_classification_bundle(
        tmp_path / "other", version="v1", labels=("red", "blue"), openvino=False, key_dir=versions[0].public_key.parent
    )
    with pytest.raises(ConflictError, match="already installed with different content"):
        repo.install(other.bundle_dir)
    assert repo.get("v1").labels == ["red", "green"]


@pytest.mark.parametrize("harm", ["wrong_key", "changed_file", "truncated_archive"])
def test_refused_bundle_leaves_everything_as_it_was(
    repo: ModelRepository, versions: list[TinyBundle], tmp_path: Path, harm: str
) -> None:
    repo.install(versions[0].bundle_dir, activate=True)
    before = snapshot(repo.models_dir)
    if harm == "wrong_key":
        bad = make_classification_bundle(tmp_path / "evil", version="v9", openvino=False).bundle_dir
        reason = "signature does not verify against any trusted key"
    elif harm == "changed_file":
        bad = Path(shutil.copytree(versions[1].bundle_dir, tmp_path / "changed"))
        data = bytearray((bad / ONNX_FILE).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (bad / ONNX_FILE).write_bytes(bytes(data))
        reason = "file model.onnx: sha256 mismatch"
    else:
        whole = pack_bundle(versions[1].bundle_dir, tmp_path / "whole.tar.gz").read_bytes()
        bad = tmp_path / "cut.tar.gz"
        bad.write_bytes(whole[: len(whole) - 200])
        reason = "truncated archive"
    with pytest.raises(BundleError, match=reason):
        repo.install(bad, activate=True)
    assert snapshot(repo.models_dir) == before
    assert repo.active_version() == "v1"
    assert repo.last_refusal is not None and reason in repo.last_refusal.reason
    assert [p.name for p in repo.models_dir.iterdir() if p.name.startswith(".")] == []


def test_no_trusted_keys(tmp_path: Path, versions: list[TinyBundle]) -> None:
    repo = ModelRepository(tmp_path / "models", [], keep_versions=3)
    with pytest.raises(BundleError, match="no trusted keys configured"):
        repo.install(versions[0].bundle_dir)
    assert repo.list_versions() == []


def test_prune_keeps_active_and_previous(repo: ModelRepository, versions: list[TinyBundle]) -> None:
    repo.install(versions[0].bundle_dir, activate=True)  # v1 active
    repo.install(versions[1].bundle_dir, activate=True)  # v2 active, v1 previous
    repo.install(versions[2].bundle_dir)
    repo.install(versions[3].bundle_dir)  # 4 installed, keep 3: the oldest unprotected (v3) goes
    listed = {row["version"]: row for row in repo.list_versions()}
    assert set(listed) == {"v1", "v2", "v4"}
    assert listed["v2"]["active"] and listed["v1"]["previous"]
    assert listed["v4"]["status"] == "ok" and listed["v4"]["labels"] == ["red", "green"]
    with pytest.raises(NotFoundError):
        repo.activate("v3")


def test_remove_refuses_active_and_previous(repo: ModelRepository, versions: list[TinyBundle]) -> None:
    for bundle in versions[:3]:
        repo.install(bundle.bundle_dir, activate=True)
    with pytest.raises(ConflictError):
        repo.remove("v3")
    with pytest.raises(ConflictError):
        repo.remove("v2")
    repo.remove("v1")
    assert [row["version"] for row in repo.list_versions()] == ["v3", "v2"]


@pytest.mark.parametrize("name", ["v1/../../outside", "../outside", ".trash-v1", "", "v1/"])
def test_names_that_are_not_version_directories_are_not_found(
    repo: ModelRepository, versions: list[TinyBundle], tmp_path: Path, name: str
) -> None:
    repo.install(versions[0].bundle_dir)
    (tmp_path / "outside").mkdir()
    (tmp_path / "models" / ".trash-v1").mkdir()  # what _delete's trash path would have needed to exist
    for call in (repo.remove, repo.activate, repo.get):
        with pytest.raises(NotFoundError):
            call(name)
    assert (tmp_path / "outside").is_dir()  # nothing outside the repository was touched
    assert [row["version"] for row in repo.list_versions()] == ["v1"]


def test_restart_reverifies_and_falls_back(tmp_path: Path, versions: list[TinyBundle]) -> None:
    keys = [str(versions[0].public_key)]
    repo = ModelRepository(tmp_path / "models", keys, keep_versions=3)
    repo.install(versions[0].bundle_dir, activate=True)
    repo.install(versions[1].bundle_dir, activate=True)
    # someone changes the active model on disk while the agent is down
    model = repo.models_dir / "v2" / ONNX_FILE
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    restarted = ModelRepository(tmp_path / "models", keys, keep_versions=3)
    seen: list[str] = []
    restarted.on_activate(lambda manifest, path: seen.append(manifest.version))
    manifest = restarted.load()
    assert manifest is not None and manifest.version == "v1"
    assert seen == ["v1"]
    assert restarted.active_version() == "v1" and restarted.previous_version() is None
    rows = {row["version"]: row for row in restarted.list_versions()}
    assert rows["v2"]["status"] == "refused" and "model.onnx" in rows["v2"]["reason"]
    with pytest.raises(BundleError, match="refused"):
        restarted.activate("v2")
    assert restarted.active_version() == "v1"


def test_restart_keeps_a_good_active_model(tmp_path: Path, versions: list[TinyBundle]) -> None:
    keys = [str(versions[0].public_key)]
    repo = ModelRepository(tmp_path / "models", keys)
    repo.install(versions[0].bundle_dir, activate=True)
    repo.install(versions[1].bundle_dir, activate=True)
    (repo.models_dir / ".incoming-crashed").mkdir()  # an install interrupted by a power cut
    again = ModelRepository(tmp_path / "models", keys)
    assert again.active_version() == "v2" and again.previous_version() == "v1"
    assert not (repo.models_dir / ".incoming-crashed").exists()


def test_listener_failure_undoes_activation(repo: ModelRepository, versions: list[TinyBundle]) -> None:
    running: list[str] = []

    def engine_loader(manifest: Manifest, path: Path) -> None:
        if manifest.version == "v2":
            raise EngineError("cannot load this model")
        running.append(manifest.version)

    repo.on_activate(engine_loader)
    repo.install(versions[0].bundle_dir, activate=True)
    with pytest.raises(BundleError, match="cannot be activated: cannot load this model; still running v1"):
        repo.install(versions[1].bundle_dir, activate=True)
    assert repo.active_version() == "v1"
    assert running == ["v1", "v1"]  # told again that v1 is (still) the running model


def test_unsafe_version_name_refused(tmp_path: Path, versions: list[TinyBundle]) -> None:
    bad = make_classification_bundle(
        tmp_path / "b", version="..hidden", openvino=False, key_dir=versions[0].public_key.parent
    )
    repo = ModelRepository(tmp_path / "models", [str(versions[0].public_key)])
    with pytest.raises(BundleError, match="not a safe directory name"):
        repo.install(bad.bundle_dir)
    assert repo.list_versions() == []


def test_reinstalling_repairs_a_tampered_copy(tmp_path: Path, versions: list[TinyBundle]) -> None:
    keys = [str(versions[0].public_key)]
    repo = ModelRepository(tmp_path / "models", keys)
    repo.install(versions[0].bundle_dir, activate=True)
    repo.install(versions[1].bundle_dir)
    (repo.models_dir / "v2" / "report.json").write_text("{}")
    restarted = ModelRepository(tmp_path / "models", keys)
    assert {r["version"]: r["status"] for r in restarted.list_versions()} == {"v1": "ok", "v2": "refused"}
    assert restarted.install(versions[1].bundle_dir, activate=True).version == "v2"
    assert restarted.active_version() == "v2"
    assert (restarted.models_dir / "v2" / "report.json").read_bytes() == (
        versions[1].bundle_dir / "report.json"
    ).read_bytes()
