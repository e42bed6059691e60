"""The garbage-collection regime of a long run: no stalls mid-run, and memory that stays flat.

CPython's cyclic collector runs when its allocation counters say, and a full (generation 2)
collection of a large heap pauses the event loop for tens of milliseconds at a moment
nobody chose. :func:`tuned_gc` freezes what exists before the run, keeps the young
generations small and turns CPython's own full collections off; :class:`FullCollectionPolicy`
decides when a full collection is due (in proportion to the sessions that ended, with a
bounded share of the time in pauses) and :class:`FullCollector` runs it on the loop, where
the loop-lag monitor (:mod:`.monitor`) sees and times its pause. ``orchestrator run``,
``orchestrator serve`` and a fleet's workers run under this regime.
"""

from __future__ import annotations

import gc
import math
import numbers
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs
import trio

__all__ = ["GC_THRESHOLDS", "FullCollectionPolicy", "FullCollector", "tuned_gc"]


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
