"""Installing an archive: the manifest's signature is checked before anything is written, then only the listed
files are unpacked, each checked against its declared size and sha256 while it streams."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from edge.bundle import MANIFEST, ONNX_FILE, SIGNATURE, extract_archive, inspect_bundle
from edge.errors import BundleError
from edge.model_repository import ModelRepository
from tests.helpers.disk import small_filesystem, used_bytes
from tests.helpers.hostile import zeros_member
from tests.helpers.tiny_bundle import TinyBundle, make_classification_bundle

MIB = 1 << 20


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    return make_classification_bundle(tmp_path_factory.mktemp("signed"), openvino=False)


def hostile_archive(
    signed: TinyBundle,
    out: Path,
    *,
    sign: bool = True,
    extra: dict[str, int] | None = None,
    replace: dict[str, bytes] | None = None,
) -> Path:
    """The signed bundle as a .tar.gz, without its signature unless `sign`, plus `extra` zero-filled members (name ->
    size) after the manifest, and members whose content `replace` swaps."""
    root = signed.bundle_dir
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    with tarfile.open(out, "w:gz") as tar:
        for name in names:
            if name == SIGNATURE and not sign:
                continue
            data = (replace or {}).get(name)
            if data is None:
                tar.add(root / name, arcname=name)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)

                tar.addfile(info, io.BytesIO(data))
            if name == MANIFEST:
                for extra_name, size in (extra or {}).items():
                    zeros_member(tar, extra_name, size)
    return out


def keys(signed: TinyBundle) -> list[str]:
    return [str(signed.public_key)]


def test_an_unsigned_archive_writes_nothing(signed: TinyBundle, tmp_path: Path) -> None:
    # The 2 MB tar.gz with two unlisted 1 GiB members wrote ~1 GB before its 400; here 2 x 32 MiB.
    archive = hostile_archive(signed, tmp_path / "b.tar.gz", sign=False, extra={"a.bin": 32 * MIB, "b.bin": 32 * MIB})
    assert archive.stat().st_size < 1 * MIB
    dest = tmp_path / "dest"
    with pytest.raises(BundleError, match=r"manifest\.sig is missing"):
        extract_archive(archive, dest, keys(signed))
    assert not dest.exists() or used_bytes(dest) == 0


def test_a_signed_archive_with_unlisted_members_is_refused_before_they_are_written(
    signed: TinyBundle, tmp_path: Path
) -> None:
    archive = hostile_archive(signed, tmp_path / "b.tar.gz", extra={"huge.bin": 32 * MIB})
    dest = tmp_path / "dest"
    with pytest.raises(BundleError, match=r"'huge\.bin' is not listed in the signed manifest"):
        extract_archive(archive, dest, keys(signed))
    assert used_bytes(dest) < 1 * MIB  # the manifest and signature at most, never the unlisted member


def test_a_member_declaring_another_size_than_the_manifest_is_refused_from_its_header(
    signed: TinyBundle, tmp_path: Path
) -> None:
    listed = json.loads((signed.bundle_dir / MANIFEST).read_bytes())["files"][ONNX_FILE]["size"]
    archive = hostile_archive(signed, tmp_path / "b.tar.gz", replace={ONNX_FILE: bytes(listed + 4 * MIB)})
    dest = tmp_path / "dest"
    with pytest.raises(BundleError, match=rf"file model\.onnx: the archive declares {listed + 4 * MIB} bytes"):
        extract_archive(archive, dest, keys(signed))
    assert not (dest / ONNX_FILE).exists()
    same_size = hostile_archive(signed, tmp_path / "c.tar.gz", replace={ONNX_FILE: bytes(listed)})
    with pytest.raises(BundleError, match=r"file model\.onnx: sha256 mismatch"):
        extract_archive(same_size, tmp_path / "dest2", keys(signed))


def test_a_good_archive_installs_and_inspection_unpacks_nothing(signed: TinyBundle, tmp_path: Path) -> None:
    archive = hostile_archive(signed, tmp_path / "b.tar.gz")
    root = extract_archive(archive, tmp_path / "dest", keys(signed))
    assert (root / ONNX_FILE).read_bytes() == (signed.bundle_dir / ONNX_FILE).read_bytes()
    assert inspect_bundle(archive).version == "tiny-cls-1"
    repo = ModelRepository(tmp_path / "models", keys(signed))
    assert repo.install(archive).version == "tiny-cls-1"


def test_installing_an_unsigned_bomb_on_a_small_disk_fails_on_the_signature_not_the_disk(
    signed: TinyBundle, tmp_path: Path
) -> None:
    # models/ on a 4 MiB filesystem: unpacking the unlisted 16 MiB member first used to end in "No space left".
    with small_filesystem(tmp_path / "models", "4m") as models:
        archive = hostile_archive(signed, tmp_path / "b.tar.gz", sign=False, extra={"pad.bin": 16 * MIB})
        repo = ModelRepository(models, keys(signed))
        with pytest.raises(BundleError, match=r"manifest\.sig is missing"):
            repo.install(archive)
        assert used_bytes(models) == 0
