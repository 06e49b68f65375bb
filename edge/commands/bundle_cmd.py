"""`shelfwatch keys generate` and `shelfwatch bundle verify|pack|inspect`: the bundle contract from a shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.commands import command_group
from edge.errors import BundleError


def cmd_keys_generate(args: argparse.Namespace) -> int:
    """Write signing.key (0600) and signing.pub into --out; never overwrite an existing key."""
    from edge.bundle import load_public_key, public_key_base64, write_keypair

    out = Path(args.out)
    private, public = out / "signing.key", out / "signing.pub"
    existing = [str(p) for p in (private, public) if p.exists()]
    if existing:
        raise BundleError(f"refusing to overwrite existing key file(s): {', '.join(existing)}")
    out.mkdir(parents=True, exist_ok=True)
    write_keypair(private, public)
    raw = public_key_base64(load_public_key(str(public)))
    if args.json:
        from edge.cli import print_json

        print_json({"private_key": str(private), "public_key": str(public), "public_key_base64": raw})
    else:
        print(f"wrote {private} (keep it secret) and {public}")
        print(f"trust it on a device with model.trusted_keys: [{public}] or the raw key {raw}")
    return 0


def _manifest_summary(manifest: Any) -> dict[str, Any]:
    return {
        "name": manifest.name,
        "version": manifest.version,
        "created": manifest.created,
        "task": manifest.task,
        "labels": manifest.labels,
        "input": {"width": manifest.input.width, "height": manifest.input.height, "resize": manifest.input.resize},
        "metrics": manifest.metrics,
        "files": sorted(manifest.files),
    }


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify a bundle directory or .tar.gz; exit 1 with the reason when it does not verify."""
    from edge.bundle import verify_bundle

    try:
        manifest = verify_bundle(Path(args.path), list(args.key or []))
    except BundleError as err:
        if args.json:
            from edge.cli import print_json

            sys.stderr.write(f"error: {err}\n")
            print_json({"valid": False, "path": args.path, "reason": str(err)})
            return 1
        raise
    if args.json:
        from edge.cli import print_json

        print_json({"valid": True, "path": args.path, **_manifest_summary(manifest)})
    else:
        print(f"{args.path}: valid {manifest.task} bundle {manifest.name} version {manifest.version}")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    """Pack a bundle directory into .tar.gz (verifying it first when --key is given)."""
    from edge.bundle import pack_bundle, verify_bundle

    if args.key:
        verify_bundle(Path(args.dir), list(args.key))
    out = pack_bundle(Path(args.dir), Path(args.out))
    if args.json:
        from edge.cli import print_json

        print_json({"archive": str(out), "bytes": out.stat().st_size})
    else:
        print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Print a bundle's manifest; with --key also whether it verifies."""
    from edge.bundle import inspect_bundle, verify_bundle

    manifest = inspect_bundle(Path(args.path))
    doc: dict[str, Any] = {"path": args.path, "manifest": manifest.model_dump(mode="json", by_alias=True)}
    if args.key:
        try:
            verify_bundle(Path(args.path), list(args.key))
            doc["verified"], doc["reason"] = True, None
        except BundleError as err:
            doc["verified"], doc["reason"] = False, str(err)
    else:
        doc["verified"] = None  # not checked: inspection alone proves nothing about origin
    if args.json:
        from edge.cli import print_json

        print_json(doc)
    else:
        for key, value in _manifest_summary(manifest).items():
            print(f"{key}: {value}")
        if doc["verified"] is not None:
            print(f"verified: {doc['verified']}" + (f" ({doc['reason']})" if doc["reason"] else ""))
    return 0 if doc["verified"] is not False else 1


def register(sub: Any) -> None:
    """Add `keys` and `bundle` to the CLI."""
    ksub = command_group(sub, "keys", "bundle signing keys")
    gen = ksub.add_parser("generate", help="write a new ed25519 key pair: signing.key (0600) and signing.pub")
    gen.add_argument("--out", required=True, help="directory for signing.key and signing.pub")
    gen.add_argument("--json", action="store_true")
    gen.set_defaults(func=cmd_keys_generate)

    bsub = command_group(sub, "bundle", "verify, pack and inspect model bundles")
    key_help = "trusted public key: PEM file or base64 raw key (repeatable)"
    ver = bsub.add_parser("verify", help="check signature, schema and file hashes; exit 1 with the reason")
    ver.add_argument("path", help="bundle directory or .tar.gz")
    ver.add_argument("--key", action="append", help=key_help)
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(func=cmd_verify)
    pack = bsub.add_parser("pack", help="pack a bundle directory into .tar.gz")
    pack.add_argument("dir")
    pack.add_argument("out", help="output .tar.gz")
    pack.add_argument("--key", action="append", help=key_help + "; verify before packing")
    pack.add_argument("--json", action="store_true")
    pack.set_defaults(func=cmd_pack)
    ins = bsub.add_parser("inspect", help="print a bundle's manifest (unverified unless --key is given)")
    ins.add_argument("path", help="bundle directory or .tar.gz")
    ins.add_argument("--key", action="append", help=key_help)
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(func=cmd_inspect)
