"""Side-by-side comparison of two ``summary.json`` dicts (``orchestrator report --compare A B``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from orchestrator.metrics.text import format_table

__all__ = ["COMPARE_STATS", "CompareRow", "compare", "render_compare"]

#: Stats compared for every distribution metric.
COMPARE_STATS: tuple[str, ...] = ("count", "mean", "p50", "p90", "p95", "p99", "max")
_TOTALS: tuple[str, ...] = (
    "sessions_total",
    "sessions_failed",
    "session_error_rate",
    "turns_total",
    "turns_failed",
    "turn_error_rate",
    "late_starts",
    "dropped_starts",
    "cost_usd",
)


@attrs.frozen(kw_only=True)
class CompareRow:
    """One compared number: ``delta = b - a``; ``delta_pct = 100 * delta / a`` (``None``
    when either side is missing, or ``a`` is 0)."""

    metric: str
    stat: str
    a: float | None
    b: float | None
    delta: float | None
    delta_pct: float | None


def _row(metric: str, stat: str, a: Any, b: Any) -> CompareRow:
    a = None if a is None else float(a)
    b = None if b is None else float(b)
    delta = None if a is None or b is None else b - a
    pct = None if delta is None or not a else 100.0 * delta / a
    return CompareRow(metric=metric, stat=stat, a=a, b=b, delta=delta, delta_pct=pct)


def compare(summary_a: Mapping[str, Any], summary_b: Mapping[str, Any]) -> list[CompareRow]:
    """Rows for every metric measured in either summary (metric order of A, then B's
    extras), each stat of :data:`COMPARE_STATS`, then the run totals (stat ``"value"``).
    Metrics with no samples on either side are left out."""
    rows: list[CompareRow] = []
    metrics_a = summary_a.get("metrics", {})
    metrics_b = summary_b.get("metrics", {})
    names = list(metrics_a) + [m for m in metrics_b if m not in metrics_a]
    for name in names:
        sa, sb = metrics_a.get(name) or {}, metrics_b.get(name) or {}
        if not (sa.get("count") or sb.get("count")):
            continue
        rows.extend(_row(name, stat, sa.get(stat), sb.get(stat)) for stat in COMPARE_STATS)
    totals_a = summary_a.get("totals", {})
    totals_b = summary_b.get("totals", {})
    for name in _TOTALS:
        if name in totals_a or name in totals_b:
            rows.append(_row(name, "value", totals_a.get(name), totals_b.get(name)))
    return rows


def render_compare(rows: list[CompareRow], *, label_a: str = "A", label_b: str = "B") -> str:
    """A text table of :func:`compare` rows."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1f}%"

    def num(value: float | None, sign: bool = False) -> str:
        if value is None:
            return "-"
        plus = "+" if sign and value > 0 else ""
        if value.is_integer():
            return f"{plus}{int(value)}"
        return f"{plus}{value:.1f}" if abs(value) >= 10 else f"{plus}{value:.4g}"

    body = [
        [
            r.metric,
            r.stat,
            num(r.a),
            num(r.b),
            num(r.delta, sign=True),
            pct(r.delta_pct),
        ]
        for r in rows
    ]
    return format_table(["metric", "stat", label_a, label_b, "delta", "delta %"], body)
