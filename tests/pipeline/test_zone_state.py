"""ZoneState hysteresis: parametrised score sequences -> the states after each evaluation."""

from __future__ import annotations

import pytest

from edge.pipeline.zone_scoring import ZoneScore
from edge.pipeline.zone_state import ZoneState

ON, OFF = 0.6, 0.4

CASES = [
    # (name, min_frames, scores, expected state after each score)
    ("first decision needs min_frames", 3, [0.9, 0.9, 0.9], ["unknown", "unknown", "low_stock"]),
    ("first ok also needs min_frames", 2, [0.1, 0.1, 0.1], ["unknown", "ok", "ok"]),
    ("dead band from unknown counts as ok", 2, [0.5, 0.5], ["unknown", "ok"]),
    ("streak broken from unknown", 3, [0.9, 0.9, 0.1, 0.9, 0.9, 0.9], ["unknown"] * 5 + ["low_stock"]),
    ("on_threshold itself counts", 2, [0.1, 0.1, ON, ON], ["unknown", "ok", "ok", "low_stock"]),
    ("dead band never enters", 2, [0.1, 0.1, 0.59, 0.59, 0.59], ["unknown", "ok", "ok", "ok", "ok"]),
    ("leave needs min_frames <= off", 2, [0.9, 0.9, 0.3, 0.3], ["unknown", "low_stock", "low_stock", "ok"]),
    ("off_threshold itself counts", 2, [0.9, 0.9, OFF, OFF], ["unknown", "low_stock", "low_stock", "ok"]),
    (
        "dead band while low resets the leave streak",
        2,
        [0.9, 0.9, 0.3, 0.5, 0.3, 0.3],
        ["unknown", "low_stock", "low_stock", "low_stock", "low_stock", "ok"],
    ),
    ("min_frames 1 follows every crossing", 1, [0.9, 0.1, 0.5, 0.9], ["low_stock", "ok", "ok", "low_stock"]),
    (
        "flicker never flips",
        3,
        [0.1, 0.1, 0.1, 0.9, 0.1, 0.9, 0.9, 0.1],
        ["unknown", "unknown", "ok", "ok", "ok", "ok", "ok", "ok"],
    ),
]


@pytest.mark.parametrize(("name", "min_frames", "scores", "expected"), CASES, ids=[c[0] for c in CASES])
def test_sequences(name: str, min_frames: int, scores: list[float], expected: list[str]) -> None:
    zs = ZoneState(ON, OFF, min_frames)
    seen = []
    for s in scores:
        zs.update(ZoneScore(s, "empty"))
        seen.append(zs.state)
    assert seen == expected


def test_phases_follow_the_alert_episode() -> None:
    zs = ZoneState(ON, OFF, 2)
    phases = []
    for s in [0.9, 0.9, 0.1, 0.1, 0.9, 0.9]:
        t = zs.update(ZoneScore(s, "empty", (0.1, 0.1, 0.2, 0.2)))
        if t is not None:
            phases.append((t.old, t.new, t.phase))
    assert phases == [
        ("unknown", "low_stock", "start"),
        ("low_stock", "ok", "end"),
        ("ok", "low_stock", "start"),
    ]


def test_offline_goes_unknown_at_once_and_keeps_the_alert_open() -> None:
    zs = ZoneState(ON, OFF, 2)
    for s in [0.9, 0.9]:
        zs.update(ZoneScore(s, "empty"))
    assert zs.state == "low_stock" and zs.alert_open
    t = zs.set_offline()
    assert t is not None and t.new == "unknown" and t.phase is None
    assert zs.set_offline() is None  # already unknown: no second transition
    # Back online and still low: decided again after min_frames, but no second 'start'.
    t1 = zs.update(ZoneScore(0.9, "empty"))
    t2 = zs.update(ZoneScore(0.9, "empty"))
    assert t1 is None and t2 is not None and t2.new == "low_stock" and t2.phase is None
    # Restocked: the open alert ends.
    zs.update(ZoneScore(0.1, "empty"))
    t3 = zs.update(ZoneScore(0.1, "empty"))
    assert t3 is not None and t3.phase == "end"


def test_offline_streak_is_reset() -> None:
    zs = ZoneState(ON, OFF, 3)
    zs.update(ZoneScore(0.9, "empty"))
    zs.update(ZoneScore(0.9, "empty"))
    zs.set_offline()
    zs.update(ZoneScore(0.9, "empty"))
    assert zs.state == "unknown"  # two before going offline do not count


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="off_threshold"):
        ZoneState(0.4, 0.6, 2)
    with pytest.raises(ValueError, match="min_frames"):
        ZoneState(0.6, 0.4, 0)
