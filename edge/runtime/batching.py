"""Batched inference: the requests of several callers (cameras, their zones, skills) in one engine call.

`BatchingEngine` wraps an engine and is one itself (same `infer`, names, shapes, precision), so the model
wrappers, the pipelines and the skills that call models through the model slot batch without knowing it. It is a
small inference service: `submit(inputs)` queues a request (a tensor with a batch dimension: a frame, or a
camera's zone crops) and returns a `concurrent.futures.Future`; `infer(inputs)` is `submit(inputs).result()`.
One worker thread takes the queued requests, concatenates them along the batch axis (the exported models take a
dynamic batch), runs ONE engine call and hands every caller its rows.

When does a batch leave? As soon as the engine is free and no caller it expects is missing, bounded by the
latency budget (`budget_ms`, counted from the oldest queued request):

- A caller is one thread (a camera's pipeline thread). For each the service keeps the interval between its
  requests; it waits for a caller only when that caller's next request is predicted before the budget ends, and
  never for one that is overdue by more than half its interval. So unpaced cameras that deliver in step share a
  call, a paced camera (next frame in 500 ms) is never waited for, and a camera whose frames stop holds the
  others once, by at most its own interval's slack: never for the whole budget, never for good.
- A request never waits for another while the engine is busy: what queues meanwhile goes in the next call.
- A request that would leave alone at once anyway (the engine free, nothing queued, and merging off or no other
  caller active: a lone camera's frames) runs on its caller's thread in `infer`, without the hand-over to the
  worker thread and back (two thread wake-ups; ~1 ms a frame on the loaded two-core VM).
- Lanes: an engine that offers concurrent one-thread calls (`lanes` >= 2 and `infer_lane`: ONNX Runtime or
  OpenVINO with two or more threads, edge.runtime.engines) gets up to `lanes` calls at once, one worker thread
  each, when several callers' requests queue: each free lane takes the oldest request (merging only what the free
  lanes cannot take one by one), and nobody waits for a missing caller while a lane is free, since its request can
  start on its own lane when it comes: a request that finds every worker in a call and a lane free gets a worker
  of its own at once (two cameras out of step run side by side, not one lane at a time). A call runs on all of
  the engine's threads (`infer`) only when no other caller is active (none asked within ALONE_SECONDS or twice
  its own interval), as does a lone caller's request on its own thread; while two or more cameras send, every
  call takes one lane, so none waits for an all-thread call where a lane would have been free for it. Two
  one-thread calls side by side do ~30% more than one two-thread call on the two-core VM (docs/BENCHMARKS.md,
  issue 15).
  `set_lanes(1)` turns them off (`shelfwatch bench --lanes off`).
- At most `max_rows` rows per call (and no more than the wrapped engine's own `max_rows`, if it has one: OpenVINO
  runs a larger batch in slices); a larger request runs alone. A model with a fixed batch size (the contract
  says dynamic; some converted models are not) is never merged.

Does merging pay? Not always: on a small CPU a call of 16 rows can cost as much per row as four calls of 4 (ONNX
Runtime and OpenVINO on the two-core development VM: docs/BENCHMARKS.md), and then merging only makes each caller
wait for the others' rows. So by default (`adaptive=True`) a `MergePolicy` measures the engine time per row of
single-request calls and of merged calls (moving averages) and merges only while merged calls are measured
cheaper per row (by `MERGE_GAIN`); otherwise requests run one by one in arrival order, waiting for nobody. It
starts by merging, and refreshes the estimate it is not using with one probe call every `PROBE_EVERY` calls, so
a change of load or engine is noticed. `adaptive=False` always merges (the behaviour above, unconditionally).
With lanes, a call's cost is counted in core-ms (its time x the lanes it held), so one-thread and all-thread
calls compare by what they cost the CPU.

Results equal one-by-one inference within float tolerance (tests/runtime/test_batching.py, both engines). An
engine error fails every request of that call with the same error. The worker exits after `idle_seconds`
without requests and starts again on the next one, so an engine replaced by a hot swap leaves no thread behind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.errors import EngineError
from edge.runtime.engines import Engine

log = logging.getLogger(__name__)

DEFAULT_BUDGET_MS = 8.0
DEFAULT_MAX_ROWS = 32
_CLIENT_FORGET_SECONDS = 60.0
MERGE_GAIN = 0.05  # merged calls must be at least this much cheaper per row than single ones to be used
MIN_SAMPLES = 4  # calls of each kind measured before the policy compares them
PROBE_EVERY = 32  # calls between two probes of the kind not in use
_EMA = 0.2
ALONE_SECONDS = 1.0  # a caller runs its request on its own thread only when no other asked for this long


class MergePolicy:
    """Whether merging requests into one engine call pays: engine ms per row of single-request and merged calls.

    `merge()` says whether the next call may merge; `probe_single()` whether it should run one request alone to
    measure singles; `record()` takes every call's requests, rows and engine time.
    """

    def __init__(self) -> None:
        self.single_row_ms: float | None = None
        self.merged_row_ms: float | None = None
        self.singles = 0
        self.merges = 0
        self._since_single = 0
        self._since_merged = 0

    def record(self, requests: int, rows: int, ms: float) -> None:
        """One engine call: how many requests it merged, its rows, its engine time."""
        per_row = ms / max(1, rows)
        if requests > 1:
            self.merges += 1
            self._since_merged = 0
            self._since_single += 1
            self.merged_row_ms = per_row if self.merged_row_ms is None else _ema(self.merged_row_ms, per_row)
        else:
            self.singles += 1
            self._since_single = 0
            self._since_merged += 1
            self.single_row_ms = per_row if self.single_row_ms is None else _ema(self.single_row_ms, per_row)

    @property
    def pays(self) -> bool:
        """Merged calls are measured cheaper per row (True until both kinds have MIN_SAMPLES calls)."""
        if self.merges < MIN_SAMPLES or self.singles < MIN_SAMPLES:
            return True
        assert self.merged_row_ms is not None and self.single_row_ms is not None
        return self.merged_row_ms <= (1.0 - MERGE_GAIN) * self.single_row_ms

    def merge(self) -> bool:
        """Whether the next call may merge requests (and wait for expected callers)."""
        if self.merges < MIN_SAMPLES:
            return True  # learn what a merged call costs first
        if self.singles < MIN_SAMPLES:
            return False  # then what single calls cost
        if self.pays:
            return self._since_single < PROBE_EVERY  # merging: one single call now and then keeps its estimate fresh
        return self._since_merged >= PROBE_EVERY  # not merging: a merged probe now and then

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "merging": self.pays,
            "single_row_ms": None if self.single_row_ms is None else round(self.single_row_ms, 3),
            "merged_row_ms": None if self.merged_row_ms is None else round(self.merged_row_ms, 3),
            "single_calls": self.singles,
            "merged_calls": self.merges,
        }


def _ema(old: float, new: float) -> float:
    return (1.0 - _EMA) * old + _EMA * new


@dataclass
class _Request:
    inputs: dict[str, np.ndarray]
    rows: int
    client: int
    submitted: float
    future: Future[dict[str, np.ndarray]]
    key: tuple[Any, ...]


@dataclass
class _Client:
    last: float
    interval: float | None = None


@dataclass
class BatchStats:
    """What the service did: engine calls, requests and rows merged into them, and how calls left."""

    calls: int = 0
    requests: int = 0
    rows: int = 0
    largest_call: int = 0  # most requests merged into one call
    budget_expired: int = 0  # calls that left when the budget ran out with an expected caller still missing
    inline: int = 0  # calls run on the caller's own thread (infer: engine free, nobody to merge with)
    lane_calls: int = 0  # calls run on one lane (a one-thread call beside others: `lanes`)
    most_lanes: int = 0  # most one-thread calls that ran at once
    call_ms: deque[float] = field(default_factory=lambda: deque(maxlen=4096))  # engine time of recent calls
    call_rows: deque[int] = field(default_factory=lambda: deque(maxlen=4096))

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "calls": self.calls,
            "requests": self.requests,
            "rows": self.rows,
            "largest_call": self.largest_call,
            "budget_expired": self.budget_expired,
            "inline": self.inline,
            "lane_calls": self.lane_calls,
            "most_lanes": self.most_lanes,
            "requests_per_call": round(self.requests / self.calls, 3) if self.calls else 0.0,
        }


class BatchingEngine:
    """An engine that merges concurrent callers' requests into one call of the engine it wraps (module docstring)."""

    def __init__(
        self,
        engine: Engine,
        budget_ms: float = DEFAULT_BUDGET_MS,
        max_rows: int = DEFAULT_MAX_ROWS,
        idle_seconds: float = 2.0,
        adaptive: bool = True,
    ) -> None:
        self.inner = engine
        self.name = engine.name
        self.precision = engine.precision
        self.requested_precision = getattr(engine, "requested_precision", engine.precision)
        self.input_names = list(engine.input_names)
        self.output_names = list(engine.output_names)
        shapes = getattr(engine, "input_shapes", None)
        if isinstance(shapes, dict):
            self.input_shapes = dict(shapes)
        self.model_path = getattr(engine, "model_path", None)
        self.threads = getattr(engine, "threads", None)
        self.budget_s = max(0.0, budget_ms) / 1000.0
        # An engine that runs at most N rows per call (OpenVINO's max_rows) would only slice a larger merge.
        inner_rows = getattr(engine, "max_rows", None)
        self.max_rows = max(1, min(max_rows, inner_rows) if isinstance(inner_rows, int) else max_rows)
        self.idle_seconds = idle_seconds
        # A fixed batch dimension cannot take merged requests.
        self.mergeable = not any(s and s[0] is not None for s in (shapes or {}).values())
        self.stats = BatchStats()
        self.policy: MergePolicy | None = MergePolicy() if adaptive and self.mergeable else None
        self.merge_off = False  # set_merging("off"): one request per call, as without the service
        # Concurrent one-thread calls the engine offers (module docstring, "Lanes"); 1 = one call at a time.
        self.engine_lanes = _engine_lanes(engine)
        self.lanes = self.engine_lanes
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._clients: dict[int, _Client] = {}
        self._workers = 0  # worker threads running (at most one per lane)
        self._busy = 0  # workers running a call now (the others wait for requests)
        self._gathering = False  # a worker is choosing the next call's requests (one at a time)
        self._held = False
        self._occupied = 0  # lanes in use: an all-thread call (the worker's, or a caller's own: infer) takes all
        self._narrow_running = 0  # one-thread calls running now

    # -- the service -----------------------------------------------------------------------------------------

    def submit(self, inputs: dict[str, np.ndarray]) -> Future[dict[str, np.ndarray]]:
        """Queue one request (every input with the same batch size on axis 0); its future gets its output rows."""
        arrays = {name: np.asarray(value) for name, value in inputs.items()}
        rows = _batch_rows(arrays)
        now = time.monotonic()
        client = threading.get_ident()
        with self._cond:
            self._note_client(client, now)
            return self._enqueue(arrays, rows, client, now)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one request (the Engine interface) and wait for its rows: on the caller's own thread when the
        engine is free, nothing is queued and no other caller is expected within the budget (what the worker
        would do with it, without handing it over and back: a lone camera's every frame); else through the
        service."""
        arrays = {name: np.asarray(value) for name, value in inputs.items()}
        rows = _batch_rows(arrays)
        now = time.monotonic()
        client = threading.get_ident()
        with self._cond:
            self._note_client(client, now)
            alone = self._may_run_alone(client, now)
            if not alone:
                future = self._enqueue(arrays, rows, client, now)
            else:
                width = self.lanes
                self._occupied = width
        if not alone:
            return future.result()
        t0 = time.perf_counter()
        try:
            outputs = self.inner.infer(arrays)
        except BaseException:
            with self._cond:
                self._occupied -= width
                self._cond.notify_all()
            raise
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        with self._cond:
            self._occupied -= width
            self._record(1, rows, elapsed_ms, width)
            self.stats.inline += 1
            self._cond.notify_all()
        return outputs

    def _note_client(self, client: int, now: float) -> None:
        """Under the lock: one more request of this caller (the interval between its requests)."""
        seen = self._clients.get(client)
        if seen is None:
            self._clients[client] = _Client(now)
        else:
            gap = now - seen.last
            seen.interval = gap if seen.interval is None else 0.7 * seen.interval + 0.3 * gap
            seen.last = now

    def _enqueue(
        self, arrays: dict[str, np.ndarray], rows: int, client: int, now: float
    ) -> Future[dict[str, np.ndarray]]:
        """Under the lock: queue a request for the worker (started if it is not running)."""
        key = tuple((name, a.dtype.str, a.shape[1:]) for name, a in sorted(arrays.items()))
        future: Future[dict[str, np.ndarray]] = Future()
        self._pending.append(_Request(arrays, rows, client, now, future, key))
        if self._workers == 0 or (
            self._workers == self._busy and self._occupied < self.lanes and self._workers < self.lanes
        ):
            # No worker free to take it while a lane is: another one. Without this a second camera's request
            # waited for the first camera's one-lane call to end (two cameras ran one lane at a time).
            self._start_worker()
        self._cond.notify_all()
        return future

    def _start_worker(self) -> None:
        """Under the lock: one more worker thread (the first, or another for a free lane)."""
        self._workers += 1
        name = f"batching-{self.name}" if self._workers == 1 else f"batching-{self.name}-{self._workers}"
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _may_run_alone(self, client: int, now: float) -> bool:
        """Under the lock: whether this caller's request would leave alone at once anyway: the engine free,
        nothing queued or held, and nothing to merge with: merging off, or no other caller active (none asked
        within the last ALONE_SECONDS nor within twice its own interval). Not merely "none expected within the
        budget": callers in step that took turns on their own threads would drift apart and never merge again."""
        if self._occupied or self._pending or self._held:
            return False
        if self.lanes < 2 and (not self._may_merge() or self.budget_s <= 0):
            return True
        return not self._others_active(now, {client})

    def set_merging(self, mode: str) -> None:
        """Merging: "adaptive" (the MergePolicy decides; the default), "always" (merge whatever queues together,
        paying or not) or "off" (never merge: every request is its own engine call, in arrival order; `shelfwatch
        bench --merge` compares the three)."""
        if mode not in ("adaptive", "always", "off"):
            raise ValueError(f"merging is adaptive, always or off, not {mode!r}")
        with self._cond:
            self.merge_off = mode == "off"
            if mode != "adaptive":
                self.policy = None  # always: merge regardless; off: nothing to measure
            elif mode == "adaptive" and self.policy is None and self.mergeable:
                self.policy = MergePolicy()

    def set_lanes(self, lanes: int | None) -> None:
        """Concurrent one-thread calls: at most `lanes` (clipped to what the engine offers; None = all of them,
        1 = off: one call at a time on all of the engine's threads). `shelfwatch bench --lanes` compares them."""
        with self._cond:
            self.lanes = self.engine_lanes if lanes is None else max(1, min(int(lanes), self.engine_lanes))
            self._cond.notify_all()

    def _may_merge(self) -> bool:
        """Under the lock: whether the next call may merge requests (and wait for expected callers)."""
        if not self.mergeable or self.merge_off:
            return False
        return self.policy is None or self.policy.merge()

    def queued(self) -> int:
        """Requests waiting for an engine call."""
        with self._cond:
            return len(self._pending)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Queue requests without running them while inside; on leaving, what queued goes out together (with
        lanes: shared among the free lanes, a call each)."""
        with self._cond:
            self._held = True
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()

    # -- the worker ------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            with self._cond:
                idle_until = time.monotonic() + self.idle_seconds
                # Nothing to run, held, no free lane (a call on all threads, a caller's own included), or another
                # worker choosing its call.
                while not self._pending or self._held or self._occupied >= self.lanes or self._gathering:
                    remaining = idle_until - time.monotonic()
                    if remaining <= 0 and not self._held and not self._pending:
                        self._workers -= 1
                        return
                    self._cond.wait(max(remaining, 0.05) if self._held or self._pending else remaining)
                self._gathering = True
                try:
                    batch, width = self._gather_lane() if self.lanes > 1 else (self._gather(), 1)
                finally:
                    self._gathering = False
                self._occupied += width
                self._busy += 1
                narrow = self.lanes > 1 and width == 1
                if narrow:
                    self._narrow_running += 1
                    self.stats.most_lanes = max(self.stats.most_lanes, self._narrow_running)
                if self._pending and self._occupied < self.lanes and self._workers < self.lanes:
                    self._start_worker()  # another lane is free and requests wait: its own worker
                self._cond.notify_all()
            try:
                self._run(batch, width, narrow)
            finally:
                with self._cond:
                    self._occupied -= width
                    self._busy -= 1
                    if narrow:
                        self._narrow_running -= 1
                    self._cond.notify_all()

    def _missing(self, now: float) -> tuple[bool, float]:
        """Whether an expected caller has not queued yet, and until when it is still worth waiting for it."""
        queued = {r.client for r in self._pending}
        until = 0.0
        for client, seen in list(self._clients.items()):
            if now - seen.last > _CLIENT_FORGET_SECONDS:
                del self._clients[client]
                continue
            if client in queued or seen.interval is None:
                continue
            due = seen.last + seen.interval
            latest = due + 0.5 * seen.interval
            if now <= latest:
                until = max(until, latest)
        return until > 0.0, until

    def _gather(self) -> list[_Request]:
        """Under the lock: wait (within the budget) for expected callers, then take the requests of one call."""
        merge = self._may_merge()
        if merge and self.budget_s > 0:
            deadline = self._pending[0].submitted + self.budget_s
            while True:
                now = time.monotonic()
                if sum(r.rows for r in self._pending) >= self.max_rows:
                    break
                missing, until = self._missing(now)
                if not missing:
                    break
                if now >= deadline:
                    self.stats.budget_expired += 1
                    break
                # wake at the budget's end or when the missing caller is given up, whichever is first
                self._cond.wait(min(deadline, until) - now + 1e-4)
        first = self._pending.pop(0)
        batch = [first]
        if merge:
            rows = first.rows
            keep: list[_Request] = []
            for r in self._pending:
                if r.key == first.key and rows + r.rows <= self.max_rows:
                    batch.append(r)
                    rows += r.rows
                else:
                    keep.append(r)
            self._pending = keep
        return batch

    def _gather_lane(self) -> tuple[list[_Request], int]:
        """Under the lock, with lanes: the requests of the next call and the lanes it takes (module docstring).

        Nobody is waited for: a missing caller's request starts on a free lane when it comes. The call takes
        the oldest request, and others only when merging is allowed and more requests wait than free lanes (an
        equal share of them each). It runs on all of the engine's threads when the engine is idle, nothing else
        waits and no other caller is active (one all-thread call is then the shorter wait), else on one lane.
        (Until session 11: unless another caller was due before the call would end, a guess from its interval
        that missed often enough with two cameras that 20-40% of their calls ran on all threads, the other
        camera's request waiting for each: 2-10% fewer frames/s, docs/BENCHMARKS.md issue 15.)"""
        free = self.lanes - self._occupied
        first = self._pending.pop(0)
        batch = [first]
        if self._may_merge() and len(self._pending) + 1 > free:
            share = -(-(len(self._pending) + 1) // free)  # ceil: this call's part of what waits
            rows = first.rows
            keep: list[_Request] = []
            for r in self._pending:
                if len(batch) < share and r.key == first.key and rows + r.rows <= self.max_rows:
                    batch.append(r)
                    rows += r.rows
                else:
                    keep.append(r)
            self._pending = keep
        if (
            self._occupied == 0
            and not self._pending
            and not self._others_active(time.monotonic(), {r.client for r in batch})
        ):
            return batch, self.lanes
        return batch, 1

    def _others_active(self, now: float, exclude: set[int]) -> bool:
        """Under the lock: whether a caller not in `exclude` asked within the last ALONE_SECONDS or within twice
        its own interval (it is still sending: its next request is coming)."""
        return any(
            now - seen.last <= max(ALONE_SECONDS, 2.0 * (seen.interval or 0.0))
            for client, seen in self._clients.items()
            if client not in exclude
        )

    def _run(self, batch: list[_Request], width: int = 1, narrow: bool = False) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        if len(live) == 1:
            inputs = live[0].inputs
        else:
            inputs = {name: np.concatenate([r.inputs[name] for r in live]) for name in live[0].inputs}
        total = sum(r.rows for r in live)
        t0 = time.perf_counter()
        try:
            outputs = self.inner.infer_lane(inputs) if narrow else self.inner.infer(inputs)  # type: ignore[attr-defined]
        except BaseException as err:  # every caller of this call gets the engine's error
            for r in live:
                r.future.set_exception(err)
            return
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        with self._cond:
            if narrow:
                self.stats.lane_calls += 1
            self._record(len(live), total, elapsed_ms, width)
        offset = 0
        for r in live:
            part = {
                name: (value[offset : offset + r.rows] if value.ndim and value.shape[0] == total else value)
                for name, value in outputs.items()
            }
            offset += r.rows
            r.future.set_result(part)

    def _record(self, requests: int, rows: int, elapsed_ms: float, width: int = 1) -> None:
        """Under the lock: count one engine call (stats, the merge policy's measurements: core-ms, its time x the
        `width` lanes it held)."""
        stats = self.stats
        stats.calls += 1
        stats.requests += requests
        stats.rows += rows
        stats.largest_call = max(stats.largest_call, requests)
        stats.call_ms.append(elapsed_ms)
        stats.call_rows.append(rows)
        if self.policy is not None:
            self.policy.record(requests, rows, elapsed_ms * width)

    def __repr__(self) -> str:
        return f"BatchingEngine({self.inner!r}, budget_ms={self.budget_s * 1000:.1f}, max_rows={self.max_rows})"


def _engine_lanes(engine: Engine) -> int:
    """How many concurrent one-thread calls (`infer_lane`) the engine offers; 1 = none."""
    lanes = getattr(engine, "lanes", 1)
    if not callable(getattr(engine, "infer_lane", None)) or not isinstance(lanes, int):
        return 1
    return max(1, lanes)


def _batch_rows(arrays: dict[str, np.ndarray]) -> int:
    sizes = {a.shape[0] if a.ndim else 1 for a in arrays.values()}
    if len(sizes) != 1:
        raise EngineError(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()
