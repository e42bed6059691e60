"""Audio pacing on absolute deadlines: one shared :class:`Ticker`, or a per-session
:class:`SleepPacer`.

Session actors send audio frame ``n`` at ``t0 + n * frame``. With hundreds of sessions
each calling ``trio.sleep_until`` the scheduler pays one timer wake-up per frame per
session. :class:`Ticker` is one task that wakes once per *bucket* and releases every
waiter of that bucket with a single ``trio.Event.set()``, so N sessions cost one timer
wake-up per bucket instead of N (measured cost per wake-up below).

Algorithm. Time is cut into buckets of ``resolution`` seconds (bucket ``k`` holds the
deadlines in ``[k*res, (k+1)*res)``, with a 10 ns tolerance so ``t0 + n*frame`` float noise
does not split an on-grid instant in two). Each bucket has one ``trio.Event``, a waiter
count and its *latest* member deadline; the bucket is released at that latest deadline,
never earlier, so no waiter wakes before its own deadline and lateness is at most
``resolution`` (zero for waiters whose deadlines coincide). A min-heap of bucket indices
orders the buckets; the ticker task sleeps in a cancel scope whose ``deadline`` is moved
whenever the head bucket changes (a new earlier bucket, a later member joining the
head), which trio supports on a live scope. Cancelled waiters are removed by trio from
the event's wait queue; the count lets an emptied bucket be dropped so the ticker does
not wake for nobody (lazy deletion from the heap).

Choice of resolution (default 10 ms). Buckets only save work if several waiters share
them: with 100–500 sessions on 100 ms frames, 10 ms buckets hold 10–50 waiters, 1 ms
buckets 1–5 (then the ticker costs almost as much as per-session sleeps). The price is
lateness: a waiter whose bucket mate has a later deadline wakes up to ``resolution``
late (about ``resolution/2`` at the median with random phases). Measured with
``benchmarks/bench_pacer.py`` (N=500, 100 ms frames, 2-core box shared with other
jobs, so noisy): CPU per wake-up 22 µs at 1 ms, 12 µs at 5 ms, 8–12 µs at 10 ms, 10 µs
at 20 ms, against 28–36 µs for ``trio.sleep_until``; 10 ms is past the knee of the cost
curve while its lateness (p50 ~6 ms, p99 ~11 ms) stays well under one frame. Every
frame's lateness is recorded (``pacer_lateness_ms``) and latency metrics are anchored on
planned times, so quantisation never hides inside a latency number. And it can be
avoided: timelines that start on the grid (``t0 = ticker.align(t)``) with frames that are
multiples of the resolution (20/40/50/100 ms at 10 ms) share buckets exactly and see only
scheduling delay (measured p50 ~0.9 ms, p99 1.4–3 ms, like ``sleep_until``).
``benchmarks/bench_pacer.py`` measures both costs.
"""

from __future__ import annotations

import heapq
import math
from typing import NoReturn, Protocol

import trio

# Tolerance in units of buckets (10 ns at 10 ms): absorbs float noise in
# ``t0 + n * frame`` at trio clock magnitudes (its clock starts at a random offset of up to
# ~2e5 s, where deadline/resolution is ~1e7 and carries errors of a few 1e-9).
_EPS = 1e-6


class Pacer(Protocol):
    """Something that wakes a task at an absolute ``trio.current_time()`` deadline."""

    async def wait_until(self, deadline: float) -> float:
        """Sleep until ``deadline``; return the actual wake time (``>= deadline``)."""
        ...

    def align(self, t: float) -> float:
        """The first instant ``>= t`` that wakes without quantisation lateness."""
        ...


class SleepPacer:
    """Per-session fallback: one ``trio.sleep_until`` per deadline. Needs no task."""

    async def wait_until(self, deadline: float) -> float:
        """Sleep until ``deadline`` and return ``trio.current_time()`` on wake-up.

        Either returns the wake time (``>= deadline``) or raises ``Cancelled``.
        """
        await trio.sleep_until(deadline)
        return trio.current_time()

    def align(self, t: float) -> float:
        """``t`` itself: a plain sleep has no grid."""
        return t


class _Bucket:
    __slots__ = ("event", "waiters", "wake_at")

    def __init__(self, deadline: float) -> None:
        self.event = trio.Event()
        self.waiters = 0
        self.wake_at = deadline


