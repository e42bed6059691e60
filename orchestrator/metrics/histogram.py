"""A bounded histogram for per-sample figures of long runs (pure, no I/O).

Keeping every sample (pacer lateness of every audio frame, say) makes a session's memory
grow with its length. :class:`LogHistogram` keeps counts in logarithmic buckets instead:
memory is bounded by the number of distinct buckets (about 230 per decade of range at
the default 1 % precision, and only those that were hit), ``count``, ``max`` and
``min`` are exact, and percentiles are within ``precision`` of the true value (zero and
negative samples are kept exactly in one bucket of their own: the fake clock's
lateness is exactly 0).
"""

from __future__ import annotations

import math

__all__ = ["LogHistogram"]


class LogHistogram:
    """Counts of samples in buckets ``[b**k, b**(k+1))`` with ``b = 1 + 2 * precision``;
    samples ``<= 0`` share the exact bucket ``None`` (reported as their max, i.e. 0 for
    lateness that never went negative)."""

    __slots__ = ("_counts", "_log_base", "_nonpos", "_nonpos_max", "count", "max", "min")

    def __init__(self, precision: float = 0.01) -> None:
        if not 0.0 < precision < 0.5:
            raise ValueError(f"LogHistogram precision must be in (0, 0.5), got {precision}")
        self._log_base = math.log1p(2.0 * precision)
        self._counts: dict[int, int] = {}
        self._nonpos = 0
        self._nonpos_max = -math.inf
        self.count = 0
        self.max: float | None = None
        self.min: float | None = None

    def add(self, value: float) -> None:
        """Count one sample."""
        self.count += 1
        if self.max is None or value > self.max:
            self.max = value
        if self.min is None or value < self.min:
            self.min = value
        if value <= 0.0:
            self._nonpos += 1
            if value > self._nonpos_max:
                self._nonpos_max = value
            return
        key = math.floor(math.log(value) / self._log_base)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100), None when empty. Nearest-rank on the
        buckets; a bucket reports its geometric middle, clamped to [min, max]."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = self._nonpos
        if rank <= seen:
            return self._nonpos_max
        for key in sorted(self._counts):
            seen += self._counts[key]
            if seen >= rank:
                mid = math.exp((key + 0.5) * self._log_base)
                assert self.min is not None and self.max is not None
                return min(max(mid, self.min), self.max)
        return self.max

    @property
    def buckets(self) -> int:
        """How many buckets are in use (the memory bound)."""
        return len(self._counts) + (1 if self._nonpos else 0)
