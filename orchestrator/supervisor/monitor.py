"""Self-monitoring of the load generator: event-loop lag, process CPU, GC pauses.

A load generator that is itself overloaded produces latencies that describe the generator,
not the target. Two signals catch that:

* **event-loop lag** — :class:`LoopMonitor` runs a task that wakes on absolute deadlines
  ``t0 + n * interval_s`` and records ``lateness = actual - planned`` of every wake-up. A
  task that hogs the loop (CPU-bound work, a blocking call) delays every other task by the
  same amount, so this lateness is what any audio pacer or timer saw at that moment.
  If the loop stalls for several intervals, the ticks that *should* have happened during
  the stall are recorded too, each with the lateness it would have had (``actual - its
  planned time``), like HdrHistogram's ``recordValueWithExpectedInterval``: one long stall
  weighs in the percentiles as much as it hurt, instead of as a single sample (coordinated
  omission again). The next deadline is the first planned tick after the wake-up.
* **process CPU** — :class:`CpuSampler`: ``time.process_time`` deltas over wall-clock deltas,
  as a percentage of one core (a single trio thread cannot use more than ~100%).
* **garbage-collection pauses** — :class:`GcPauses` times every collection of CPython's
  cyclic collector (``gc.callbacks``) while the monitor runs: a pause stops this thread,
  so it is loop lag with a known cause, reported apart (count, p99, max, total, full
  collections, objects freed).

Long runs must also *collect* (:mod:`.gc_regime`), and the figures measured here decide
whether a run was valid (:mod:`.validity`).

Lag samples go into :class:`LagHistogram`: fixed memory (log-linear buckets with 128
sub-buckets per power of two over microseconds, < 0.8% relative bucket width, up to ~12 days)
for the whole run, exact count and max; percentiles are reported as the bucket's upper
bound capped at the exact max, so they never under-state the lag.
"""

from __future__ import annotations

import gc
import math
import numbers
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import attrs
import numpy as np
import trio

__all__ = [
    "CpuSampler",
    "GcPauses",
    "LagHistogram",
    "LagRecorder",
    "LoopMonitor",
    "MonitorSnapshot",
]

_SUB_BITS = 7
_SUB = 1 << _SUB_BITS  # 128 sub-buckets per power of two
_MAX_US = (1 << 40) - 1  # ~12.7 days; larger lags land in the last bucket (max stays exact)
_N_BUCKETS = ((_MAX_US.bit_length() - (_SUB_BITS + 1)) + 1) * _SUB + _SUB


def _bucket(us: int) -> int:
    e = max(0, us.bit_length() - (_SUB_BITS + 1))
    return e * _SUB + (us >> e)


def _bucket_upper(index: int) -> int:
    e = 0 if index < 2 * _SUB else index // _SUB - 1
    lower = (index - e * _SUB) << e
    return lower + (1 << e) - 1


@attrs.define(eq=False)
class LagHistogram:
    """Fixed-memory histogram of non-negative durations (seconds in, milliseconds out)."""

    _counts: np.ndarray = attrs.field(init=False, factory=lambda: np.zeros(_N_BUCKETS, np.int64))
    count: int = attrs.field(default=0, init=False)
    max_s: float = attrs.field(default=0.0, init=False)

    def record(self, seconds: float, n: int = 1) -> None:
        """Add ``n`` samples of ``seconds`` (negative values count as 0)."""
        seconds = max(0.0, seconds)
        us = min(_MAX_US, round(seconds * 1e6))
        self._counts[_bucket(us)] += n
        self.count += n
        self.max_s = max(self.max_s, seconds)

    def percentile_ms(self, q: float) -> float | None:
        """Nearest-rank ``q``-th percentile (0 < q <= 100) in ms, ``None`` when empty.

        The value is the upper edge of the bucket holding that rank, capped at the exact max
        (so p100 is the exact max, and no percentile is under-stated by bucketing)."""
        if not 0.0 < q <= 100.0:
            raise ValueError(f"LagHistogram.percentile_ms: q must be in (0, 100], got {q!r}")
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.count))
        index = int(np.searchsorted(np.cumsum(self._counts), rank))
        return min(_bucket_upper(index) / 1e3, self.max_s * 1e3)

    @property
    def max_ms(self) -> float | None:
        """Exact maximum in ms (``None`` when empty)."""
        return None if self.count == 0 else self.max_s * 1e3