class Ticker:
    """A shared pacing clock: one task wakes all waiters of a ``resolution`` bucket.

    Usage::

        ticker = Ticker(resolution=0.010)
        await nursery.start(ticker.run)
        actual = await ticker.wait_until(t0 + n * frame)
        lateness = actual - (t0 + n * frame)

    ``ticks`` counts bucket releases and ``wakes`` released waiters
    (``wakes / ticks`` = waiters per timer wake-up).
    """

    def __init__(self, resolution: float = 0.010) -> None:
        if not (resolution > 0 and math.isfinite(resolution)):
            raise ValueError(
                f"Ticker resolution must be a positive number of seconds, got {resolution!r}"
            )
        self.resolution = resolution
        self.ticks = 0
        self.wakes = 0
        self._buckets: dict[int, _Bucket] = {}
        self._heap: list[int] = []
        self._scope: trio.CancelScope | None = None
        self._running = False
        self._stopped = False

    def align(self, t: float) -> float:
        """The first bucket boundary ``>= t``: start an audio timeline there
        (``t0 = ticker.align(planned)``) to share buckets with other aligned sessions."""
        return math.ceil(t / self.resolution - _EPS) * self.resolution

    async def run(
        self, *, task_status: trio.TaskStatus[Ticker] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """The ticker task: start it with ``await nursery.start(ticker.run)``.

        Resource handling: runs until cancelled; a Ticker runs at most once. When it stops
        (cancelled or crashed) every pending and later :meth:`wait_until` raises
        ``trio.ClosedResourceError`` instead of sleeping forever.

        Error handling: it raises nothing of its own except ``RuntimeError`` if started
        twice; ``Cancelled`` propagates.
        """
        if self._running or self._stopped:
            raise RuntimeError("Ticker.run: this ticker was already started")
        self._running = True
        task_status.started(self)
        try:
            while True:
                with trio.CancelScope(deadline=self._head_deadline()) as scope:
                    self._scope = scope
                    await trio.sleep_forever()
                self._scope = None
                self._release(trio.current_time())
        finally:
            self._running = False
            self._stopped = True
            self._scope = None
            buckets, self._buckets, self._heap = self._buckets, {}, []
            for bucket in buckets.values():
                bucket.event.set()

    async def wait_until(self, deadline: float) -> float:
        """Sleep until the ticker releases ``deadline``'s bucket; return the wake time.

        The wake time is ``trio.current_time()`` when this task resumes: never before
        ``deadline``, at most about ``resolution`` after it plus scheduling delay. A
        deadline already past returns after a checkpoint.

        Either returns the wake time or raises ``Cancelled``; a cancelled waiter leaves
        nothing behind (its bucket is dropped if it was the last one in it). Raises
        ``trio.ClosedResourceError`` if the ticker is not running or stops meanwhile.
        """
        if not self._running:
            raise trio.ClosedResourceError("Ticker.wait_until: the ticker task is not running")
        if deadline <= trio.current_time():
            await trio.lowlevel.checkpoint()
            return trio.current_time()
        k = math.floor(deadline / self.resolution + _EPS)
        bucket = self._buckets.get(k)
        if bucket is None:
            bucket = self._buckets[k] = _Bucket(deadline)
            heapq.heappush(self._heap, k)
            if self._heap[0] == k:
                self._reschedule()
        elif deadline > bucket.wake_at:
            bucket.wake_at = deadline
            if self._heap[0] == k:
                self._reschedule()
        bucket.waiters += 1
        try:
            await bucket.event.wait()
        except BaseException:
            bucket.waiters -= 1
            if bucket.waiters == 0 and self._buckets.get(k) is bucket:
                del self._buckets[k]
                self._reschedule()
            raise
        if self._stopped:
            raise trio.ClosedResourceError("Ticker.wait_until: the ticker task stopped")
        return trio.current_time()

    def _head_deadline(self) -> float:
        heap, buckets = self._heap, self._buckets
        while heap:
            bucket = buckets.get(heap[0])
            if bucket is not None:
                return bucket.wake_at
            heapq.heappop(heap)  # emptied by cancellation
        return math.inf

    def _reschedule(self) -> None:
        if self._scope is not None:
            self._scope.deadline = self._head_deadline()

    def _release(self, now: float) -> None:
        heap, buckets = self._heap, self._buckets
        while heap:
            k = heap[0]
            bucket = buckets.get(k)
            if bucket is None:
                heapq.heappop(heap)
                continue
            if bucket.wake_at > now:
                break
            heapq.heappop(heap)
            del buckets[k]
            self.ticks += 1
            self.wakes += bucket.waiters
            bucket.event.set()
