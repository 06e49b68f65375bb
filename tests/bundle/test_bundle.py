"""Signing, verifying, packing and safe unpacking of bundles, on real tiny bundles and real files."""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from edge.bundle import (
    MANIFEST,
    ONNX_FILE,
    SIGNATURE,
    Manifest,
    extract_archive,
    file_entry,
    generate_keypair,
    inspect_bundle,
    load_private_key,
    load_public_key,
    pack_bundle,
    public_key_base64,
    verify_bundle,
    write_bundle,
)
from edge.errors import BundleError
from tests.helpers.tiny_bundle import TinyBundle, ensure_keys, make_classification_bundle


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    """One tiny classification bundle (ONNX only, for speed) shared by the module; tests copy it before harming it."""
    return make_classification_bundle(tmp_path_factory.mktemp("signed"), openvino=False)


@pytest.fixture
def bundle(signed: TinyBundle, tmp_path: Path) -> Path:
    """A private copy of the signed bundle this test may tamper with."""
    return Path(shutil.copytree(signed.bundle_dir, tmp_path / "bundle"))


def keys_of(signed: TinyBundle) -> list[str]:
    return [str(signed.public_key)]


def test_round_trip_directory_and_archive(signed: TinyBundle, tmp_path: Path) -> None:
    manifest = verify_bundle(signed.bundle_dir, keys_of(signed))
    assert manifest.version == "tiny-cls-1"
    assert manifest.task == "classification"
    assert manifest.files[ONNX_FILE] == file_entry(signed.bundle_dir / ONNX_FILE)
    archive = pack_bundle(signed.bundle_dir, tmp_path / "b.tar.gz")
    assert verify_bundle(archive, keys_of(signed)).version == "tiny-cls-1"
    assert inspect_bundle(archive).labels == ["red", "green"]


def test_base64_raw_key_and_pem_text_are_accepted(signed: TinyBundle) -> None:
    pem_key = load_public_key(str(signed.public_key))
    raw_b64 = public_key_base64(pem_key)
    assert len(base64.b64decode(raw_b64)) == 32
    assert verify_bundle(signed.bundle_dir, [raw_b64]).version == "tiny-cls-1"
    assert verify_bundle(signed.bundle_dir, [signed.public_key.read_text()]).version == "tiny-cls-1"


def test_any_trusted_key_is_enough(signed: TinyBundle, tmp_path: Path) -> None:
    _, other_pub = generate_keypair()
    other = tmp_path / "other.pub"
    other.write_bytes(other_pub)
    assert verify_bundle(signed.bundle_dir, [str(other), str(signed.public_key)]).version == "tiny-cls-1"


def test_no_trusted_keys(signed: TinyBundle) -> None:
    with pytest.raises(BundleError, match="no trusted keys configured"):
        verify_bundle(signed.bundle_dir, [])


def test_wrong_key(signed: TinyBundle, tmp_path: Path) -> None:
    _, other_pub = generate_keypair()
    other = tmp_path / "other.pub"
    other.write_bytes(other_pub)
    with pytest.raises(BundleError, match="signature does not verify against any trusted key"):
        verify_bundle(signed.bundle_dir, [str(other)])


def test_changed_manifest_byte(bundle: Path, signed: TinyBundle) -> None:
    data = bytearray((bundle / MANIFEST).read_bytes())
    i = data.index(b"tiny-cls-1")
    data[i] = ord("T")
    (bundle / MANIFEST).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="signature does not verify against any trusted key"):
        verify_bundle(bundle, keys_of(signed))


def test_changed_signature(bundle: Path, signed: TinyBundle) -> None:
    sig = bytearray(base64.b64decode((bundle / SIGNATURE).read_bytes()))
    sig[0] ^= 1
    (bundle / SIGNATURE).write_bytes(base64.b64encode(bytes(sig)))
    with pytest.raises(BundleError, match="signature does not verify"):
        verify_bundle(bundle, keys_of(signed))


def test_missing_signature(bundle: Path, signed: TinyBundle) -> None:
    (bundle / SIGNATURE).unlink()
    with pytest.raises(BundleError, match=r"manifest.sig is missing"):
        verify_bundle(bundle, keys_of(signed))


