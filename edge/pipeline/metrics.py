"""A small metrics registry rendered as Prometheus text (no client library: the device keeps dependencies few).

Counters, gauges (set, or read from a callback at scrape time) and histograms, each with optional labels.
`/metrics` serves `MetricsRegistry.render()`; `/api/v1/status` and MQTT stats read `snapshot()`.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LabelKey = tuple[tuple[str, str], ...]

INFERENCE_MS_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500, 10000)


def _key(labels: dict[str, str] | None) -> LabelKey:
    return tuple(sorted((labels or {}).items()))


def _fmt_labels(key: LabelKey, extra: Sequence[tuple[str, str]] = ()) -> str:
    items = list(key) + list(extra)
    if not items:
        return ""
    esc = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in items)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(items, esc, strict=True)) + "}"


def _fmt_value(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, v)] += 1
        self.total += v
        self.n += 1


@dataclass
class _Family:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    buckets: tuple[float, ...] = ()
    values: dict[LabelKey, float] = field(default_factory=dict)
    histograms: dict[LabelKey, _Histogram] = field(default_factory=dict)
    callbacks: dict[LabelKey, Callable[[], float]] = field(default_factory=dict)


class MetricsRegistry:
    """Thread-safe named metric families; names follow Prometheus conventions (`shelfwatch_*`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}
        self.started = time.time()

    def _family(self, name: str, kind: str, help_text: str, buckets: tuple[float, ...] = ()) -> _Family:
        fam = self._families.get(name)
        if fam is None:
            fam = _Family(name, kind, help_text, buckets)
            self._families[name] = fam
        elif fam.kind != kind:
            raise ValueError(f"metric {name} is a {fam.kind}, not a {kind}")
        return fam

    def inc(self, name: str, help_text: str, labels: dict[str, str] | None = None, amount: float = 1.0) -> None:
        """Add to a counter."""
        with self._lock:
            fam = self._family(name, "counter", help_text)
            k = _key(labels)
            fam.values[k] = fam.values.get(k, 0.0) + amount

    def set(self, name: str, help_text: str, value: float, labels: dict[str, str] | None = None) -> None:
        """Set a gauge."""
        with self._lock:
            self._family(name, "gauge", help_text).values[_key(labels)] = float(value)

    def remove(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Forget one labelled series (e.g. the previous model's info)."""
        with self._lock:
            fam = self._families.get(name)
            if fam is not None:
                fam.values.pop(_key(labels), None)

    def gauge_callback(
        self, name: str, help_text: str, read: Callable[[], float], labels: dict[str, str] | None = None
    ) -> None:
        """A gauge read at scrape time (outbox depth, uptime)."""
        with self._lock:
            self._family(name, "gauge", help_text).callbacks[_key(labels)] = read

    def observe(
        self,
        name: str,
        help_text: str,
        value: float,
        labels: dict[str, str] | None = None,
        buckets: tuple[float, ...] = INFERENCE_MS_BUCKETS,
    ) -> None:
        """Record one histogram observation."""
        with self._lock:
            fam = self._family(name, "histogram", help_text, buckets)
            k = _key(labels)
            hist = fam.histograms.get(k)
            if hist is None:
                hist = fam.histograms[k] = _Histogram(fam.buckets)
            hist.observe(value)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """Current value of a counter or gauge series (None when never set)."""
        with self._lock:
            fam = self._families.get(name)
            if fam is None:
                return None
            k = _key(labels)
            if k in fam.callbacks:
                return float(fam.callbacks[k]())
            return fam.values.get(k)

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        lines: list[str] = []
        with self._lock:
            families = list(self._families.values())
            for fam in families:
                lines.append(f"# HELP {fam.name} {fam.help}")
                lines.append(f"# TYPE {fam.name} {fam.kind}")
                if fam.kind == "histogram":
                    for k, h in sorted(fam.histograms.items()):
                        cumulative = 0
                        for bound, count in zip([*fam.buckets, math.inf], h.counts, strict=True):
                            cumulative += count
                            le = _fmt_value(bound)
                            lines.append(f"{fam.name}_bucket{_fmt_labels(k, [('le', le)])} {cumulative}")
                        lines.append(f"{fam.name}_sum{_fmt_labels(k)} {_fmt_value(h.total)}")
                        lines.append(f"{fam.name}_count{_fmt_labels(k)} {h.n}")
                    continue
                series = dict(fam.values)
                for k, read in fam.callbacks.items():
                    try:
                        series[k] = float(read())
                    except Exception as err:  # a scrape must not fail because one reading did
                        log.debug("metric %s could not be read: %s", fam.name, err)
                        continue
                for k, v in sorted(series.items()):
                    lines.append(f"{fam.name}{_fmt_labels(k)} {_fmt_value(v)}")
        return "\n".join(lines) + "\n"


class RateMeter:
    """Events per second over a sliding window (capture fps, evaluated fps)."""

    def __init__(self, window_seconds: float = 5.0) -> None:
        self.window = window_seconds
        self._samples: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def add(self, count: float = 1.0, now: float | None = None) -> None:
        """Record `count` occurrences now."""
        t = time.monotonic() if now is None else now
        with self._lock:
            self._samples.append((t, count))
            self._trim(t)

    def rate(self, now: float | None = None) -> float:
        """Occurrences per second within the window."""
        t = time.monotonic() if now is None else now
        with self._lock:
            self._trim(t)
            if len(self._samples) < 2:
                return 0.0
            span = max(t - self._samples[0][0], 1e-6)
            return sum(c for _, c in list(self._samples)[1:]) / span

    def _trim(self, now: float) -> None:
        while self._samples and now - self._samples[0][0] > self.window:
            self._samples.popleft()