@attrs.define(eq=False)
class LagRecorder:
    """The pure lag bookkeeping of :class:`LoopMonitor` (no clock, no trio).

    :meth:`observe` takes a tick's planned time and the actual wake-up time, records the
    lateness of that tick and of every later tick the stall swallowed, and returns the next
    planned tick. ``recent_s`` is the window of :meth:`recent_max_ms`.
    """

    interval_s: float = 0.1
    recent_s: float = 5.0
    max_backfill: int = 100_000
    histogram: LagHistogram = attrs.field(factory=LagHistogram, init=False)
    _recent: deque[tuple[float, float]] = attrs.field(factory=deque, init=False)

    def __attrs_post_init__(self) -> None:
        for name in ("interval_s", "recent_s"):
            value: float = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
                raise ValueError(f"LagRecorder.{name} must be > 0, got {value!r}")

    def observe(self, planned: float, actual: float) -> float:
        """Record a tick planned at ``planned`` that ran at ``actual``; return the next
        planned tick (the first ``planned + k * interval_s`` after ``actual``, k >= 1).

        Swallowed ticks (planned at or before ``actual``) are recorded with lateness
        ``actual - their planned time``, at most ``max_backfill`` of them (a longer stall,
        e.g. a suspended laptop, still shows up in the max and the largest samples)."""
        lag = actual - planned
        self.histogram.record(lag)
        self._push_recent(actual, max(0.0, lag))
        missed = 0 if lag < self.interval_s else int(lag // self.interval_s)
        for k in range(1, min(missed, self.max_backfill) + 1):
            self.histogram.record(lag - k * self.interval_s)
        next_planned = planned + (missed + 1) * self.interval_s
        while next_planned <= actual:  # float rounding of lag // interval
            next_planned += self.interval_s
        return next_planned

    def _push_recent(self, at: float, lag: float) -> None:
        recent = self._recent
        while recent and recent[-1][1] <= lag:
            recent.pop()  # monotonic deque: lags strictly decreasing from the left
        recent.append((at, lag))
        self._prune_recent(at)

    def _prune_recent(self, now: float) -> None:
        horizon = now - self.recent_s
        while self._recent and self._recent[0][0] <= horizon:
            self._recent.popleft()

    def recent_max_ms(self, now: float) -> float:
        """Max lag (ms) of ticks that ran in ``(now - recent_s, now]`` (0 if none)."""
        self._prune_recent(now)
        return self._recent[0][1] * 1e3 if self._recent else 0.0


@attrs.define(eq=False)
class CpuSampler:
    """Process CPU usage as % of one core between consecutive :meth:`sample` calls.

    Both clocks are injectable for tests; the defaults are real process CPU time and the real
    monotonic wall clock (CPU use is real, so it is not measured on trio's MockClock)."""

    cpu_clock: Callable[[], float] = time.process_time
    wall_clock: Callable[[], float] = time.perf_counter
    last_percent: float | None = attrs.field(default=None, init=False)
    max_percent: float | None = attrs.field(default=None, init=False)
    _first: tuple[float, float] | None = attrs.field(default=None, init=False)
    _prev: tuple[float, float] | None = attrs.field(default=None, init=False)

    def sample(self) -> float | None:
        """Percent of one core used since the previous call (``None`` on the first call or
        when no wall time has passed)."""
        now = (self.cpu_clock(), self.wall_clock())
        prev, self._prev = self._prev, now
        if prev is None:
            self._first = now
            return None
        wall = now[1] - prev[1]
        if wall <= 0:
            return None
        percent = 100.0 * (now[0] - prev[0]) / wall
        self.last_percent = percent
        self.max_percent = percent if self.max_percent is None else max(self.max_percent, percent)
        return percent

    @property
    def mean_percent(self) -> float | None:
        """Average percent of one core from the first to the latest sample."""
        if self._first is None or self._prev is None or self._prev[1] <= self._first[1]:
            return None
        return 100.0 * (self._prev[0] - self._first[0]) / (self._prev[1] - self._first[1])


@attrs.define(eq=False)
class GcPauses:
    """The pauses of CPython's cyclic garbage collector in this process.

    While installed (:meth:`installed`, or :meth:`install` / :meth:`uninstall`) a
    ``gc.callbacks`` hook times every collection from its ``"start"`` to its ``"stop"``
    call on ``clock`` (default ``time.perf_counter``: a pause is real time, whatever clock
    the run uses). Collections started in any thread count: the collector holds the GIL, so
    no other Python code runs during one. The hook costs two clock reads and a histogram
    update per collection; memory is fixed (two :class:`LagHistogram`).
    """

    clock: Callable[[], float] = time.perf_counter
    pauses: LagHistogram = attrs.field(factory=LagHistogram, init=False)
    """Every collection's pause."""
    full_pauses: LagHistogram = attrs.field(factory=LagHistogram, init=False)
    """Pauses of full (generation 2) collections."""
    total_s: float = attrs.field(default=0.0, init=False)
    collected: int = attrs.field(default=0, init=False)
    """Unreachable objects freed."""
    _started_at: float | None = attrs.field(default=None, init=False)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started_at = self.clock()
            return
        started, self._started_at = self._started_at, None
        if started is None:  # installed during a collection (from a finalizer)
            return
        pause = self.clock() - started
        self.pauses.record(pause)
        if info.get("generation") == 2:
            self.full_pauses.record(pause)
        self.total_s += pause
        self.collected += int(info.get("collected", 0))

    def install(self) -> None:
        """Start timing collections (idempotent)."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        """Stop timing collections (idempotent); the figures stay readable."""
        while self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self._started_at = None

    @contextmanager
    def installed(self) -> Iterator[GcPauses]:
        """Time collections for the duration of the block (uninstalled however it ends)."""
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    def figures(self) -> dict[str, Any]:
        """``gc_collections``, ``gc_full_collections``, ``gc_pause_p99_ms``,
        ``gc_pause_max_ms``, ``gc_full_pause_max_ms``, ``gc_pause_total_ms``,
        ``gc_collected`` (pauses in ms, ``None`` when there was none)."""
        return {
            "gc_collections": self.pauses.count,
            "gc_full_collections": self.full_pauses.count,
            "gc_pause_p99_ms": self.pauses.percentile_ms(99),
            "gc_pause_max_ms": self.pauses.max_ms,
            "gc_full_pause_max_ms": self.full_pauses.max_ms,
            "gc_pause_total_ms": self.total_s * 1e3,
            "gc_collected": self.collected,
        }


@attrs.frozen
class MonitorSnapshot:
    """Self-monitoring figures at one moment (ms; ``None`` when nothing measured yet)."""

    samples: int
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    lag_max_ms: float | None
    lag_recent_max_ms: float
    cpu_percent: float | None
    cpu_percent_max: float | None
    cpu_percent_mean: float | None
    gc_collections: int = 0
    gc_full_collections: int = 0
    gc_pause_p99_ms: float | None = None
    gc_pause_max_ms: float | None = None
    gc_full_pause_max_ms: float | None = None
    gc_pause_total_ms: float = 0.0
    gc_collected: int = 0


@attrs.define(eq=False)
class LoopMonitor:
    """Event-loop lag and CPU monitor; start it with ``await nursery.start(monitor.run)``.

    ``clock`` is the time source lag is measured on (default ``trio.current_time``, which
    is the MockClock in tests). Tests may inject another callable on the same timescale, e.g.
    one that adds a simulated stall; the monitor sleeps until each deadline *as read on that
    clock*. ``cpu`` is sampled once per tick (``None`` disables CPU sampling).
    ``gc_pauses`` times the garbage collector's pauses while the monitor runs (``None``:
    not timed).
    """

    interval_s: float = 0.1
    recent_s: float = 5.0
    clock: Callable[[], float] = trio.current_time
    cpu: CpuSampler | None = attrs.field(factory=CpuSampler)
    gc_pauses: GcPauses | None = attrs.field(factory=GcPauses)
    recorder: LagRecorder = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.recorder = LagRecorder(interval_s=self.interval_s, recent_s=self.recent_s)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Measure until cancelled: ``task_status.started()`` once the first deadline
        (``now + interval_s``) is set, then one wake-up per tick.

        Resource handling: its ``gc.callbacks`` hook (``gc_pauses``) is installed while it
        runs and removed however it ends; the recorded figures stay readable
        (:meth:`snapshot`) after it ends. Error handling: none expected; it never returns
        normally. Cancellation: raises ``Cancelled`` at its sleep; a tick is recorded
        entirely or not at all, so a cancelled monitor leaves consistent statistics.
        """
        deadline = self.clock() + self.interval_s
        if self.cpu is not None:
            self.cpu.sample()  # prime: the first interval's CPU is measured from here
        with self.gc_pauses.installed() if self.gc_pauses is not None else nullcontext():
            task_status.started()
            while True:
                # Sleep until `deadline` on self.clock, expressed on trio's clock (the offset
                # is exactly 0 with the default clock under MockClock, ~1 us with a real one).
                await trio.sleep_until(deadline + (trio.current_time() - self.clock()))
                actual = self.clock()
                deadline = self.recorder.observe(deadline, actual)
                if self.cpu is not None:
                    self.cpu.sample()

    def snapshot(self, now: float | None = None) -> MonitorSnapshot:
        """The current figures; ``now`` (default ``clock()``) anchors the recent-max window."""
        hist = self.recorder.histogram
        now = self.clock() if now is None else now
        cpu = self.cpu
        return MonitorSnapshot(
            samples=hist.count,
            lag_p50_ms=hist.percentile_ms(50),
            lag_p99_ms=hist.percentile_ms(99),
            lag_max_ms=hist.max_ms,
            lag_recent_max_ms=self.recorder.recent_max_ms(now),
            cpu_percent=None if cpu is None else cpu.last_percent,
            cpu_percent_max=None if cpu is None else cpu.max_percent,
            cpu_percent_mean=None if cpu is None else cpu.mean_percent,
            **({} if self.gc_pauses is None else self.gc_pauses.figures()),
        )
