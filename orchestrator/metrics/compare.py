"""Comparison of two ``summary.json`` dicts (``orchestrator report --compare A B``).

:func:`compare` gives one :class:`CompareRow` per (metric, stat) measured in either run
and per run total, each judged against the run-to-run noise
(:mod:`~orchestrator.metrics.compare_noise`) and the metric's better direction
(:func:`direction`): ``regressed``, ``improved``, ``changed`` (beyond noise, no better
direction), ``noise``, ``same`` or ``missing``. :func:`config_diff` lists the config keys
that differ. Pure functions of the summary dicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import attrs

from orchestrator.metrics.compare_noise import (
    FLOOR_FRACTION,
    count_noise,
    proportion_count_noise,
    rate_noise,
    stat_noise,
)
from orchestrator.metrics.names import DISTRIBUTION_METRICS

__all__ = [
    "ABSENT",
    "COMPARE_STATS",
    "MAIN_METRICS",
    "NOT_LATENCIES",
    "OUT_OF",
    "TOTALS",
    "CompareRow",
    "Direction",
    "Verdict",
    "compare",
    "config_diff",
    "direction",
    "flatten_dotted",
    "metric_order",
    "total_value",
]

#: Stats compared for every distribution metric, the main ones first.
COMPARE_STATS: tuple[str, ...] = ("p50", "p95", "p99", "mean", "p90", "max", "min", "count")
#: Metrics listed first (the DESIGN.md headline latencies).
MAIN_METRICS: tuple[str, ...] = ("voice_to_voice_ms", "ttfb_ms", "ttfa_ms")

#: Distribution metrics in ms that are not waits (no better direction).
NOT_LATENCIES: frozenset[str] = frozenset({"audio_out_ms"})

Direction = Literal["lower", "higher", "none"]
"""Which way is better: ``lower`` (latencies, failures), ``higher`` (completions),
``none`` (sizes of the run, e.g. ``sessions_total`` or a metric's ``count``)."""

Verdict = Literal["regressed", "improved", "changed", "noise", "same", "missing"]

#: Run totals compared (``stat == "value"``), with their better direction and the total
#: that is their number of trials (rates) or ``None`` (counts: Poisson noise, binomial for
#: those of :data:`OUT_OF`). Names are
#: keys of ``summary["totals"]``, or ``connections.KEY`` of ``summary["connections"]``.
TOTALS: dict[str, tuple[Direction, str | None]] = {
    "sessions_total": ("none", None),
    "sessions_completed": ("higher", None),
    "sessions_failed": ("lower", None),
    "session_error_rate": ("lower", "sessions_total"),
    "turns_total": ("none", None),
    "turns_failed": ("lower", None),
    "turn_error_rate": ("lower", "turns_total"),
    "late_starts": ("lower", None),
    "dropped_starts": ("lower", None),
    "reconnects": ("lower", None),
    "rate_limited_turns": ("lower", None),
    "rate_limited_sessions": ("lower", None),
    "cost_usd": ("lower", None),
    "connections.attempts": ("none", None),
    "connections.refused": ("lower", None),
    "connections.restarts": ("lower", None),
}

#: Count totals that are counts out of another run total (binomial noise, see
#: :func:`~orchestrator.metrics.compare_noise.proportion_count_noise`); the other counts
#: of :data:`TOTALS` are open (Poisson noise).
OUT_OF: dict[str, str] = {
    "sessions_completed": "sessions_total",
    "sessions_failed": "sessions_total",
    "rate_limited_sessions": "sessions_total",
    "turns_failed": "turns_total",
    "rate_limited_turns": "turns_total",
}


def direction(metric: str, stat: str = "value") -> Direction:
    """The better direction of ``metric``'s ``stat``: every distribution metric is a
    duration in ms (lower is better) except its sample ``count`` and
    :data:`NOT_LATENCIES` (``audio_out_ms``: how much audio came back, a size, not a
    wait: no gate, never regressed or improved); run totals per :data:`TOTALS`; anything
    unknown has none."""
    if metric in TOTALS:
        return TOTALS[metric][0]
    if stat == "count" or metric in NOT_LATENCIES:
        return "none"
    return "lower" if metric.endswith("_ms") else "none"


@attrs.frozen(kw_only=True)
class CompareRow:
    """One compared number: ``delta = b - a``; ``delta_pct = 100 * delta / a`` (``None``
    when either side is missing, or ``a`` is 0); ``noise``: the largest change that is
    still run-to-run noise (``None``: unknown); ``verdict``: see the module docstring."""

    metric: str
    stat: str
    a: float | None
    b: float | None
    delta: float | None
    delta_pct: float | None
    noise: float | None = None
    verdict: Verdict = "missing"

    @property
    def beyond_noise(self) -> bool:
        """Whether the change is real: ``regressed``, ``improved`` or ``changed``."""
        return self.verdict in ("regressed", "improved", "changed")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return attrs.asdict(self)


def _judge(delta: float | None, noise: float | None, better: Direction) -> Verdict:
    if delta is None:
        return "missing"
    if delta == 0:
        return "same"
    if noise is not None and abs(delta) <= noise:
        return "noise"
    if better == "none":
        return "changed"
    worse = delta > 0 if better == "lower" else delta < 0
    return "regressed" if worse else "improved"


def _row(metric: str, stat: str, a: Any, b: Any, noise: float | None) -> CompareRow:
    a = None if a is None else float(a)
    b = None if b is None else float(b)
    delta = None if a is None or b is None else b - a
    pct = None if delta is None or not a else 100.0 * delta / a
    return CompareRow(
        metric=metric,
        stat=stat,
        a=a,
        b=b,
        delta=delta,
        delta_pct=pct,
        noise=noise,
        verdict=_judge(delta, noise, direction(metric, stat)),
    )


def metric_order(summary_a: Mapping[str, Any], summary_b: Mapping[str, Any]) -> list[str]:
    """Distribution metrics with samples in either run: :data:`MAIN_METRICS` first, then
    the :data:`~orchestrator.metrics.names.DISTRIBUTION_METRICS` order, then any other."""
    metrics_a = summary_a.get("metrics", {})
    metrics_b = summary_b.get("metrics", {})
    order = {
        name: i for i, name in enumerate(dict.fromkeys((*MAIN_METRICS, *DISTRIBUTION_METRICS)))
    }
    present = [
        name
        for name in dict.fromkeys([*metrics_a, *metrics_b])
        if (metrics_a.get(name) or {}).get("count") or (metrics_b.get(name) or {}).get("count")
    ]
    return sorted(present, key=lambda name: order.get(name, len(order)))


def _total_source(summary: Mapping[str, Any], name: str) -> tuple[Mapping[str, Any], str]:
    section, dot, key = name.partition(".")
    return ((summary.get(section) or {}), key) if dot else (summary.get("totals") or {}, name)


def total_value(summary: Mapping[str, Any], name: str) -> Any:
    """The run total ``name`` of :data:`TOTALS` in ``summary`` (``None``: not there)."""
    source, key = _total_source(summary, name)
    return source.get(key)


def _total_noise(
    name: str, a: Any, b: Any, totals_a: Mapping[str, Any], totals_b: Mapping[str, Any]
) -> float | None:
    if a is None or b is None:
        return None
    trials = TOTALS[name][1]
    if trials is not None:
        return rate_noise(float(a), int(totals_a.get(trials) or 0), float(b),
                          int(totals_b.get(trials) or 0))  # fmt: skip
    if name == "cost_usd":
        return FLOOR_FRACTION * abs(float(a))
    out_of = OUT_OF.get(name)
    if out_of is not None:
        n_a, n_b = totals_a.get(out_of), totals_b.get(out_of)
        if n_a and n_b:
            return proportion_count_noise(float(a), int(n_a), float(b), int(n_b))
    return count_noise(float(a), float(b))


def compare(summary_a: Mapping[str, Any], summary_b: Mapping[str, Any]) -> list[CompareRow]:
    """Rows for every distribution metric measured in either summary (order of
    :func:`metric_order`; each stat of :data:`COMPARE_STATS`), then the run totals of
    :data:`TOTALS` present in either (stat ``"value"``)."""
    rows: list[CompareRow] = []
    metrics_a = summary_a.get("metrics", {})
    metrics_b = summary_b.get("metrics", {})
    for name in metric_order(summary_a, summary_b):
        sa, sb = metrics_a.get(name) or {}, metrics_b.get(name) or {}
        rows.extend(
            _row(name, stat, sa.get(stat), sb.get(stat), stat_noise(sa, sb, stat))
            for stat in COMPARE_STATS
        )
    totals_a = summary_a.get("totals", {})
    totals_b = summary_b.get("totals", {})
    for name in TOTALS:
        (source_a, key), (source_b, _) = (
            _total_source(summary_a, name),
            _total_source(summary_b, name),
        )
        if key in source_a or key in source_b:
            a, b = source_a.get(key), source_b.get(key)
            rows.append(_row(name, "value", a, b, _total_noise(name, a, b, totals_a, totals_b)))
    return rows


ABSENT: Any = object()
"""The value :func:`config_diff` gives a key that one config does not have."""


def flatten_dotted(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted.key, leaf)`` pairs of a nested mapping, in key order; lists and empty
    mappings are leaves."""
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            yield from flatten_dotted(inner, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, value


def config_diff(
    config_a: Mapping[str, Any], config_b: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """``(dotted.key, value_a, value_b)`` for every leaf that differs between two (nested)
    configs, in A's key order then B's extras; lists are compared whole. A key missing on
    one side has the value :data:`ABSENT` there."""
    flat_a = dict(flatten_dotted(config_a))
    flat_b = dict(flatten_dotted(config_b))
    return [
        (key, flat_a.get(key, ABSENT), flat_b.get(key, ABSENT))
        for key in dict.fromkeys([*flat_a, *flat_b])
        if flat_a.get(key, ABSENT) != flat_b.get(key, ABSENT)
    ]
