"""Distribution statistics: exact summaries of a finished run and rolling live percentiles.

``summarize`` is exact (numpy, linear interpolation between closest ranks, the numpy
default and the same as k6's). ``RollingWindow`` is for the live progress display: it keeps
the last ``window_s`` seconds of samples in a ring of per-interval log-bucket histograms,
so memory is fixed (``slots * buckets`` counters) whatever the sample rate, an ``add`` is
O(1), and a percentile read is O(slots * buckets) numpy work (fine at a few reads per
second). Its percentiles are approximate: within ``growth / 2`` relative error (1% by
default), clamped to the exact min/max of the window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping

import attrs
import numpy as np

__all__ = [
    "LiveStats",
    "MetricSummary",
    "RollingWindow",
    "SUMMARY_STATS",
    "clean_values",
    "percentile",
    "summarize",
]

#: The stats of a :class:`MetricSummary`, in display order.
SUMMARY_STATS: tuple[str, ...] = ("count", "mean", "min", "p50", "p90", "p95", "p99", "max")


@attrs.frozen(kw_only=True)
class MetricSummary:
    """Summary of one metric's samples; all stats are ``None`` when ``count == 0``."""

    count: int
    mean: float | None = None
    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        """The stats as a plain dict in :data:`SUMMARY_STATS` order."""
        return {name: getattr(self, name) for name in SUMMARY_STATS}

    @classmethod
    def from_dict(cls, data: Mapping[str, float | int | None]) -> MetricSummary:
        """Inverse of :meth:`to_dict` (missing stats are ``None``)."""

        def num(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            count=int(data.get("count") or 0),
            mean=num("mean"),
            min=num("min"),
            p50=num("p50"),
            p90=num("p90"),
            p95=num("p95"),
            p99=num("p99"),
            max=num("max"),
        )


def clean_values(values: Iterable[float | None]) -> np.ndarray:
    """The finite values of ``values`` as a float64 array (``None`` and NaN/inf dropped)."""
    arr = np.fromiter((v for v in values if v is not None), dtype=np.float64)
    return arr[np.isfinite(arr)]


#: Up to this many values :func:`percentile` sorts them in Python: for the few values of one
#: turn or session (its pacer lateness) ~5 us where NumPy's set-up alone costs ~70 us.
SMALL_SAMPLE = 256


def percentile(values: Iterable[float | None] | np.ndarray, q: float) -> float | None:
    """The ``q``-th percentile (0..100, linear interpolation) or ``None`` if no samples
    (``None`` and non-finite values ignored). The same value as ``numpy.percentile``, bit
    for bit, whatever the sample's size."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not isinstance(values, np.ndarray):
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if len(finite) <= SMALL_SAMPLE:
            return _linear(sorted(finite), q) if finite else None
        values = np.asarray(finite, dtype=np.float64)
    arr = values if values.dtype == np.float64 else values.astype(np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None
    return float(np.percentile(arr, q))


def _linear(ordered: list[float], q: float) -> float:
    """NumPy's ``linear`` percentile of the sorted ``ordered``, with its arithmetic."""
    index = (len(ordered) - 1) * (q / 100.0)
    below = math.floor(index)
    gamma = index - below
    a = float(ordered[below])
    b = float(ordered[min(below + 1, len(ordered) - 1)])
    diff = b - a
    return b - diff * (1.0 - gamma) if gamma >= 0.5 else a + diff * gamma


def summarize(values: Iterable[float | None] | np.ndarray) -> MetricSummary:
    """Exact :class:`MetricSummary` of ``values`` (``None`` and non-finite values ignored)."""
    arr = values if isinstance(values, np.ndarray) else clean_values(values)
    if arr.size == 0:
        return MetricSummary(count=0)
    p50, p90, p95, p99 = (float(x) for x in np.percentile(arr, [50, 90, 95, 99]))
    return MetricSummary(
        count=int(arr.size),
        mean=float(arr.mean()),
        min=float(arr.min()),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        max=float(arr.max()),
    )


