"""Run-to-run noise of the numbers a ``summary.json`` keeps (``report --compare``).

A summary stores, per metric, ``count, mean, min, p50, p90, p95, p99, max`` and no raw
samples, so the noise of each stat is estimated from those numbers alone:

- **Percentiles** (``pNN``): the distribution-free confidence interval of a sample
  quantile. With ``n`` samples the rank of the ``q`` quantile is uncertain by
  ``Z * sqrt(q * (1 - q) / n)`` (binomial), and by at least one rank (``1 / n``: no
  quantile is known better than its neighbouring samples); that rank interval is mapped
  back to values through the run's own quantile function, interpolated linearly between
  the stored points ``(0, min) (0.5, p50) (0.9, p90) (0.95, p95) (0.99, p99) (1, max)``. The band
  is the narrower side of that interval (a side that runs into rank 0 or 1 is not
  used unless both do): the straight line towards ``max`` (or ``min``), one extreme
  sample, would overstate the spread. Few samples or a wide tail give a wide band.
- **mean**: ``Z * sd / sqrt(n)``, the standard error of a mean, with ``sd`` estimated
  as ``(p90 - p50) / 1.2816`` (the normal distribution's p50-p90 distance); latency
  distributions are right-skewed, which makes this estimate generous rather than tight.
- **max**: a single sample; its band is the run's own tail gap ``max - p99``.
- **min**: the rank interval (as for percentiles) of the expected rank ``0.5 / n``.
- **count** and open run totals (``reconnects``, ``late_starts``...): Poisson counts,
  the difference of two has standard deviation ``sqrt(a + b)``.
- **counts out of a run total** (``sessions_completed`` and ``sessions_failed`` out of
  ``sessions_total``, ``turns_failed`` out of ``turns_total``...): binomial, the
  proportions' two-proportion noise (below) scaled back to a count by the larger total
  (:func:`proportion_count_noise`): 1000 vs 920 completed out of 1000 is not noise,
  whereas Poisson would call a change of up to ``Z * sqrt(1920)`` (86) noise.
- **rates** (``session_error_rate``, ``turn_error_rate``): the pooled two-proportion
  test, ``Z * sqrt(p * (1 - p) * (1/n_a + 1/n_b))`` with ``p`` the pooled rate.

Two runs' bands add up (a change is noise when it is within ``band_a + band_b``, i.e.
when the two intervals overlap), and a change of at most :data:`FLOOR_MS` or
:data:`FLOOR_FRACTION` of A's value is always noise: timer resolution and scheduling
jitter are about that size on any machine. ``Z`` is 1.96 (95 % per run; overlapping
intervals make the test on the difference conservative, so "beyond noise" is a strong
statement). Everything here is pure arithmetic on the summary dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "FLOOR_FRACTION",
    "FLOOR_MS",
    "Z",
    "count_noise",
    "proportion_count_noise",
    "rate_noise",
    "stat_band",
    "stat_noise",
]

#: Normal quantile of the per-run confidence intervals (95 %).
Z = 1.96
#: Changes of at most this many milliseconds are noise.
FLOOR_MS = 1.0
#: Changes of at most this fraction of A's value are noise.
FLOOR_FRACTION = 0.02

_KNOTS: tuple[tuple[float, str], ...] = (
    (0.0, "min"),
    (0.5, "p50"),
    (0.9, "p90"),
    (0.95, "p95"),
    (0.99, "p99"),
    (1.0, "max"),
)


def _num(stats: Mapping[str, Any], key: str) -> float | None:
    value = stats.get(key)
    return None if value is None else float(value)


def _quantile_interval(stats: Mapping[str, Any], q: float, n: int) -> float | None:
    """Half-width of the rank interval of quantile ``q`` mapped through the stored
    quantile function; ``None`` when fewer than two stored points are known."""
    knots = [(p, _num(stats, key)) for p, key in _KNOTS]
    points = [(p, v) for p, v in knots if v is not None]
    if len(points) < 2:
        return None
    xs = np.array([p for p, _ in points])
    ys = np.array([v for _, v in points])
    h = max(Z * math.sqrt(q * (1.0 - q) / n), 1.0 / n)
    lo, mid, hi = (float(v) for v in np.interp([max(q - h, 0.0), q, min(q + h, 1.0)], xs, ys))
    below, above = mid - lo, hi - mid
    if q - h > 0.0 and q + h < 1.0:
        return min(below, above)
    return below if q - h > 0.0 else above if q + h < 1.0 else max(below, above)


def stat_band(stats: Mapping[str, Any], stat: str) -> float | None:
    """One run's noise band (half-width, in the metric's unit) of ``stat`` of a
    distribution metric's summary ``stats``; ``None`` when it cannot be estimated
    (no samples, or too few stored stats)."""
    n = int(stats.get("count") or 0)
    if n == 0:
        return None
    if stat == "max":
        top, p99 = _num(stats, "max"), _num(stats, "p99")
        return None if top is None or p99 is None else top - p99
    if stat == "mean":
        p50, p90 = _num(stats, "p50"), _num(stats, "p90")
        if p50 is None or p90 is None:
            return None
        return Z * ((p90 - p50) / 1.2816) / math.sqrt(n)
    if stat == "min":
        return _quantile_interval(stats, 0.5 / n, n)
    if stat.startswith("p"):
        try:
            q = float(stat[1:]) / 100.0
        except ValueError:
            return None
        return _quantile_interval(stats, q, n)
    return None


def stat_noise(stats_a: Mapping[str, Any], stats_b: Mapping[str, Any], stat: str) -> float | None:
    """The largest change of ``stat`` between two runs that is still noise: the two
    runs' bands added, at least the floors (module docstring). ``count`` has no floor.
    ``None`` when neither band nor floor applies (a side has no value)."""
    if stat == "count":
        return count_noise(float(stats_a.get("count") or 0), float(stats_b.get("count") or 0))
    a = _num(stats_a, stat)
    if a is None or _num(stats_b, stat) is None:
        return None
    floor = max(FLOOR_MS, FLOOR_FRACTION * abs(a))
    band_a, band_b = stat_band(stats_a, stat), stat_band(stats_b, stat)
    if band_a is None or band_b is None:
        return floor
    return max(floor, band_a + band_b)


def count_noise(a: float, b: float) -> float:
    """Noise of the difference of two Poisson counts: ``Z * sqrt(a + b)``."""
    return Z * math.sqrt(max(a, 0.0) + max(b, 0.0))


def rate_noise(rate_a: float, n_a: int, rate_b: float, n_b: int) -> float | None:
    """Noise of the difference of two rates over ``n_a`` and ``n_b`` trials (pooled
    two-proportion test); ``None`` when a side had no trials."""
    if n_a <= 0 or n_b <= 0:
        return None
    pooled = (rate_a * n_a + rate_b * n_b) / (n_a + n_b)
    return Z * math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))


def proportion_count_noise(k_a: float, n_a: int, k_b: float, n_b: int) -> float | None:
    """Noise of the difference of two counts of ``k`` out of ``n`` trials (binomial):
    :func:`rate_noise` of ``k / n`` scaled by the larger ``n``; ``None`` when a side had
    no trials."""
    if n_a <= 0 or n_b <= 0:
        return None
    noise = rate_noise(k_a / n_a, n_a, k_b / n_b, n_b)
    return None if noise is None else noise * max(n_a, n_b)