def test_changed_model_file(bundle: Path, signed: TinyBundle) -> None:
    data = bytearray((bundle / ONNX_FILE).read_bytes())
    data[-1] ^= 0xFF
    (bundle / ONNX_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"file model.onnx: sha256 mismatch"):
        verify_bundle(bundle, keys_of(signed))


def test_truncated_model_file(bundle: Path, signed: TinyBundle) -> None:
    data = (bundle / ONNX_FILE).read_bytes()
    (bundle / ONNX_FILE).write_bytes(data[:-10])
    with pytest.raises(BundleError, match=r"file model.onnx: size \d+ bytes, manifest says \d+"):
        verify_bundle(bundle, keys_of(signed))


def test_missing_file(bundle: Path, signed: TinyBundle) -> None:
    (bundle / "report.json").unlink()
    with pytest.raises(BundleError, match=r"file report.json: missing"):
        verify_bundle(bundle, keys_of(signed))


def test_extra_file(bundle: Path, signed: TinyBundle) -> None:
    (bundle / "openvino").mkdir()
    (bundle / "openvino" / "model.xml").write_text("<net/>")
    with pytest.raises(BundleError, match=r"file openvino/model.xml: not listed in the manifest"):
        verify_bundle(bundle, keys_of(signed))


def test_symlink_in_bundle(bundle: Path, signed: TinyBundle) -> None:
    (bundle / "link").symlink_to(bundle / ONNX_FILE)
    with pytest.raises(BundleError, match="symbolic links are not allowed"):
        verify_bundle(bundle, keys_of(signed))


def test_bad_schema_even_when_signed(signed: TinyBundle, tmp_path: Path) -> None:
    """A correctly signed manifest that breaks the schema is still refused, naming the field."""
    manifest = json.loads((signed.bundle_dir / MANIFEST).read_text())
    manifest["schema"] = 2
    data = (json.dumps(manifest) + "\n").encode()
    bad = Path(shutil.copytree(signed.bundle_dir, tmp_path / "bad"))
    (bad / MANIFEST).write_bytes(data)
    key = load_private_key(signed.public_key.with_name("signing.key"))
    (bad / SIGNATURE).write_bytes(base64.b64encode(key.sign(data)))
    with pytest.raises(BundleError, match=r"does not match schema 1: .*unsupported manifest schema 2"):
        verify_bundle(bad, keys_of(signed))


def test_write_bundle_refuses_bad_schema_and_leaves_nothing(signed: TinyBundle, tmp_path: Path) -> None:
    manifest = inspect_bundle(signed.bundle_dir).model_dump(mode="json", by_alias=True)
    manifest["task"] = "detection"  # outputs say classification
    key = signed.public_key.with_name("signing.key")
    out = tmp_path / "out"
    with pytest.raises(BundleError, match="does not match schema 1"):
        write_bundle(out, manifest, {ONNX_FILE: signed.bundle_dir / ONNX_FILE}, key)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp directory left behind


def test_write_bundle_refuses_unsafe_names_and_non_empty_target(signed: TinyBundle, tmp_path: Path) -> None:
    manifest = inspect_bundle(signed.bundle_dir)
    key = signed.public_key.with_name("signing.key")
    with pytest.raises(BundleError, match="not a plain relative path"):
        write_bundle(tmp_path / "x", manifest, {"../model.onnx": signed.bundle_dir / ONNX_FILE}, key)
    with pytest.raises(BundleError, match="exists and is not empty"):
        write_bundle(signed.bundle_dir, manifest, {ONNX_FILE: signed.bundle_dir / ONNX_FILE}, key)
    # overwrite replaces the whole directory: the old files are gone, the new bundle verifies
    target = Path(shutil.copytree(signed.bundle_dir, tmp_path / "target"))
    out = write_bundle(target, manifest, {ONNX_FILE: signed.bundle_dir / ONNX_FILE}, key, overwrite=True)
    assert not (out / "report.json").exists()
    assert list(verify_bundle(out, keys_of(signed)).files) == [ONNX_FILE]