class RollingWindow:
    """Approximate percentiles over the samples of the last ``window_s`` seconds.

    Time is cut into ``slot_s`` intervals; a sample added at clock time ``t`` lands in slot
    ``floor(t / slot_s)``. A read at time ``now`` covers the ``ceil(window_s / slot_s)``
    most recent slots including the current partial one, i.e. a sample is forgotten
    between ``window_s - slot_s`` and ``window_s`` seconds after it was added (at the start
    of the slot ``window_s`` after its own). Values
    are bucketed logarithmically between ``lo`` and ``hi`` (values outside are clamped
    into the edge buckets; min/max/mean stay exact).

    ``clock`` is injected (``trio.current_time`` in the live display, a fake in tests).
    """

    def __init__(
        self,
        window_s: float = 60.0,
        *,
        slot_s: float = 1.0,
        lo: float = 0.1,
        hi: float = 1e6,
        growth: float = 1.02,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_s <= 0 or slot_s <= 0 or slot_s > window_s:
            raise ValueError(f"need 0 < slot_s <= window_s, got {slot_s=} {window_s=}")
        if not (0 < lo < hi) or growth <= 1.0:
            raise ValueError(f"need 0 < lo < hi and growth > 1, got {lo=} {hi=} {growth=}")
        self.window_s = window_s
        self.slot_s = slot_s
        self._clock = clock
        self._lo = lo
        self._log_lo = math.log(lo)
        self._log_growth = math.log(growth)
        self._nbuckets = int(math.ceil((math.log(hi) - self._log_lo) / self._log_growth)) + 1
        nslots = int(math.ceil(window_s / slot_s))
        self._nslots = nslots
        self._counts = np.zeros((nslots, self._nbuckets), dtype=np.int32)
        self._epoch = np.full(nslots, -1, dtype=np.int64)  # slot number held by each row
        self._n = np.zeros(nslots, dtype=np.int64)
        self._sum = np.zeros(nslots, dtype=np.float64)
        self._min = np.full(nslots, np.inf)
        self._max = np.full(nslots, -np.inf)
        # bucket i holds values in [lo * growth**(i-1), lo * growth**i); representative
        # value is the geometric middle (bucket 0 holds everything below lo).
        edges = lo * np.exp(self._log_growth * np.arange(self._nbuckets, dtype=np.float64))
        self._mid = np.concatenate(([lo], np.sqrt(edges[:-1] * edges[1:])))

    def _bucket(self, value: float) -> int:
        if value <= self._lo:
            return 0
        i = int(math.ceil((math.log(value) - self._log_lo) / self._log_growth))
        return min(i, self._nbuckets - 1)

    def add(self, value: float, t: float | None = None) -> None:
        """Record ``value`` at clock time ``t`` (default: now). O(1). Non-finite ignored."""
        if not math.isfinite(value):
            return
        slot = int(math.floor((self._clock() if t is None else t) / self.slot_s))
        row = slot % self._nslots
        if self._epoch[row] != slot:
            if self._epoch[row] > slot:
                return  # older than the window: already forgotten
            self._epoch[row] = slot
            self._counts[row].fill(0)
            self._n[row] = 0
            self._sum[row] = 0.0
            self._min[row] = np.inf
            self._max[row] = -np.inf
        self._counts[row, self._bucket(value)] += 1
        self._n[row] += 1
        self._sum[row] += value
        self._min[row] = min(self._min[row], value)
        self._max[row] = max(self._max[row], value)

    def _live_rows(self) -> np.ndarray:
        now_slot = int(math.floor(self._clock() / self.slot_s))
        return (self._epoch > now_slot - self._nslots) & (self._epoch <= now_slot)

    def count(self) -> int:
        """Number of samples in the window now."""
        return int(self._n[self._live_rows()].sum())

    def percentiles(self, qs: Iterable[float]) -> list[float | None]:
        """Approximate percentiles (0..100) of the window now; ``None`` if it is empty."""
        qs = list(qs)
        live = self._live_rows()
        n = int(self._n[live].sum())
        if n == 0:
            return [None for _ in qs]
        lo, hi = float(self._min[live].min()), float(self._max[live].max())
        cum = np.cumsum(self._counts[live].sum(axis=0))
        out: list[float | None] = []
        for q in qs:
            if not 0.0 <= q <= 100.0:
                raise ValueError(f"percentile must be within 0..100, got {q}")
            rank = q / 100.0 * (n - 1)  # 0-based rank, as numpy's linear method
            idx = int(np.searchsorted(cum, math.floor(rank) + 1))
            out.append(min(max(float(self._mid[idx]), lo), hi))
        return out

    def summary(self) -> MetricSummary:
        """:class:`MetricSummary` of the window now (percentiles approximate)."""
        live = self._live_rows()
        n = int(self._n[live].sum())
        if n == 0:
            return MetricSummary(count=0)
        p50, p90, p95, p99 = self.percentiles((50, 90, 95, 99))
        return MetricSummary(
            count=n,
            mean=float(self._sum[live].sum() / n),
            min=float(self._min[live].min()),
            p50=p50,
            p90=p90,
            p95=p95,
            p99=p99,
            max=float(self._max[live].max()),
        )


#: Turn metrics tracked live by :class:`LiveStats` (the ones the live display shows).
LIVE_TURN_METRICS: tuple[str, ...] = ("voice_to_voice_ms", "ttfb_ms", "ttfa_ms")
#: Session metrics tracked live by :class:`LiveStats`.
LIVE_SESSION_METRICS: tuple[str, ...] = ("connect_ms", "session_ready_ms")


class LiveStats:
    """Rolling per-metric windows plus run-to-date counters for the progress display.

    Feed it finished turns and sessions (any object with the :class:`TurnRecord` /
    :class:`SessionResult` attribute names); read :meth:`snapshot`. Memory is fixed.
    """

    def __init__(
        self,
        window_s: float = 60.0,
        *,
        slot_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.windows: dict[str, RollingWindow] = {
            name: RollingWindow(window_s, slot_s=slot_s, clock=clock)
            for name in (*LIVE_TURN_METRICS, *LIVE_SESSION_METRICS)
        }
        self._errors = RollingWindow(window_s, slot_s=slot_s, lo=0.5, hi=2.0, clock=clock)
        self.turns = 0
        self.turns_failed = 0
        self.sessions_by_status: dict[str, int] = {}

    def observe_turn(self, turn: object) -> None:
        """Add a finished turn's metrics. O(1)."""
        self.turns += 1
        if getattr(turn, "failed", False):
            self.turns_failed += 1
            self._errors.add(1.0)
        for name in LIVE_TURN_METRICS:
            value = getattr(turn, name, None)
            if value is not None:
                self.windows[name].add(value)

    def observe_session(self, result: object) -> None:
        """Add a finished session's metrics and status (an attempt that is also its
        session's last). O(1)."""
        self.observe_attempt(result)
        self.observe_session_done(result)

    def observe_attempt(self, result: object) -> None:
        """Add the metrics of a finished session attempt (every attempt connects). O(1)."""
        for name in LIVE_SESSION_METRICS:
            value = getattr(result, name, None)
            if value is not None:
                self.windows[name].add(value)

    def observe_session_done(self, result: object) -> None:
        """Count a session once, by the status of its last attempt. O(1)."""
        status = str(getattr(result, "status", "unknown"))
        self.sessions_by_status[status] = self.sessions_by_status.get(status, 0) + 1
        if status == "failed":
            self._errors.add(1.0)

    def errors_per_s(self) -> float:
        """Failed turns + failed sessions per second over the window."""
        return self._errors.count() / self._errors.window_s

    def snapshot(self) -> dict[str, MetricSummary]:
        """Rolling summary of every tracked metric now."""
        return {name: window.summary() for name, window in self.windows.items()}
