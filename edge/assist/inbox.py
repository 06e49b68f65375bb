"""The device's inbox: frames worth a person's review, stored in the dataset with the reason each was kept.

Reasons: the model is unsure (a zone's score within `margin` of the alert threshold), a zone flips state back and
forth (`flips` changes within `flip_window_s`), or two models of a skill disagree (the skills' `collect` block calls
`InboxWriter.put`). Every kept frame is rate-limited (per camera: one per `min_interval_s`, at most `per_hour` and
`per_day`, counted in the store so a restart does not reset them) and de-duplicated against the project's images by
perceptual hash (the store's dHash, within `dedup_distance`; unset: `dataset.near_duplicate_distance`). The limits
are edge.yaml's `inbox` section (edge.config.InboxConfig). The inbox is a library
view: `GET /api/v1/images?inbox=true`, each item with its `inbox_reason`.

`InboxSink` wraps the pipelines' sink (edge.pipeline.camera_pipeline.PipelineSink): it forwards every call and
watches zone scores and state changes for the first two reasons. A camera whose frame was refused after a cost (a
near-copy, a count, an error) is offered again only RETRY_S (at most min_interval_s) later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edge.config import InboxConfig
from edge.errors import ShelfwatchError
from edge.store import assist_rows, image_rows
from edge.store.images import validate_image
from edge.timestamps import iso_utc

if TYPE_CHECKING:
    from edge.events import SnapshotImage
    from edge.pipeline.model_slot import ActiveModel
    from edge.pipeline.zone_scoring import ZoneScore
    from edge.pipeline.zone_state import Transition, ZoneState
    from edge.store import DatasetStore

log = logging.getLogger(__name__)


class InboxWriter:
    """Keeps frames in the dataset's inbox, within the limits, skipping near-copies of dataset images.

    `project()` names the project frames go to (the active version's; None: the default). `on_kept(image_id)` is
    called after each kept frame (the assistant suggests for it). `stats` counts kept and skipped frames by why.
    """

    def __init__(
        self,
        store: DatasetStore,
        limits: InboxConfig | None = None,
        *,
        project: Callable[[], int | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limits = limits or InboxConfig()
        self.project = project or (lambda: None)
        self.clock = clock
        self.on_kept: list[Callable[[int], None]] = []
        self.stats = {"kept": 0, "interval": 0, "hour": 0, "day": 0, "near_copy": 0, "error": 0, "retry_wait": 0}
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def dedup_distance(self) -> int:
        """The dHash distance at or below which a frame is a near-copy of a project image."""
        distance = self.limits.dedup_distance
        return self.store.rules.near_duplicate_distance if distance is None else distance

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def skipped(self, key: str) -> None:
        """Count a frame a caller did not offer (InboxSink's "retry_wait": within RETRY_S of a costly refusal)."""
        with self._lock:
            self._count(key)

    def _limited(self, camera: str) -> str | None:
        """Which limit keeps the camera's next frame out, if any."""
        now = self.clock()
        last = self._last.get(camera)
        if last is not None and now - last < self.limits.min_interval_s:
            return "interval"
        when = datetime.fromtimestamp(now, UTC)
        with self.store.assist_tx() as conn:
            if assist_rows.inbox_kept_since(conn, iso_utc(when - timedelta(hours=1)), camera) >= self.limits.per_hour:
                return "hour"
            if assist_rows.inbox_kept_since(conn, iso_utc(when - timedelta(days=1)), camera) >= self.limits.per_day:
                return "day"
        return None

    def keep(self, image_bgr: np.ndarray, reason: str, camera: str | None = None) -> int | None:
        """Store the frame in the inbox with its reason; its image id, or None when a limit or a near-copy skips it."""
        return self.offer(image_bgr, reason, camera)[0]

    def offer(self, image_bgr: np.ndarray, reason: str, camera: str | None = None) -> tuple[int | None, str]:
        """`keep`, and what became of the frame: "kept", or why not (a `stats` key: interval, hour, day,
        near_copy, error)."""
        cam = camera or "camera"
        with self._lock:
            limited = self._limited(cam)
            if limited is not None:
                self._count(limited)
                return None, limited
            ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not ok:
                self._count("error")
                return None, "error"
            data = buf.tobytes()
            rules = self.store.rules
            try:
                facts = validate_image(
                    data, "inbox frame", max_image_mb=rules.max_image_mb, max_pixels=rules.max_pixels
                )
                project = self.store.get_project(self.project())
                with self.store.assist_tx(write=True) as conn:
                    hashes = image_rows.all_hashes(conn, project.id)
                    if image_rows.closest(facts.phash, hashes, self.dedup_distance) is not None:
                        self._count("near_copy")
                        return None, "near_copy"
                    stamp = datetime.fromtimestamp(self.clock(), UTC)
                    record = self.store.add_image(
                        data,
                        filename=f"inbox-{cam}-{stamp.strftime('%Y%m%dT%H%M%S')}.jpg",
                        camera=camera,
                        captured_at=stamp,
                        project=project.id,
                    )
                    assist_rows.add_inbox(conn, record.id, reason, cam, iso_utc(stamp))
            except ShelfwatchError as err:
                log.warning("inbox frame of %s not kept: %s", cam, err)
                self._count("error")
                return None, "error"
            self._last[cam] = self.clock()
            self._count("kept")
        log.info("inbox: kept a frame of %s (image %s): %s", cam, record.id, reason)
        for callback in list(self.on_kept):
            try:
                callback(record.id)
            except Exception:
                log.exception("inbox listener failed")
        return record.id, "kept"

    def put(self, image: np.ndarray, **info: Any) -> int | None:
        """The skills' `collect` block's call (same signature as edge.skills.inbox.Inbox.put): reason, camera,
        skill and block name the frame's reason."""
        where = "/".join(str(info[k]) for k in ("skill", "block") if info.get(k))
        reason = str(info.get("reason") or "collected by a skill")
        return self.keep(image, f"skill {where}: {reason}" if where else reason, info.get("camera"))


# After a camera's frame was refused for a reason found only at a cost (a near-copy of a project image: a JPEG of
# the frame, its decode and hash, the project's hashes; the hour's or the day's count: queries; an error), that
# camera's next frames are offered again only this many seconds later (at most `min_interval_s`). A camera
# looking at the shelf its project's photos show would otherwise pay ~10 ms of CPU on the pipeline's thread for
# every unsure frame (issue 15: four det15 cameras on the bench clip spent ~45% of the pipelines' samples there).
RETRY_S = 5.0


class InboxSink:
    """A PipelineSink that forwards everything to `inner` and keeps unsure and flipping frames in the inbox (a
    camera whose frame was refused as a near-copy, by a count or an error is offered again after RETRY_S)."""

    def __init__(self, inner: Any, writer: InboxWriter, threshold: float, limits: InboxConfig | None = None) -> None:
        self.inner = inner
        self.writer = writer
        self.threshold = threshold
        self.limits = limits or writer.limits
        self._changes: dict[tuple[str, str], deque[float]] = {}
        self._seen: dict[tuple[str, str], str] = {}
        self._flipping: dict[str, str] = {}
        self._retry_at: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def camera_status(self, camera: str, online: bool) -> None:
        self.inner.camera_status(camera, online)

    def zone_state(self, camera: str, zone: str, state: ZoneState, model: ActiveModel | None) -> None:
        self.inner.zone_state(camera, zone, state, model)
        key = (camera, zone)
        before = self._seen.get(key)
        self._seen[key] = state.state
        if before is None or before == state.state or state.state == "unknown":
            return
        now = self.writer.clock()
        changes = self._changes.setdefault(key, deque())
        changes.append(now)
        while changes and now - changes[0] > self.limits.flip_window_s:
            changes.popleft()
        if len(changes) >= self.limits.flips:
            minutes = self.limits.flip_window_s / 60.0
            self._flipping[camera] = (
                f"flipping: zone {zone} changed state {len(changes)} times in {minutes:g} min (now {state.state})"
            )
            changes.clear()

    def zone_event(
        self, camera: str, zone: str, transition: Transition, image: SnapshotImage | None, model: ActiveModel | None
    ) -> None:
        self.inner.zone_event(camera, zone, transition, image, model)

    def frame_done(self, camera: str, frame: Any, scores: Sequence[tuple[str, ZoneScore]]) -> None:
        self.inner.frame_done(camera, frame, scores)
        image = getattr(frame, "image", None)
        if not isinstance(image, np.ndarray) or image.ndim != 3:
            return
        reason = self._flipping.pop(camera, None)
        if reason is None:
            unsure = [
                (zone, score.score) for zone, score in scores if abs(score.score - self.threshold) <= self.limits.margin
            ]
            if unsure:
                zone, value = min(unsure, key=lambda z: abs(z[1] - self.threshold))
                reason = (
                    f"unsure: zone {zone} scored {value:.2f}, within {self.limits.margin:g} of the threshold "
                    f"{self.threshold:g}"
                )
        if reason is None:
            return
        now = self.writer.clock()
        if now < self._retry_at.get(camera, float("-inf")):
            self.writer.skipped("retry_wait")  # as a frame refused for the interval: not kept, not queued
            return
        _, outcome = self.writer.offer(image, reason, camera)
        if outcome not in ("kept", "interval"):  # never longer than the wait between two kept frames
            self._retry_at[camera] = now + min(RETRY_S, self.limits.min_interval_s)


def active_project(models: Any) -> int | None:
    """The project of the version the device runs (None without one: the default project)."""
    version = models.active_version()
    return None if version is None else int(models.version_tag(version)["project"])
