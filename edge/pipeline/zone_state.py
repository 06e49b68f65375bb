"""Zone state: how one zone's scores become a state with hysteresis, and when an alert opens and closes.

State (`ZoneState`): `unknown` until decided; `low_stock` after `min_frames` consecutive scores >= on_threshold;
back to `ok` after `min_frames` consecutive scores <= off_threshold; `unknown` at once while the camera is offline.
The first decision out of `unknown` also needs `min_frames` agreeing evaluations: >= on_threshold counts towards
`low_stock`, anything below on_threshold counts towards `ok` (a live zone that is not confidently low stock is
reported stocked rather than left unknown).

Alerts (`phase` start/end events) follow the episode, not the raw state: `start` when a zone enters `low_stock`
without an open alert, `end` when it is decided `ok` while an alert is open. An offline spell (`unknown`) neither
ends nor restarts an open alert, so a flapping camera does not produce start/start/start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from edge.pipeline.zone_scoring import BBox, ZoneScore
from edge.timestamps import utc_now_iso

ZoneStateName = Literal["unknown", "ok", "low_stock"]


@dataclass(frozen=True)
class Transition:
    """A change of a zone's state; `phase` is set when it opens (start) or closes (end) a low-stock alert."""

    old: ZoneStateName
    new: ZoneStateName
    score: float
    label: str | None
    bbox: BBox | None
    since: str
    phase: Literal["start", "end"] | None


@dataclass
class ZoneState:
    """Hysteresis of one zone (see the module docstring for the exact rules)."""

    on_threshold: float
    off_threshold: float
    min_frames: int
    state: ZoneStateName = "unknown"
    score: float | None = None
    since: str = field(default_factory=partial(utc_now_iso, "milliseconds"))
    alert_open: bool = False
    _streak_target: ZoneStateName | None = None
    _streak: int = 0

    def __post_init__(self) -> None:
        if not self.off_threshold < self.on_threshold:
            raise ValueError("off_threshold must be below on_threshold")
        if self.min_frames < 1:
            raise ValueError("min_frames must be at least 1")

    def _target_for(self, score: float) -> ZoneStateName | None:
        if self.state == "low_stock":
            return "ok" if score <= self.off_threshold else None
        if self.state == "ok":
            return "low_stock" if score >= self.on_threshold else None
        return "low_stock" if score >= self.on_threshold else "ok"

    def update(self, result: ZoneScore) -> Transition | None:
        """Feed one evaluation; returns the transition when the state changes."""
        self.score = result.score
        target = self._target_for(result.score)
        if target is None:
            self._streak_target, self._streak = None, 0
            return None
        if target == self._streak_target:
            self._streak += 1
        else:
            self._streak_target, self._streak = target, 1
        if self._streak < self.min_frames:
            return None
        return self._move(target, result)

    def set_offline(self) -> Transition | None:
        """The camera went away: the zone is `unknown` at once (an open alert stays open)."""
        self._streak_target, self._streak = None, 0
        self.score = None
        if self.state == "unknown":
            return None
        return self._move("unknown", ZoneScore(0.0, None))

    def _move(self, new: ZoneStateName, result: ZoneScore) -> Transition:
        old = self.state
        self.state = new
        self.since = utc_now_iso("milliseconds")
        self._streak_target, self._streak = None, 0
        phase: Literal["start", "end"] | None = None
        if new == "low_stock" and not self.alert_open:
            self.alert_open, phase = True, "start"
        elif new == "ok" and self.alert_open:
            self.alert_open, phase = False, "end"
        return Transition(old, new, result.score, result.label, result.bbox, self.since, phase)
