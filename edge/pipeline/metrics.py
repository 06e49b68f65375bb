"""The device's metrics on prometheus_client: counters, gauges (set, or read from a callback at scrape time) and
histograms, each with optional labels, in one CollectorRegistry per device.

`MetricsRegistry` keeps the small call interface the pipeline uses (`inc`, `set`, `gauge_callback`, `observe`,
`remove`, `value`) and creates each family on first use with the label names of that first call; `/metrics`
serves `render()`, prometheus_client's text exposition (format 0.0.4). Counter names end in `_total`, as
prometheus_client and the exposition format expect; `_created` series are not exported.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

INFERENCE_MS_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500, 10000)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A `_created` timestamp per counter and histogram doubles the exposition and no dashboard of ours reads it.
prometheus_client.disable_created_metrics()

_KINDS: dict[str, type[Any]] = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}


@dataclass
class _Family:
    kind: str
    metric: Any
    labelnames: tuple[str, ...]


class MetricsRegistry:
    """Thread-safe named metric families; names follow Prometheus conventions (`shelfwatch_*`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        self._families: dict[str, _Family] = {}
        self.started = time.time()

    def _family(
        self, name: str, kind: str, help_text: str, labels: dict[str, str] | None, buckets: tuple[float, ...] = ()
    ) -> _Family:
        labelnames = tuple(sorted(labels or {}))
        with self._lock:
            fam = self._families.get(name)
            if fam is None:
                if kind == "counter" and not name.endswith("_total"):
                    raise ValueError(f"counter {name} must be named *_total")
                extra: dict[str, Any] = {"buckets": buckets} if kind == "histogram" else {}
                base = name[: -len("_total")] if kind == "counter" else name
                metric = _KINDS[kind](base, help_text, labelnames=labelnames, registry=self.registry, **extra)
                fam = self._families[name] = _Family(kind, metric, labelnames)
            elif fam.kind != kind:
                raise ValueError(f"metric {name} is a {fam.kind}, not a {kind}")
            elif fam.labelnames != labelnames:
                raise ValueError(f"metric {name} has labels {fam.labelnames}, not {labelnames}")
            return fam

    @staticmethod
    def _series(fam: _Family, labels: dict[str, str] | None) -> Any:
        return fam.metric.labels(**(labels or {})) if fam.labelnames else fam.metric

    def inc(self, name: str, help_text: str, labels: dict[str, str] | None = None, amount: float = 1.0) -> None:
        """Add to a counter (amount 0 creates the series at 0)."""
        self._series(self._family(name, "counter", help_text, labels), labels).inc(amount)

    def set(self, name: str, help_text: str, value: float, labels: dict[str, str] | None = None) -> None:
        """Set a gauge."""
        self._series(self._family(name, "gauge", help_text, labels), labels).set(float(value))

    def remove(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Forget one labelled series (e.g. the previous model's info)."""
        fam = self._families.get(name)
        if fam is None or not fam.labelnames:
            return
        try:
            fam.metric.remove(*[(labels or {}).get(n, "") for n in fam.labelnames])
        except KeyError:
            pass

    def gauge_callback(
        self, name: str, help_text: str, read: Callable[[], float], labels: dict[str, str] | None = None
    ) -> None:
        """A gauge read at scrape time (outbox depth, uptime); a failing reading shows NaN instead of failing."""

        def safe() -> float:
            try:
                return float(read())
            except Exception as err:  # a scrape must not fail because one reading did
                log.debug("metric %s could not be read: %s", name, err)
                return math.nan

        self._series(self._family(name, "gauge", help_text, labels), labels).set_function(safe)

    def observe(
        self,
        name: str,
        help_text: str,
        value: float,
        labels: dict[str, str] | None = None,
        buckets: tuple[float, ...] = INFERENCE_MS_BUCKETS,
    ) -> None:
        """Record one histogram observation."""
        self._series(self._family(name, "histogram", help_text, labels, buckets), labels).observe(value)

    def has(self, name: str) -> bool:
        """Whether a family of this name exists."""
        return name in self._families

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """Current value of a counter or gauge series (None when never set)."""
        if name not in self._families:
            return None
        value = self.registry.get_sample_value(name, labels or {})
        return None if value is None else float(value)

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        return generate_latest(self.registry).decode("utf-8")


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
