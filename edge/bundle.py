"""The model bundle contract (trainer -> device), schema 1. See docs/BUNDLE.md.

A bundle is a directory (shipped as .tar.gz):

    manifest.json            what the model is and how to feed it (`Manifest` below)
    manifest.sig             ed25519 signature over manifest.json's exact bytes (raw 64 bytes, base64 text)
    model.onnx               one file, no external data, dynamic batch
    openvino/model.xml, openvino/model.bin      FP32 IR (openvino/fp16/, openvino/int8/ optional)
    report.json              evaluation (confusion matrix, per-label P/R/F1, PR curve, mAP for detection)

Tensor contract. Input: float32 `input` of shape [N, 3, H, W] (NCHW), colour order, scale, mean and std as
`input` says; pixel = ((value * scale) - mean) / std per channel after resizing.
Classification output: `outputs.logits` [N, C]; `outputs.activation` says whether softmax is still to be applied.
Detection output: `outputs.boxes` [N, K, 4] x1, y1, x2, y2 normalised to the network input (with letterbox the
device divides by the share of the input that holds the image, see postprocess.decode_detections), and
`outputs.scores` [N, K, C] per-class probabilities (sigmoid already applied). Non-maximum suppression is NOT in
the graph: the device applies per-class NMS at `thresholds.nms_iou` after dropping scores below
`thresholds.score` (`outputs.nms == "device"`).

The device refuses a bundle whose signature does not verify against a trusted key or whose file hashes or sizes
differ from `files`, keeps its running model, and says why.

Signing and verification (this module): `write_bundle` copies the files, fills `files`, writes the manifest bytes
and their ed25519 signature, all in a temporary directory renamed into place, so a half-written bundle never
exists under the final name. `verify_bundle` checks, in this order: a trusted key is configured; manifest.json and
manifest.sig exist; the signature verifies over the exact manifest bytes against one of the trusted keys; the
manifest matches schema 1; every listed file exists as a regular file with the listed size and sha256; no file
besides manifest.json and manifest.sig is present that the manifest does not list (an unlisted model file is
exactly what an attacker would add); the bundle holds a runnable model. Archives (.tar.gz) are unpacked by hand
member by member: only regular files and directories, no absolute paths, no '..', no links or devices, bounded
member count and sizes. Every failure raises `BundleError` with a precise reason.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import BundleError, validation_message
from edge.vocabulary import Task, default_alert_labels

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
ONNX_FILE = "model.onnx"
OPENVINO_XML = "openvino/model.xml"
OPENVINO_BIN = "openvino/model.bin"
REPORT = "report.json"


class _Open(BaseModel):
    # Newer trainers may add fields; an older device ignores what it does not know (schema bumps on breaks).
    model_config = ConfigDict(extra="allow")


class InputSpec(_Open):
    width: int = Field(gt=0, description="Network input width in pixels.")
    height: int = Field(gt=0, description="Network input height in pixels.")
    layout: Literal["NCHW"] = "NCHW"
    color: Literal["RGB", "BGR"] = Field("RGB", description="Channel order the network expects.")
    scale: float = Field(1.0 / 255.0, description="Multiplier applied to 0..255 pixel values before mean/std.")
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225])
    resize: Literal["stretch", "letterbox"] = Field(
        "stretch", description="stretch: resize to width x height; letterbox: keep aspect, pad bottom/right with 0."
    )
    tensor: str = Field("input", description="Name of the input tensor.")


class ClassificationOutputs(_Open):
    type: Literal["classification"] = "classification"
    logits: str = Field("logits", description="Output tensor [N, C].")
    activation: Literal["softmax", "none"] = Field(
        "softmax", description="softmax: the device applies softmax; none: the tensor already holds probabilities."
    )


class DetectionOutputs(_Open):
    type: Literal["detection"] = "detection"
    boxes: str = Field("boxes", description="Output tensor [N, K, 4]: normalised x1, y1, x2, y2.")
    scores: str = Field("scores", description="Output tensor [N, K, C]: per-class probabilities.")
    nms: Literal["device"] = Field("device", description="Where NMS runs: on the device, per class.")
    max_detections: int = Field(100, gt=0, description="Detections kept per image after NMS.")


class Thresholds(_Open):
    score: float = Field(0.5, ge=0, le=1, description="Minimum score to report a label or detection.")
    nms_iou: float = Field(0.5, ge=0, le=1, description="IoU above which overlapping detections are suppressed.")


class FileEntry(_Open):
    sha256: str = Field(min_length=64, max_length=64)
    size: int = Field(ge=0)


class DatasetInfo(_Open):
    sha256: str = Field(description="Hash over the training images and annotations.")
    counts: dict[str, int] = Field(default_factory=dict, description="Images (classification) or boxes per label.")


class BaseInfo(_Open):
    backbone: str
    weights: str = Field(description="Where the initial weights came from: a file, a URL, or 'random'.")
    weights_sha256: str | None = None


class Manifest(_Open):
    """manifest.json, schema 1."""

    schema_: int = Field(SCHEMA_VERSION, alias="schema")
    name: str
    version: str = Field(description="Unique per training run, e.g. 20261121T143000Z-3f2a.")
    created: str = Field(description="ISO 8601 UTC.")
    task: Task
    labels: list[str] = Field(min_length=1)
    alert_labels: list[str] = Field(
        default_factory=list,
        description="Labels that mean 'low stock' (a zone's score is the highest of these); default: all but NONE.",
    )
    input: InputSpec
    outputs: ClassificationOutputs | DetectionOutputs = Field(discriminator="type")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    metrics: dict[str, Any] = Field(default_factory=dict)
    dataset: DatasetInfo
    base: BaseInfo
    files: dict[str, FileEntry]

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.schema_ != SCHEMA_VERSION:
            raise ValueError(f"unsupported manifest schema {self.schema_} (this device reads {SCHEMA_VERSION})")
        if self.outputs.type != self.task:
            raise ValueError(f"outputs.type {self.outputs.type!r} does not match task {self.task!r}")
        unknown = [a for a in self.alert_labels if a not in self.labels]
        if unknown:
            raise ValueError(f"alert_labels {unknown} are not in labels")
        for rel in self.files:
            if rel.startswith("/") or ".." in rel.split("/"):
                raise ValueError(f"file path {rel!r} escapes the bundle")
        return self

    def effective_alert_labels(self) -> list[str]:
        """alert_labels, or every label except NONE-like ones when the trainer did not name any."""
        if self.alert_labels:
            return list(self.alert_labels)
        return default_alert_labels(self.labels)


# --- limits on what the device accepts (a bundle is a few MB to a few hundred MB) ---
MAX_ARCHIVE_MEMBERS = 512
MAX_FILE_BYTES = 1 << 30  # one file
MAX_BUNDLE_BYTES = 2 << 30  # all files together
MAX_MANIFEST_BYTES = 1 << 20
# Files verify_bundle never expects in `files`: the manifest cannot hash itself, and the signature signs it.
_UNLISTED = {MANIFEST, SIGNATURE}
# A bundle must hold at least one model the runtime can load.
_MODEL_FILES = (ONNX_FILE, OPENVINO_XML)


# --- keys ---


def generate_keypair() -> tuple[bytes, bytes]:
    """A fresh ed25519 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def write_keypair(private: Path, public: Path) -> None:
    """A fresh key pair into `private` and `public` (PEM); FileExistsError when `private` exists.

    O_EXCL and mode 0600 at creation: the private key is never readable by others, not even for an instant.
    """
    private_pem, public_pem = generate_keypair()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public.write_bytes(public_pem)


