"""Self-monitoring of the load generator: event-loop lag, process CPU, run validity.

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

Long runs must also *collect*: :class:`FullCollectionPolicy` decides when a full
(generation 2) collection is due and :class:`FullCollector` runs it on the loop (see
``orchestrator run``'s GC tuning, which turns CPython's own, unpredictable full collections
off and relies on this one).

:func:`judge` turns the lag p99 and the audio pacers' lateness p99 into a run validity
verdict: over the limits (default 50 ms each), the generator was the bottleneck and the
run's latency numbers are not trustworthy. While the run goes,
:meth:`ValidityLimits.judge_live` leaves a figure unjudged until it has
:data:`MIN_LIVE_SAMPLES` samples (early on, a p99 is the max of the start-up stalls).

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
from typing import Any, NamedTuple

import attrs
import numpy as np
import trio

__all__ = [
    "CpuSampler",
    "GC_THRESHOLDS",
    "FullCollectionPolicy",
    "FullCollector",
    "GcPauses",
    "LagHistogram",
    "LagRecorder",
    "LoopMonitor",
    "MIN_LIVE_SAMPLES",
    "MonitorSnapshot",
    "Validity",
    "ValidityLimits",
    "judge",
    "judge_target",
    "merge_validity",
    "tuned_gc",
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


#: ``gc.set_threshold`` during a run: young collections every 700 net allocations (CPython's
#: default), the middle generation every 3 of them, and no automatic full collection (the
#: run's :class:`FullCollector` does them).
GC_THRESHOLDS: tuple[int, int, int] = (700, 3, 1_000_000_000)


@contextmanager
def tuned_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> Iterator[None]:
    """Keep the cyclic garbage collector from stalling the event loop mid-run, and still
    free everything, for the duration of the block; the previous thresholds are restored
    and the frozen objects released (``gc.unfreeze``) however it ends.

    A session's objects (tasks, scopes, channels, its state) live for seconds and form
    cycles, so they outlive the young generations and only a collection of the generation
    they reached frees them. The pause of a collection grows with the number of objects it
    scans, live or dead (~0.5 us each on a real heap): at 20 new sessions/s with 70
    running, measured, a middle generation collected every 10 young ones held seconds of
    sessions and paused 20-40 ms; every 3 young ones it holds well under a second of them
    and pauses ~3 ms (max 9), and young collections ~1.3 ms. CPython's own full
    collections come when its counters say, and with very high thresholds (the earlier
    setting here) almost never: memory then grew ~42 MB/min at 20 sessions/s.

    So: objects alive before the run (modules, numpy, the shared audio) are frozen out of
    collection (``gc.freeze``: never scanned again), the young generations are kept small
    (:data:`GC_THRESHOLDS`), CPython's automatic full collections are turned off, and the
    run's :class:`FullCollector` runs them when :class:`FullCollectionPolicy` says: in
    proportion to the sessions that ended, with at most 1% of the time spent in their
    pauses, at least every 30 s. Measured at 20 sessions/s for 10 min: one every ~10 s,
    mostly 30-50 ms (max ~110 ms); memory growth after the first minute 0.2 MB/min (was
    ~50); loop-lag p99 1.9 ms and pacer p99 4.7 ms, as before. Process-wide: the CLI (and a
    fleet's workers) do it, library users decide for themselves.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


@attrs.define(eq=False)
class FullCollectionPolicy:
    """When a full (generation 2) garbage collection is due. Pure: no clock, no ``gc``;
    times are seconds on any one clock, sessions are counts the caller reads.

    Cyclic garbage that outlived the young generations (in a load run: mostly the object
    graphs of sessions that have ended, promoted while they were alive) is freed only by a
    full collection. Its pause grows with the number of live tracked objects (about 35 ms
    with 70 sessions running, measured), and the event loop stands still meanwhile: every
    timer and audio frame due then is late by up to the pause. Few such pauses do not move
    the p99 of loop lag or pacer lateness; many do. So a full collection is due

    * when ``finished`` sessions since the previous one reached
      ``max(min_finished, per_running * running)``: garbage in proportion to the live
      state a collection has to scan (with ``per_running=2``, about twice as much dead
      session state as live at most), or
    * once ``max_interval_s`` passed (garbage from anything else, and from very long
      sessions, is freed too: this bounds memory),

    but never sooner than ``min_interval_s`` after the previous one, nor sooner than
    ``typical_pause_s() / max_duty``: the loop spends at most ``max_duty`` of its time in
    these pauses (1%: a pause is a few late samples, too few to move a p99; with hundreds
    of sessions running the pauses are longer and so the gaps), unless that would wait
    longer than ``max_interval_s``. The typical pause is the median of the last three, so
    one outlier (the machine was busy elsewhere) does not stretch the next gap, and with it
    the garbage the next collection has to free.

    :meth:`record` marks a collection; until the first one, the interval counts from
    ``last_at`` (construct with the start time, or call :meth:`record` at the start).
    """

    min_interval_s: float = 2.0
    max_interval_s: float = 30.0
    min_finished: int = 100
    per_running: float = 2.0
    max_duty: float = 0.01
    last_at: float = 0.0
    last_finished: int = 0
    _pauses: deque[float] = attrs.field(factory=lambda: deque(maxlen=3), init=False)

    def __attrs_post_init__(self) -> None:
        for name in ("min_interval_s", "max_interval_s", "per_running"):
            value: float = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
                raise ValueError(f"FullCollectionPolicy.{name} must be >= 0, got {value!r}")
        if self.max_interval_s < self.min_interval_s:
            raise ValueError(
                "FullCollectionPolicy.max_interval_s must be >= min_interval_s, got "
                f"{self.max_interval_s!r} < {self.min_interval_s!r}"
            )
        if self.min_finished < 1:
            raise ValueError(
                f"FullCollectionPolicy.min_finished must be >= 1, got {self.min_finished!r}"
            )
        if not (isinstance(self.max_duty, numbers.Real) and 0 < self.max_duty <= 1):
            raise ValueError(
                f"FullCollectionPolicy.max_duty must be in (0, 1], got {self.max_duty!r}"
            )

    def finished_needed(self, running: int) -> int:
        """Sessions that must finish after a collection to make the next one due."""
        return max(self.min_finished, math.ceil(self.per_running * running))

    def typical_pause_s(self) -> float:
        """The median pause of the last three collections (0 before the first)."""
        pauses = sorted(self._pauses)
        return pauses[len(pauses) // 2] if pauses else 0.0

    def min_gap_s(self) -> float:
        """The earliest the next collection may run after the previous one (seconds)."""
        by_duty = self.typical_pause_s() / self.max_duty
        return min(self.max_interval_s, max(self.min_interval_s, by_duty))

    def due(self, now: float, finished: int, running: int) -> bool:
        """Is a full collection due at ``now``, with ``finished`` sessions ended since the
        run began and ``running`` alive?"""
        elapsed = now - self.last_at
        if elapsed < self.min_gap_s():
            return False
        if elapsed >= self.max_interval_s:
            return True
        return finished - self.last_finished >= self.finished_needed(running)

    def record(self, now: float, finished: int, pause_s: float | None = None) -> None:
        """A full collection ran at ``now`` (its end) with ``finished`` sessions ended so
        far; it paused the loop ``pause_s`` seconds (``None``: not timed, e.g. the start)."""
        self.last_at = now
        self.last_finished = finished
        if pause_s is not None:
            self._pauses.append(max(0.0, pause_s))


def _collect_full() -> int:
    return gc.collect(2)


@attrs.define(eq=False)
class FullCollector:
    """Runs a full garbage collection on the event loop whenever ``policy`` says one is due;
    start it with ``await nursery.start(collector.run)``.

    ``progress()`` returns ``(finished, running)`` session counts (e.g. a supervisor's
    ``completed + failed + cancelled`` and ``running``). The policy is asked every
    ``check_s`` seconds of trio's clock (absolute deadlines); ``collect`` (default
    ``gc.collect(2)``) runs synchronously on the loop, so its pause is visible to the
    loop-lag monitor and timed by :class:`GcPauses` like any other collection; ``timer``
    (default ``time.perf_counter``, real time whatever trio's clock) times it for the
    policy. ``collections`` counts the ones it ran.
    """

    progress: Callable[[], tuple[int, int]]
    policy: FullCollectionPolicy = attrs.field(factory=FullCollectionPolicy)
    check_s: float = 0.5
    collect: Callable[[], int] = _collect_full
    timer: Callable[[], float] = time.perf_counter
    collections: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.check_s) and self.check_s > 0):
            raise ValueError(f"FullCollector.check_s must be > 0, got {self.check_s!r}")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Collect until cancelled: the policy's interval starts now
        (``task_status.started()`` once it has), then one check per ``check_s``.

        Resource handling: holds none. Error handling: an exception from ``progress`` or
        ``collect`` propagates. Cancellation: raises ``Cancelled`` at its sleep, never in a
        collection (it is synchronous); a collection is counted and recorded in the policy
        entirely or not at all.
        """
        finished, _ = self.progress()
        deadline = trio.current_time()
        self.policy.record(deadline, finished)
        task_status.started()
        while True:
            # After a stall, check once at once rather than once per missed deadline.
            deadline = max(deadline + self.check_s, trio.current_time())
            await trio.sleep_until(deadline)
            finished, running = self.progress()
            if self.policy.due(trio.current_time(), finished, running):
                started = self.timer()
                self.collect()
                pause = self.timer() - started
                self.collections += 1
                self.policy.record(trio.current_time(), finished, pause)


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


# --------------------------------------------------------------------------- validity


#: The fewest samples a figure needs before the *live* verdict judges its p99
#: (:meth:`ValidityLimits.judge_live`): over fewer, a p99 is really the max, i.e. the
#: start-up stalls (imports, first connections). At the loop monitor's 100 ms tick, 10 s
#: of loop lag; 2 s of one session's paced 20 ms audio frames.
MIN_LIVE_SAMPLES = 100


@attrs.frozen
class ValidityLimits:
    """Above these p99s (ms) the load generator is judged to be the bottleneck."""

    loop_lag_p99_ms: float = 50.0
    pacer_p99_ms: float = 50.0
    target_send_p99_ms: float = 50.0
    """The embedded target's own send lateness (ground truth ``send_late_ms``) p99."""
    min_live_samples: int = MIN_LIVE_SAMPLES
    """Samples a figure needs before the live verdict judges it (:meth:`judge_live`)."""

    def __attrs_post_init__(self) -> None:
        for name in ("loop_lag_p99_ms", "pacer_p99_ms", "target_send_p99_ms"):
            value: float = getattr(self, name)
            if not (isinstance(value, numbers.Real) and value >= 0 and not math.isnan(value)):
                raise ValueError(f"ValidityLimits.{name} must be a number >= 0, got {value!r}")
        if not (isinstance(self.min_live_samples, int) and self.min_live_samples >= 0):
            raise ValueError(
                "ValidityLimits.min_live_samples must be an int >= 0, got "
                f"{self.min_live_samples!r}"
            )

    def judge_live(
        self,
        loop_lag_p99_ms: float | None,
        loop_lag_samples: int | None,
        pacer_p99_ms: float | None,
        pacer_samples: int | None,
    ) -> dict[str, Any]:
        """The verdict of :func:`judge` *while the run goes*: a figure measured over fewer
        than :attr:`min_live_samples` samples is not judged yet (its p99 is the max of a
        few start-up samples); a count of ``None`` (unknown) is judged as :func:`judge`
        does. ``{"valid", "reasons", "judged"}``: ``judged`` is False while no figure was
        judged (``valid`` is then True, ``reasons`` empty). The end-of-run verdict is
        :func:`judge`'s, over every sample."""
        figures = []
        for value, samples in (
            (loop_lag_p99_ms, loop_lag_samples),
            (pacer_p99_ms, pacer_samples),
        ):
            measured = value is not None and not math.isnan(value)
            enough = samples is None or samples >= self.min_live_samples
            figures.append(value if measured and enough else None)
        verdict = judge(figures[0], figures[1], self)
        judged = any(v is not None for v in figures)
        return {"valid": verdict.valid, "reasons": list(verdict.reasons), "judged": judged}


