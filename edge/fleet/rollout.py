"""The fleet controller: what every device of a group runs, staged rollouts with canaries, and rollback.

It reads the retained `<prefix>/<device>/model` reports (a group's members are the devices whose report names it)
and the retained group announcements, and publishes signed announcements. A staged rollout announces the new
version to a canary share of the group first (`devices` lists them) and waits until every canary reports it
`active` within the deadline; then it announces it to the whole group and waits until every device reports it. A
canary that reports `failed` for the new version, or a deadline passed, halts the rollout: the group's previous
announcement is published again (canaries that had switched go back, the others never moved), or, for a group that
had none, an announcement limited to nobody. `rollback` announces the previous version to the whole group.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.comms.link import MqttLink
from edge.errors import ConflictError, NotFoundError
from edge.fleet.contract import Announcement, BundleRef, ModelReport

log = logging.getLogger(__name__)

SETTLE_S = 1.0
POLL_S = 0.05


@dataclass
class RolloutResult:
    """How a staged rollout ended."""

    group: str
    version: str
    outcome: str  # completed | halted
    devices: int
    canaries: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    canary_seconds: float | None = None
    seconds_to_all: float | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return dict(self.__dict__)


class FleetController:
    """Watches reports and announcements on one broker connection and publishes signed announcements."""

    def __init__(self, link: MqttLink, prefix: str = "shelfwatch") -> None:
        self.link = link
        self.prefix = prefix
        self._lock = threading.Lock()
        self._reports: dict[str, ModelReport] = {}
        self._arrived: dict[str, float] = {}  # device -> monotonic time its latest report arrived
        self._announcements: dict[str, Announcement] = {}
        self._last_message = time.monotonic()

    def start(self, settle_s: float = SETTLE_S, max_wait_s: float = 30.0) -> FleetController:
        """Subscribe and wait until the retained messages stop arriving (settle_s quiet, at most max_wait_s)."""
        self.link.subscribe(f"{self.prefix}/+/model", self._on_report)
        self.link.subscribe(f"{self.prefix}/fleet/+/model", self._on_announcement)
        deadline = time.monotonic() + max_wait_s
        while time.monotonic() < deadline and time.monotonic() - self._last_message < settle_s:
            time.sleep(POLL_S)
        return self

    def _on_report(self, topic: str, payload: bytes, retained: bool) -> None:
        parts = topic.split("/")
        if len(parts) != 3 or parts[1] == "fleet":
            return
        report = ModelReport.parse(payload)
        with self._lock:
            self._last_message = time.monotonic()
            if report is None:
                self._reports.pop(parts[1], None)
            else:
                self._reports[parts[1]] = report
                self._arrived[parts[1]] = self._last_message

    def _on_announcement(self, topic: str, payload: bytes, retained: bool) -> None:
        group = topic.split("/")[2]
        announcement = Announcement.received(topic, payload)
        with self._lock:
            self._last_message = time.monotonic()
            if announcement is not None:
                self._announcements[group] = announcement
            elif not payload:
                self._announcements.pop(group, None)  # cleared; a malformed one leaves the last one standing

    # --- reading ---

    def members(self, group: str) -> dict[str, ModelReport]:
        """The devices whose latest report names `group`, by id."""
        with self._lock:
            return {d: r for d, r in self._reports.items() if r.group == group}

    def announcement(self, group: str) -> Announcement | None:
        """The group's current announcement."""
        with self._lock:
            return self._announcements.get(group)

    def status(self, group: str) -> dict[str, Any]:
        """The group's announcement and each member's version and state."""
        members = self.members(group)
        current = self.announcement(group)
        counts: dict[str, int] = {}
        for report in members.values():
            counts[report.state] = counts.get(report.state, 0) + 1
        versions: dict[str, int] = {}
        for report in members.values():
            versions[report.version or "none"] = versions.get(report.version or "none", 0) + 1
        return {
            "group": group,
            "announced": None
            if current is None
            else {
                "version": current.version,
                "stage": current.stage,
                "devices": current.devices,
                "rollout": current.rollout,
                "previous": current.previous.version if current.previous else None,
                "issued": current.issued,
            },
            "devices": [{k: v for k, v in members[d].as_dict().items() if k != "group"} for d in sorted(members)],
            "states": counts,
            "versions": versions,
        }

    # --- publishing ---

    def announce(self, announcement: Announcement, key: Ed25519PrivateKey) -> Announcement:
        """Sign and publish (retained) a group announcement; waits for the broker's acknowledgement."""
        signed = announcement.signed(key)
        self.link.publish(f"{self.prefix}/fleet/{signed.group}/model", signed.payload(), retain=True)
        with self._lock:
            self._announcements[signed.group] = signed
        log.info("fleet: announced %s to group %s (%s)", signed.version, signed.group, signed.stage)
        return signed

    def rollout(
        self,
        group: str,
        bundle: BundleRef,
        key: Ed25519PrivateKey,
        *,
        canary_share: float = 0.05,
        canary_deadline_s: float = 120.0,
        deadline_s: float = 600.0,
        seed: int | None = None,
    ) -> RolloutResult:
        """A staged rollout of `bundle` to `group`: canaries first, the rest once every canary is healthy."""
        members = sorted(self.members(group))
        if not members:
            raise NotFoundError(f"no device reports group {group!r} (is `group:` set in their edge.yaml?)")
        current = self.announcement(group)
        if current is not None:
            previous: BundleRef | None = BundleRef(version=current.version, sha256=current.sha256, url=current.url)
        else:
            # The group's first announcement: what most members run now is what a rollback returns to (they hold it).
            running = Counter(r.version for r in self.members(group).values() if r.version)
            previous = BundleRef(version=running.most_common(1)[0][0]) if running else None
        if previous is not None and previous.version == bundle.version and current and current.stage == "all":
            raise ConflictError(f"group {group} is already announced version {bundle.version}")
        rollout_id = secrets.token_hex(4)
        count = min(len(members), max(1, math.ceil(canary_share * len(members))))
        canaries = sorted(random.Random(seed if seed is not None else rollout_id).sample(members, count))
        base = Announcement(
            group=group,
            version=bundle.version,
            sha256=bundle.sha256,
            url=bundle.url,
            rollout=rollout_id,
            previous=previous,
        )
        result = RolloutResult(group, bundle.version, "completed", len(members), canaries)
        started = time.monotonic()
        self.announce(base.model_copy(update={"devices": canaries, "stage": "canary"}), key)
        done, failed = self._wait(canaries, bundle.version, canary_deadline_s, since=started, stop_on_failure=True)
        if failed or not done:
            result.outcome = "halted"
            result.failed = failed
            missing = [d for d in canaries if d not in failed and d not in done]
            result.reason = (
                f"{len(failed)} canary(ies) failed"
                if failed
                else f"{len(missing)} canary(ies) silent past the deadline"
            )
            self._halt(group, base, previous, key)
            log.error("fleet: rollout of %s to %s halted: %s", bundle.version, group, result.reason)
            return result
        result.canary_seconds = round(time.monotonic() - started, 3)
        stage_two = time.monotonic()
        self.announce(base.model_copy(update={"devices": None, "stage": "all"}), key)
        everyone = sorted(self.members(group))
        done, failed = self._wait(everyone, bundle.version, deadline_s, since=stage_two, stop_on_failure=False)
        result.failed = failed
        result.devices = len(everyone)
        if len(done) == len(everyone):
            result.seconds_to_all = round(time.monotonic() - started, 3)
        else:
            result.outcome = "incomplete"
            result.reason = f"{len(everyone) - len(done)} device(s) not on {bundle.version} ({len(failed)} failed)"
        return result

    def rollback(self, group: str, key: Ed25519PrivateKey) -> Announcement:
        """Announce the group's previous version to every member (the current one becomes its `previous`)."""
        current = self.announcement(group)
        if current is None or current.previous is None:
            raise ConflictError(f"group {group!r} has no previous announced version to roll back to")
        back = Announcement(
            group=group,
            version=current.previous.version,
            sha256=current.previous.sha256,
            url=current.previous.url,
            stage="rollback",
            rollout=secrets.token_hex(4),
            previous=BundleRef(version=current.version, sha256=current.sha256, url=current.url),
        )
        return self.announce(back, key)

    def _halt(self, group: str, base: Announcement, previous: BundleRef | None, key: Ed25519PrivateKey) -> None:
        if previous is not None:
            self.announce(
                Announcement(
                    group=group,
                    version=previous.version,
                    sha256=previous.sha256,
                    url=previous.url,
                    stage="halted",
                    rollout=base.rollout,
                    previous=BundleRef(version=base.version, sha256=base.sha256, url=base.url),
                ),
                key,
            )
        else:
            self.announce(base.model_copy(update={"devices": [], "stage": "halted"}), key)

    def _wait(
        self, devices: list[str], version: str, deadline_s: float, *, since: float, stop_on_failure: bool
    ) -> tuple[set[str], dict[str, str]]:
        """Wait until every device runs `version` or failed it (a failure reported after `since` counts), or the
        first failure with stop_on_failure; (devices on it, {device: reason} of those that failed)."""
        deadline = time.monotonic() + deadline_s
        wanted = set(devices)
        while True:
            with self._lock:
                reports = {d: (self._reports.get(d), self._arrived.get(d, 0.0)) for d in wanted}
            done = {
                d for d, (r, _) in reports.items() if r is not None and r.version == version and r.state == "active"
            }
            failed = {
                d: r.reason or "failed"
                for d, (r, at) in reports.items()
                if r is not None and r.state == "failed" and r.target == version and at >= since
            }
            if (failed and stop_on_failure) or len(done) + len(failed) >= len(wanted) or time.monotonic() > deadline:
                return done, failed
            time.sleep(POLL_S)
