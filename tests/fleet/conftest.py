"""Fixtures of the fleet tests: a real Mosquitto on a free port, a real signed bundle packed as .tar.gz."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.bundle import pack_bundle
from tests.helpers.broker import MOSQUITTO, Broker
from tests.helpers.tiny_bundle import make_classification_bundle


@dataclass
class PackedBundle:
    archive: Path
    version: str
    signing_key: Path
    public_key: Path

    def archive_sha256(self) -> str:
        from edge.bundle import sha256_file

        return sha256_file(self.archive)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian package 'mosquitto'; `make test` installs it as root)")
    with Broker(tmp_path / "mosquitto") as running:
        yield running


def packed(tmp_path: Path, version: str, key_dir: Path) -> PackedBundle:
    """A real signed tiny classification bundle `version`, packed."""
    tiny = make_classification_bundle(tmp_path / "bundles", version=version, key_dir=key_dir, openvino=False)
    archive = pack_bundle(tiny.bundle_dir, tmp_path / f"{version}.tar.gz")
    return PackedBundle(archive, version, key_dir / "signing.key", key_dir / "signing.pub")


@pytest.fixture
def bundle_v2(tmp_path: Path) -> PackedBundle:
    return packed(tmp_path, "fleet-v2", tmp_path / "keys")