class Validity(NamedTuple):
    """``(valid, reasons)``: ``reasons`` explains every failed check (empty when valid)."""

    valid: bool
    reasons: list[str]


def judge(
    loop_lag_p99_ms: float | None,
    pacer_p99_ms: float | None,
    limits: ValidityLimits | None = None,
) -> Validity:
    """Was the run valid, i.e. was the generator *not* its own bottleneck?

    Each figure over its limit (strictly) makes the run invalid with a reason naming the
    figure, its value and the limit. ``None``/NaN means not measured (no audio was paced,
    the monitor did not run) and is not held against the run.
    """
    limits = ValidityLimits() if limits is None else limits
    reasons: list[str] = []
    checks = (
        ("event-loop lag", loop_lag_p99_ms, limits.loop_lag_p99_ms),
        ("audio pacer lateness", pacer_p99_ms, limits.pacer_p99_ms),
    )
    for what, value, limit in checks:
        if value is not None and not math.isnan(value) and value > limit:
            reasons.append(
                f"{what} p99 {value:.1f} ms > limit {limit:g} ms: the load generator was the "
                "bottleneck, latencies measured in this run are not trustworthy"
            )
    return Validity(not reasons, reasons)


def judge_target(
    send_late_p99_ms: float | None,
    target: str,
    limits: ValidityLimits | None = None,
) -> Validity:
    """Was the embedded target *not* the bottleneck? Its own send lateness p99 (ground
    truth ``actual - intended``) over ``limits.target_send_p99_ms`` (strictly) makes the
    run invalid with a reason naming ``target`` (e.g. ``"embedded server (own process)"``).
    ``None``/NaN: not measured, not held against the run."""
    limits = ValidityLimits() if limits is None else limits
    value, limit = send_late_p99_ms, limits.target_send_p99_ms
    if value is None or math.isnan(value) or value <= limit:
        return Validity(True, [])
    return Validity(
        False,
        [
            f"{target}: send lateness p99 {value:.1f} ms > limit {limit:g} ms (ground truth "
            "actual - intended): the target could not keep its own latency plan, latencies "
            "measured in this run include its stalls"
        ],
    )


def merge_validity(*verdicts: Validity | dict[str, Any] | None) -> dict[str, Any]:
    """One ``{"valid", "reasons"}`` of several verdicts (``None``s are skipped): valid
    only if every one is, with every reason in order."""
    reasons: list[str] = []
    valid = True
    for verdict in verdicts:
        if verdict is None:
            continue
        if isinstance(verdict, Validity):
            ok, why = verdict.valid, list(verdict.reasons)
        else:
            ok, why = bool(verdict.get("valid", True)), [str(r) for r in verdict.get("reasons", ())]
        valid = valid and ok
        reasons.extend(r for r in why if r not in reasons)
    return {"valid": valid, "reasons": reasons}
