"""The device side of the fleet: follow the group's announcement, fetch, verify, activate, report.

A device with `group: G` in edge.yaml subscribes to `<prefix>/fleet/G/model` (retained, so it learns the current
announcement at every connection). For an announcement that verifies against its trusted keys and targets it, it
activates the announced version: at once when that version is installed (a rollback), otherwise after fetching
the archive (size-capped, sha256 checked) and installing it through the model repository, which verifies the
bundle itself. Every outcome is reported, retained, on `<prefix>/<device>/model`; a failure keeps the running model
and says why. Announcements are handled one at a time on a thread of their own; a newer one replaces a waiting one.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.errors import BundleError, ShelfwatchError
from edge.fleet.contract import Announcement, DeviceState, ModelReport

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edge.comms.base import Communicator
    from edge.config import EdgeConfig
    from edge.model_repository import ModelRepository

log = logging.getLogger(__name__)

MAX_BUNDLE_BYTES = 2 * 1024**3
FETCH_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


def load_keys(trusted_keys: list[str]) -> list[Ed25519PublicKey]:
    """The trusted public keys; unreadable entries are skipped (as bundle verification does)."""
    from edge.bundle import load_public_key

    keys = []
    for spec in trusted_keys:
        try:
            keys.append(load_public_key(spec))
        except BundleError as err:
            log.warning("fleet: trusted key skipped: %s", err)
    return keys


def fetch_bundle(url: str, dest: Path, headers: dict[str, str], sha256: str, max_bytes: int = MAX_BUNDLE_BYTES) -> None:
    """Download url to dest (http, https or file), refusing past max_bytes or when the sha256 differs."""
    if not url.startswith(("http://", "https://", "file://")):
        raise BundleError(f"bundle URL {url[:100]!r} must be http(s) or file")
    digest = hashlib.sha256()
    size = 0
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - schemes checked above
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as resp, dest.open("wb") as out:  # noqa: S310
            while chunk := resp.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise BundleError(f"the bundle at {url} is larger than {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as err:
        raise BundleError(f"fetching {url} answered {err.code}") from err
    except (urllib.error.URLError, OSError) as err:
        raise BundleError(f"cannot fetch {url}: {getattr(err, 'reason', err)}") from err
    if digest.hexdigest() != sha256:
        raise BundleError(f"the bundle fetched from {url} has sha256 {digest.hexdigest()}, announced {sha256}")


class FleetFollower:
    """Keeps a device on its group's announced model and reports the result."""

    def __init__(
        self,
        comms: Communicator,
        models: ModelRepository,
        *,
        device_id: str,
        group: str,
        trusted_keys: list[str],
        work_dir: Path,
        headers_for: Callable[[str], dict[str, str]] | None = None,
    ) -> None:
        self.comms = comms
        self.models = models
        self.device_id = device_id
        self.group = group
        self.keys = load_keys(trusted_keys)
        self.work_dir = work_dir
        self.headers_for = headers_for or (lambda url: {})
        self.last: ModelReport | None = None
        self._pending: Announcement | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="fleet-follower", daemon=True)

    @classmethod
    def from_config(cls, config: EdgeConfig, comms: Communicator, models: ModelRepository) -> FleetFollower:
        """The follower of `config.group`; the trainer's token goes with URLs under `trainer.url`."""
        assert config.group is not None
        trainer_url = (config.trainer.url or "").rstrip("/")
        token = config.trainer.token.get_secret_value() if config.trainer.token is not None else None

        def headers_for(url: str) -> dict[str, str]:
            if token and trainer_url and url.startswith(trainer_url + "/"):
                return {"Authorization": f"Bearer {token}"}
            return {}

        return cls(
            comms,
            models,
            device_id=config.device_id,
            group=config.group,
            trusted_keys=config.model.trusted_keys,
            work_dir=Path(config.data_dir) / "fleet",
            headers_for=headers_for,
        )

    def start(self) -> FleetFollower:
        """Report the running model and follow the group's announcement."""
        self._report(self.models.active_version(), "active", None, None)
        # A model activated another way (the studio, `edge models rollback`) is reported too.
        self.models.on_activate(self._on_activate)
        self._thread.start()
        self.comms.subscribe_shared(f"fleet/{self.group}/model", self._on_message)
        return self

    def stop(self) -> None:
        """Stop after the announcement being handled (if any)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _on_activate(self, manifest: Any, _bundle_dir: Path) -> None:
        last = self.last
        if last is None or last.version != manifest.version or last.state != "active":
            self._report(manifest.version, "active", last.target if last else None, None)

    def _on_message(self, topic: str, payload: str) -> None:
        announcement = Announcement.received(topic, payload)
        if announcement is None:
            return  # the group's announcement was cleared, or a malformed one came
        with self._cond:
            self._pending = announcement
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                announcement, self._pending = self._pending, None
            assert announcement is not None
            try:
                self.handle(announcement)
            except Exception:  # never let one announcement end following the group
                log.exception("fleet: handling the announcement of %s failed", announcement.version)

    def handle(self, announcement: Announcement) -> ModelReport | None:
        """Act on one announcement; the report published, or None when it is not for this device."""
        if announcement.group != self.group or not announcement.targets(self.device_id):
            return None
        running = self.models.active_version()
        try:
            announcement.verify(self.keys)
        except BundleError as err:
            log.error("fleet: announcement of %s refused: %s", announcement.version, err)
            return self._report(running, "failed", announcement.version, str(err))
        if running == announcement.version:
            return self._report(running, "active", announcement.version, None)
        try:
            installed = {row["version"] for row in self.models.list_versions()}
            if announcement.version in installed:
                self.models.activate(announcement.version)
            else:
                self._report(running, "downloading", announcement.version, None)
                self._fetch_and_install(announcement)
        except ShelfwatchError as err:
            log.error("fleet: %s not activated: %s (running %s)", announcement.version, err, running)
            return self._report(self.models.active_version(), "failed", announcement.version, str(err))
        log.info("fleet: now running %s (group %s)", announcement.version, self.group)
        return self._report(self.models.active_version(), "active", announcement.version, None)

    def _fetch_and_install(self, announcement: Announcement) -> None:
        if announcement.url is None or announcement.sha256 is None:
            raise BundleError(f"version {announcement.version} is not installed here and the announcement has no URL")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".download-", dir=self.work_dir))
        try:
            archive = folder / "bundle.tar.gz"
            fetch_bundle(announcement.url, archive, self.headers_for(announcement.url), announcement.sha256)
            manifest = self.models.install(archive, activate=False)
            if manifest.version != announcement.version:
                raise BundleError(
                    f"the bundle at the URL is version {manifest.version}, announced {announcement.version}"
                )
            self.models.activate(manifest.version)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _report(self, version: str | None, state: DeviceState, target: str | None, reason: str | None) -> ModelReport:
        report = ModelReport(
            device=self.device_id, group=self.group, version=version, state=state, target=target, reason=reason
        )
        self.last = report
        self.comms.publish("model", report.payload(), retain=True)
        return report