def test_manifest_object_round_trip(signed: TinyBundle, tmp_path: Path) -> None:
    manifest = inspect_bundle(signed.bundle_dir)
    assert isinstance(manifest, Manifest)
    data = (signed.bundle_dir / MANIFEST).read_bytes()
    assert json.loads(data)["schema"] == 1
    private_pem, public_pem = generate_keypair()
    (tmp_path / "k.key").write_bytes(private_pem)
    (tmp_path / "k.pub").write_bytes(public_pem)
    out = write_bundle(
        tmp_path / "b", manifest, {ONNX_FILE: signed.bundle_dir / ONNX_FILE}, load_private_key(tmp_path / "k.key")
    )
    assert verify_bundle(out, [str(tmp_path / "k.pub")]).name == manifest.name


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_truncated_archive(signed: TinyBundle, tmp_path: Path) -> None:
    archive = pack_bundle(signed.bundle_dir, tmp_path / "b.tar.gz")
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated archive"):
        verify_bundle(cut, keys_of(signed))


def test_not_an_archive(signed: TinyBundle, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not gzip at all" * 10)
    with pytest.raises(BundleError, match=r"not a .tar.gz bundle archive"):
        verify_bundle(junk, keys_of(signed))


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_archive_member_escaping(tmp_path: Path, name: str) -> None:
    archive = _archive(tmp_path / "evil.tar.gz", [_file("manifest.json", b"{}"), _file(name, b"x")])
    dest = tmp_path / "dest"
    with pytest.raises(BundleError, match="escapes the bundle directory"):
        extract_archive(archive, dest)
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_archive_links_and_devices_refused(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("model.onnx")
    info.type = kind
    info.linkname = "/etc/passwd"
    archive = _archive(tmp_path / "link.tar.gz", [_file("manifest.json", b"{}"), (info, None)])
    with pytest.raises(BundleError, match=r"link|special file"):
        extract_archive(archive, tmp_path / "dest")


def test_archive_duplicate_member_refused(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "dup.tar.gz", [_file("model.onnx", b"a"), _file("model.onnx", b"b")])
    with pytest.raises(BundleError, match="appears twice"):
        extract_archive(archive, tmp_path / "dest")


def test_archive_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.bundle as bundle_module

    monkeypatch.setattr(bundle_module, "MAX_FILE_BYTES", 100)
    archive = _archive(tmp_path / "big.tar.gz", [_file("model.onnx", b"x" * 101)])
    with pytest.raises(BundleError, match="larger than 100 bytes"):
        extract_archive(archive, tmp_path / "dest")


def test_archive_with_top_level_directory(signed: TinyBundle, tmp_path: Path) -> None:
    archive = tmp_path / "wrapped.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(signed.bundle_dir, arcname="tiny-cls-1")
    assert verify_bundle(archive, keys_of(signed)).version == "tiny-cls-1"


def test_key_loading_errors(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="neither a readable PEM file nor base64"):
        load_public_key("/no/such/key.pub")
    with pytest.raises(BundleError, match="decodes to 3 bytes"):
        load_public_key(base64.b64encode(b"abc").decode())
    with pytest.raises(BundleError, match="cannot read signing key"):
        load_private_key(tmp_path / "missing.key")
    private, public = ensure_keys(tmp_path / "keys")
    with pytest.raises(BundleError, match="not an unencrypted PEM private key"):
        load_private_key(public)
    # The private key read back is the one that pairs with the public file (not merely some key).
    assert public_key_base64(load_private_key(private)) == public_key_base64(load_public_key(str(public)))


def test_unreadable_trusted_key_is_skipped_not_fatal(signed: TinyBundle, tmp_path: Path) -> None:
    missing = str(tmp_path / "typo.pub")
    assert verify_bundle(signed.bundle_dir, [missing, str(signed.public_key)]).version == "tiny-cls-1"
    with pytest.raises(BundleError, match=r"no usable trusted key: public key .*typo\.pub"):
        verify_bundle(signed.bundle_dir, [missing])


def test_manifest_symlink_refused(bundle: Path, signed: TinyBundle, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.json"
    real.write_bytes((bundle / MANIFEST).read_bytes())
    (bundle / MANIFEST).unlink()
    (bundle / MANIFEST).symlink_to(real)
    with pytest.raises(BundleError, match=r"manifest\.json is not a regular file"):
        verify_bundle(bundle, keys_of(signed))


def test_missing_manifest(bundle: Path, signed: TinyBundle) -> None:
    (bundle / MANIFEST).unlink()
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        verify_bundle(bundle, keys_of(signed))
