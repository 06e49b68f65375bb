"""The fleet's MQTT contract: the group announcement and the device's model report (docs/MQTT.md "Fleet").

`<prefix>/fleet/<group>/model` (retained, QoS 1), published by the trainer or `shelfwatch fleet`:

    {"group": "north", "version": "20261201T...", "sha256": "<of the .tar.gz>", "url": "http://.../bundle.tar.gz",
     "devices": ["shelf-01", ...] | null, "stage": "canary" | "all" | "rollback" | "halted", "rollout": "<id>",
     "previous": {"version", "sha256", "url"} | null, "issued": "<ISO 8601 UTC>", "signature": "<base64 ed25519>"}

`devices` null means every device of the group; a list limits the announcement to those (the canaries of a
staged rollout). `signature` is an ed25519 signature, by a key the devices trust for bundles, over the canonical
JSON of every other field (sorted keys, no spaces): a device ignores an announcement that does not verify, so
whoever can write to the broker still cannot point devices at a URL of their own. The bundle behind the URL is
verified again as every bundle is (manifest signature, file hashes) and its archive's sha256 must match.

`<prefix>/<device>/model` (retained, QoS 1), published by each device:

    {"device": "shelf-01", "group": "north", "version": "...", "state": "active" | "downloading" | "failed",
     "target": "<announced version or null>", "reason": "..." | null, "ts": "<ISO 8601 UTC>"}

`version` is the version running now; `target` the one last announced to this device; `state` `failed` with a
`reason` when the announced bundle could not be fetched, verified or activated (the running model stays).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import BundleError
from edge.timestamps import utc_now_iso

log = logging.getLogger(__name__)

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
DeviceState = Literal["active", "downloading", "failed"]
Stage = Literal["canary", "all", "rollback", "halted"]


def group_topic(prefix: str, group: str) -> str:
    """The retained announcement topic of a group."""
    return f"{prefix}/fleet/{group}/model"


def device_model_topic(prefix: str, device: str) -> str:
    """The retained model report topic of a device."""
    return f"{prefix}/{device}/model"


utc_now = functools.partial(utc_now_iso, "milliseconds")  # fleet messages: UTC, milliseconds, Z


class BundleRef(BaseModel):
    """Where a bundle is and what its archive hashes to; both null for a version the devices already hold (a
    rollback to what they ran before the group's first announcement)."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=128)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    url: str | None = Field(None, min_length=1, max_length=2000)


class Announcement(BundleRef):
    """A signed statement: these devices of `group` should run `version`, fetched from `url`."""

    group: str = Field(pattern=SLUG)
    devices: list[str] | None = None
    stage: Stage = "all"
    rollout: str = Field("", max_length=64)
    previous: BundleRef | None = None
    issued: str = Field(default_factory=utc_now)
    signature: str = ""

    def targets(self, device: str) -> bool:
        """Whether this announcement is meant for `device`."""
        return self.devices is None or device in self.devices

    def signed_bytes(self) -> bytes:
        """The canonical bytes the signature covers: every field but `signature`."""
        data = self.model_dump(mode="json", exclude={"signature"})
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def signed(self, key: Ed25519PrivateKey) -> Announcement:
        """A copy carrying the signature of `key`."""
        return self.model_copy(update={"signature": base64.b64encode(key.sign(self.signed_bytes())).decode()})

    def verify(self, keys: list[Ed25519PublicKey]) -> None:
        """BundleError unless one of `keys` signed this announcement."""
        try:
            signature = base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError) as err:
            raise BundleError("the announcement's signature is not base64") from err
        data = self.signed_bytes()
        for key in keys:
            try:
                key.verify(signature, data)
            except InvalidSignature:
                continue
            return
        raise BundleError("the announcement's signature does not verify against any trusted key")

    def payload(self) -> str:
        """The JSON published on the group topic."""
        return self.model_dump_json()

    @classmethod
    def parse(cls, payload: str | bytes) -> Announcement:
        """An announcement from its JSON; BundleError naming the problem."""
        try:
            return cls.model_validate_json(payload)
        except ValidationError as err:
            first = err.errors()[0]
            raise BundleError(f"malformed announcement: {'.'.join(map(str, first['loc']))}: {first['msg']}") from err

    @classmethod
    def received(cls, topic: str, payload: str | bytes) -> Announcement | None:
        """The announcement a message on `topic` carries; None when it was cleared (empty) or is malformed (logged)."""
        if not payload:
            return None
        try:
            return cls.parse(payload)
        except BundleError as err:
            log.warning("fleet: %s on %s ignored", err, topic)
            return None


class ModelReport(BaseModel):
    """What a device says about its model on `<prefix>/<device>/model`."""

    model_config = ConfigDict(extra="ignore")

    device: str
    group: str | None = None
    version: str | None = None
    state: DeviceState = "active"
    target: str | None = None
    reason: str | None = None
    ts: str = Field(default_factory=utc_now)

    def payload(self) -> str:
        """The retained JSON."""
        return self.model_dump_json()

    @classmethod
    def parse(cls, payload: str | bytes) -> ModelReport | None:
        """A report from its JSON, None when it is not one (an empty retained payload clears the topic)."""
        if not payload:
            return None
        try:
            return cls.model_validate_json(payload)
        except ValidationError:
            return None

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON types."""
        return self.model_dump(mode="json")