def public_key_base64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The raw 32-byte public key as base64 text (the short form `model.trusted_keys` accepts)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read an unencrypted ed25519 private key (PKCS#8 PEM, as `shelfwatch keys generate` writes it)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BundleError(f"cannot read signing key {path}: {err.strerror or err}") from err
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise BundleError(f"signing key {path} is not an unencrypted PEM private key: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"signing key {path} is a {type(key).__name__}, not an ed25519 key")
    return key


def load_public_key(spec: str | Path) -> Ed25519PublicKey:
    """A trusted key from a PEM file path, PEM text, or base64 of the raw 32-byte key."""
    text = str(spec).strip()
    if not text:
        raise BundleError("empty trusted key")
    data: bytes | None = None
    if text.startswith("-----BEGIN"):
        data = text.encode("ascii", "replace")
    else:
        path = Path(text).expanduser()
        if path.is_file():
            try:
                data = path.read_bytes()
            except OSError as err:
                raise BundleError(f"cannot read public key {path}: {err.strerror or err}") from err
            if not data.lstrip().startswith(b"-----BEGIN"):
                text, data = data.decode("ascii", "replace").strip(), None  # a file holding the base64 form
    if data is not None:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as err:
            raise BundleError(f"public key {_short(spec)} is not a PEM public key: {err}") from err
        if not isinstance(key, Ed25519PublicKey):
            raise BundleError(f"public key {_short(spec)} is a {type(key).__name__}, not an ed25519 key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BundleError(
            f"public key {_short(spec)} is neither a readable PEM file nor base64 of a raw 32-byte key"
        ) from err
    if len(raw) != 32:
        raise BundleError(f"public key {_short(spec)} decodes to {len(raw)} bytes; an ed25519 key has 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def _short(spec: str | Path) -> str:
    text = str(spec).strip()
    if text.startswith("-----BEGIN"):
        return "(PEM text)"
    return text if len(text) <= 200 else text[:197] + "..."


# --- writing ---


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: str | Path) -> FileEntry:
    """The manifest `files` entry (sha256, size) of one file."""
    path = Path(path)
    return FileEntry(sha256=sha256_file(path), size=path.stat().st_size)


def manifest_bytes(manifest: Manifest) -> bytes:
    """The canonical bytes written to manifest.json (the signature covers exactly these)."""
    data = manifest.model_dump(mode="json", by_alias=True)
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def sign_bytes(data: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """manifest.sig content: the raw 64-byte ed25519 signature as base64 text."""
    return base64.b64encode(private_key.sign(data)) + b"\n"


def _check_rel(rel: str) -> str:
    pure = PurePosixPath(rel)
    if not rel or pure.is_absolute() or ".." in pure.parts or "\\" in rel or str(pure) != rel:
        raise BundleError(f"file name {rel!r} is not a plain relative path inside the bundle")
    if rel in _UNLISTED:
        raise BundleError(f"file name {rel!r} is reserved for the bundle's own manifest and signature")
    return rel


def write_bundle(
    out_dir: str | Path,
    manifest: Mapping[str, Any] | Manifest,
    files: Mapping[str, str | Path],
    private_key: Ed25519PrivateKey | str | Path,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a signed bundle directory: files copied under their relative names, `files` filled, manifest signed.

    Everything is written into a temporary sibling directory and renamed into place, so `out_dir` either does not
    exist or holds a complete bundle. An existing non-empty `out_dir` is refused unless `overwrite`.
    """
    out_dir = Path(out_dir)
    key = private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    base = manifest.model_dump(mode="json", by_alias=True) if isinstance(manifest, Manifest) else dict(manifest)
    sources = {_check_rel(rel): Path(src) for rel, src in files.items()}
    for rel, src in sources.items():
        if not src.is_file():
            raise BundleError(f"file {rel}: source {src} is not a readable file")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise BundleError(f"{out_dir} exists and is not empty (pass overwrite to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        entries: dict[str, dict[str, Any]] = {}
        for rel, src in sources.items():
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            entries[rel] = file_entry(dst).model_dump()
        base["files"] = entries
        try:
            parsed = Manifest.model_validate(base)
        except ValidationError as err:
            raise BundleError(f"manifest does not match schema {SCHEMA_VERSION}: {_first_errors(err)}") from err
        if not any(rel in parsed.files for rel in _MODEL_FILES):
            raise BundleError(f"bundle holds no model: give {' or '.join(_MODEL_FILES)} in files")
        data = manifest_bytes(parsed)
        (tmp / MANIFEST).write_bytes(data)
        (tmp / SIGNATURE).write_bytes(sign_bytes(data, key))
        os.chmod(tmp, 0o755)  # noqa: S103 - mkdtemp makes it 0700; a bundle is public, not secret
        _fsync_tree(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote bundle %s version %s (%d files)", out_dir, parsed.version, len(entries))
    return out_dir


def _fsync_tree(root: Path) -> None:
    # A power cut right after the rename must not leave a bundle with empty files under its final name.
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())


def _replace_dir(tmp: Path, final: Path) -> None:
    """Rename a finished directory into place; an existing one is moved aside first and removed after."""
    old: Path | None = None
    if final.exists():
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        else:
            old = final.with_name(f".{final.name}.old-{os.getpid()}-{tmp.name[-8:]}")
            os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(OSError):
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def pack_bundle(bundle_dir: str | Path, tar_gz_path: str | Path) -> Path:
    """Pack a bundle directory into .tar.gz (files at the archive root), written via a temp file + rename."""
    bundle_dir, out = Path(bundle_dir), Path(tar_gz_path)
    if not (bundle_dir / MANIFEST).is_file():
        raise BundleError(f"{bundle_dir} is not a bundle directory (no {MANIFEST})")
    members: list[Path] = []
    for path in sorted(bundle_dir.rglob("*")):
        if path.is_symlink():
            raise BundleError(f"{path} is a symbolic link; a bundle holds regular files only")
        if path.is_file():
            members.append(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for path in members:
                info = tar.gettarinfo(str(path), arcname=path.relative_to(bundle_dir).as_posix())
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o644
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


# --- reading and verifying ---


@contextlib.contextmanager
def _reading(archive: Path) -> Iterator[None]:
    """Turn what tarfile and gzip raise on a damaged archive into BundleError."""
    try:
        yield
    except BundleError:
        raise
    except (EOFError, zlib.error) as err:
        raise BundleError("truncated archive") from err
    except tarfile.ReadError as err:
        msg = str(err)
        if "unexpected end" in msg or "truncated" in msg or "empty file" in msg:
            raise BundleError("truncated archive") from err
        raise BundleError(f"not a .tar.gz bundle archive: {msg}") from err
    except (tarfile.TarError, OSError) as err:
        raise BundleError(f"cannot read archive {archive.name}: {err}") from err


def _members(tar: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, str]]:
    """(member, relative name) of every regular file, after the safety checks on names, kinds, counts and sizes.

    Absolute names, '..', links, devices, duplicate names and declared sizes past the limits are refused from
    the member header, before any of its bytes is read.
    """
    total = 0
    seen: set[str] = set()
    for count, member in enumerate(tar, start=1):
        if count > MAX_ARCHIVE_MEMBERS:
            raise BundleError(f"archive has more than {MAX_ARCHIVE_MEMBERS} members")
        name = member.name
        pure = PurePosixPath(name)
        if pure.is_absolute() or name.startswith(("/", "\\")) or ".." in pure.parts or "\\" in name:
            raise BundleError(f"archive member {name!r} escapes the bundle directory")
        parts = [p for p in pure.parts if p not in ("", ".")]
        if not parts or member.isdir():
            continue
        if not member.isfile():
            kind = "link" if (member.issym() or member.islnk()) else "special file"
            raise BundleError(f"archive member {name!r} is a {kind}; a bundle holds regular files only")
        rel = "/".join(parts)
        if rel in seen:
            raise BundleError(f"archive member {name!r} appears twice")
        seen.add(rel)
        if member.size > MAX_FILE_BYTES:
            raise BundleError(f"archive member {name!r} is larger than {MAX_FILE_BYTES} bytes")
        total += member.size
        if total > MAX_BUNDLE_BYTES:
            raise BundleError(f"archive unpacks to more than {MAX_BUNDLE_BYTES} bytes")
        yield member, rel


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise BundleError(f"archive member {member.name!r} is larger than {limit} bytes")
    src = tar.extractfile(member)
    if src is None:
        raise BundleError(f"archive member {member.name!r} cannot be read")
    with src:
        data = src.read(limit + 1)
    if len(data) != member.size:
        raise BundleError("truncated archive")
    return data


@dataclass(frozen=True)
class _ArchiveManifest:
    """The manifest and signature found in an archive, and the folder they sit in ('' or 'top/')."""

    prefix: str
    manifest: bytes
    signature: bytes | None


def _archive_manifest(archive: Path) -> _ArchiveManifest:
    """Read manifest.json and manifest.sig from the archive without writing anything (stops once both are found)."""
    found: dict[str, dict[str, bytes]] = {}
    with tarfile.open(archive, mode="r:gz") as tar:
        for member, rel in _members(tar):
            head, _, leaf = rel.rpartition("/")
            if leaf not in _UNLISTED or head.count("/") > 0:
                continue  # only the root or one wrapping folder may hold the bundle
            prefix = f"{head}/" if head else ""
            found.setdefault(prefix, {})[leaf] = _read_member(tar, member, MAX_MANIFEST_BYTES)
            if len(found[prefix]) == len(_UNLISTED):
                break
    for prefix in ("", *sorted(p for p in found if p)):
        if MANIFEST in found.get(prefix, {}):
            return _ArchiveManifest(prefix, found[prefix][MANIFEST], found[prefix].get(SIGNATURE))
    raise BundleError(f"{MANIFEST} is missing")


def _check_signature(data: bytes, signature_text: bytes | None, keys: list[Ed25519PublicKey]) -> None:
    if signature_text is None:
        raise BundleError(f"{SIGNATURE} is missing")
    try:
        signature = base64.b64decode(signature_text.strip(), validate=True)
    except (binascii.Error, ValueError) as err:
        raise BundleError(f"{SIGNATURE} is not base64 text") from err
    if len(signature) != 64:
        raise BundleError(f"{SIGNATURE} holds {len(signature)} bytes; an ed25519 signature has 64")
    if not _signed_by_any(data, signature, keys):
        raise BundleError("signature does not verify against any trusted key")


def extract_archive(
    archive: str | Path, dest: str | Path, trusted_keys: list[str] | list[Ed25519PublicKey] | None = None
) -> Path:
    """Safely unpack a bundle .tar.gz into an empty directory `dest`; returns the bundle root inside it.

    With `trusted_keys` (installing), nothing is written before the manifest's signature verifies: a first pass
    reads only manifest.json and manifest.sig from the stream; then only the files the signed manifest lists are
    extracted, each refused from its header when its declared size differs from the manifest's, and checked
    against the manifest's size and sha256 while it streams (an unlisted member is refused before a byte of it
    is written). Without keys (inspection only) every member passing the safety checks is unpacked.
    Only regular files and directories are accepted; absolute names, '..', links, devices, duplicate names and
    archives past the size limits are refused. A single top-level directory wrapping the bundle is accepted.
    """
    archive, dest = Path(archive), Path(dest)
    with _reading(archive):
        signed: Manifest | None = None
        prefix = ""
        if trusted_keys is not None:
            if not trusted_keys:
                raise BundleError("no trusted keys configured")
            found = _archive_manifest(archive)
            _check_signature(found.manifest, found.signature, _load_trusted(trusted_keys))
            signed, prefix = _parse_manifest(found.manifest), found.prefix
        dest.mkdir(parents=True, exist_ok=True)
        written: set[str] = set()
        with tarfile.open(archive, mode="r:gz") as tar:
            for member, rel in _members(tar):
                expected: FileEntry | None = None
                if signed is not None:
                    inner = rel[len(prefix) :] if rel.startswith(prefix) else None
                    if inner is None or (inner not in signed.files and inner not in _UNLISTED):
                        raise BundleError(f"archive member {member.name!r} is not listed in the signed manifest")
                    expected = signed.files.get(inner)
                    if expected is not None and member.size != expected.size:
                        raise BundleError(
                            f"file {inner}: the archive declares {member.size} bytes, the manifest {expected.size}"
                        )
                _extract_member(tar, member, dest / rel, expected, rel[len(prefix) :])
                written.add(rel)
    if not written:
        raise BundleError("archive is empty")
    if signed is not None:
        missing = sorted(rel for rel in signed.files if f"{prefix}{rel}" not in written)
        if missing:
            raise BundleError(f"file {missing[0]}: missing")
        return dest / prefix if prefix else dest
    if (dest / MANIFEST).is_file():
        return dest
    tops = list(dest.iterdir())
    if len(tops) == 1 and tops[0].is_dir() and (tops[0] / MANIFEST).is_file():
        return tops[0]
    return dest


def _extract_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, expected: FileEntry | None, rel: str
) -> None:
    """Stream one member to target; with an expected entry, refuse it past its size or with another sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = tar.extractfile(member)
    if src is None:
        raise BundleError(f"archive member {member.name!r} cannot be read")
    limit = expected.size if expected is not None else member.size
    digest = hashlib.sha256()
    size = 0
    with src, target.open("wb") as fh:
        while chunk := src.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise BundleError(f"file {rel}: more than the {limit} bytes the manifest lists")
            digest.update(chunk)
            fh.write(chunk)
    if size != member.size:
        raise BundleError("truncated archive")
    if expected is not None and digest.hexdigest() != expected.sha256.lower():
        raise BundleError(f"file {rel}: sha256 mismatch")


def read_manifest(bundle_dir: str | Path) -> Manifest:
    """Parse a bundle directory's manifest.json WITHOUT checking the signature (inspection only)."""
    path = Path(bundle_dir) / MANIFEST
    data = _read_manifest_bytes(path)
    return _parse_manifest(data)


def _read_manifest_bytes(path: Path) -> bytes:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BundleError(f"{MANIFEST} is not a regular file")
    if not path.is_file():
        raise BundleError(f"{MANIFEST} is missing")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
    return path.read_bytes()


def _parse_manifest(data: bytes) -> Manifest:
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{MANIFEST} is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise BundleError(f"{MANIFEST} must hold a JSON object")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as err:
        raise BundleError(f"{MANIFEST} does not match schema {SCHEMA_VERSION}: {_first_errors(err)}") from err


def _first_errors(err: ValidationError, limit: int = 3) -> str:
    return validation_message(err, limit=limit)


def _load_trusted(trusted_keys: list[str] | list[Ed25519PublicKey]) -> list[Ed25519PublicKey]:
    # One unreadable entry (a typo in the config) must not block bundles signed by the others: skip it loudly.
    keys: list[Ed25519PublicKey] = []
    problems: list[str] = []
    for spec in trusted_keys:
        if isinstance(spec, Ed25519PublicKey):
            keys.append(spec)
            continue
        try:
            keys.append(load_public_key(spec))
        except BundleError as err:
            problems.append(str(err))
            log.warning("trusted key skipped: %s", err)
    if not keys:
        raise BundleError(f"no usable trusted key: {'; '.join(problems)}")
    return keys


def verify_bundle_dir(bundle_dir: str | Path, trusted_keys: list[str] | list[Ed25519PublicKey]) -> Manifest:
    """Verify an unpacked bundle directory (signature, schema, every file's size and sha256, no extra files)."""
    root = Path(bundle_dir)
    if not trusted_keys:
        raise BundleError("no trusted keys configured")
    keys = _load_trusted(trusted_keys)
    if not root.is_dir():
        raise BundleError(f"{root} is not a bundle directory")
    data = _read_manifest_bytes(root / MANIFEST)
    sig_path = root / SIGNATURE
    if sig_path.is_symlink() or (sig_path.exists() and not sig_path.is_file()):
        raise BundleError(f"{SIGNATURE} is not a regular file")
    _check_signature(data, sig_path.read_bytes() if sig_path.is_file() else None, keys)
    manifest = _parse_manifest(data)
    for rel, entry in manifest.files.items():
        path = root / rel
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise BundleError(f"file {rel}: not a regular file")
        if not path.is_file():
            raise BundleError(f"file {rel}: missing")
        size = path.stat().st_size
        if size != entry.size:
            raise BundleError(f"file {rel}: size {size} bytes, manifest says {entry.size}")
        if sha256_file(path) != entry.sha256.lower():
            raise BundleError(f"file {rel}: sha256 mismatch")
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise BundleError(f"file {rel}: symbolic links are not allowed in a bundle")
        if path.is_file() and rel not in manifest.files and rel not in _UNLISTED:
            raise BundleError(f"file {rel}: not listed in the manifest")
    if not any(rel in manifest.files for rel in _MODEL_FILES):
        raise BundleError(f"bundle holds no model ({' or '.join(_MODEL_FILES)})")
    return manifest


def _signed_by_any(data: bytes, signature: bytes, keys: list[Ed25519PublicKey]) -> bool:
    for key in keys:
        try:
            key.verify(signature, data)
        except InvalidSignature:
            continue
        return True
    return False


@dataclass(frozen=True)
class VerifiedBundle:
    """A verified bundle: its directory (a temporary one for an archive) and manifest."""

    path: Path
    manifest: Manifest


@contextlib.contextmanager
def open_bundle(path: str | Path, trusted_keys: list[str] | list[Ed25519PublicKey]) -> Iterator[VerifiedBundle]:
    """Verify a bundle directory or .tar.gz and yield it; an archive is unpacked into a temp dir removed after."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path} does not exist")
    if not trusted_keys:
        raise BundleError("no trusted keys configured")
    if path.is_dir():
        yield VerifiedBundle(path, verify_bundle_dir(path, trusted_keys))
        return
    with tempfile.TemporaryDirectory(prefix="shelfwatch-bundle-") as tmp:
        root = extract_archive(path, Path(tmp) / "bundle", trusted_keys)
        yield VerifiedBundle(root, verify_bundle_dir(root, trusted_keys))


def verify_bundle(path: str | Path, trusted_keys: list[str] | list[Ed25519PublicKey]) -> Manifest:
    """Verify a bundle directory or .tar.gz against the trusted keys; the manifest, or BundleError with the reason."""
    with open_bundle(path, trusted_keys) as bundle:
        return bundle.manifest


def inspect_bundle(path: str | Path) -> Manifest:
    """Read a bundle's manifest (directory or .tar.gz) without verifying anything."""
    path = Path(path)
    if path.is_dir():
        return read_manifest(path)
    if not path.exists():
        raise BundleError(f"{path} does not exist")
    with _reading(path):  # the manifest alone, read from the stream: nothing is unpacked to look at it
        return _parse_manifest(_archive_manifest(path).manifest)
