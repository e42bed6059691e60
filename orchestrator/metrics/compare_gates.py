"""Relative regression gates of ``report --compare A B``: ``--max-regression EXPR``.

Grammar: ``METRIC[{scenario:NAME}|{label:NAME}][.STAT]=LIMIT``.

- ``METRIC.STAT``: a distribution metric and one of the stats a summary keeps (``p50``,
  ``p90``, ``p95``, ``p99``, ``mean``/``avg``, ``med``, ``min``, ``max``); a run total of
  :data:`~orchestrator.metrics.compare.TOTALS` takes no stat (``sessions_failed=2``,
  ``connections.refused=0``).
- ``{scenario:NAME}`` / ``{label:NAME}``: the metric of one scenario or turn label, read
  from ``summary["breakdown"]`` (k6's tag-selector spelling).
- ``LIMIT``: ``10%`` (B may be worse than A by at most 10 % of A), ``25ms`` or ``25``
  (by at most 25 in the metric's unit; ``ms`` only on millisecond metrics).

"Worse" follows :func:`~orchestrator.metrics.compare.direction`: latencies and failures
up, completions down; metrics without a better direction cannot be gated. A gate fails
when the regression exceeds the limit, or when either run did not measure the number
(nothing to judge). When A is 0 a relative gate fails on any regression.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from orchestrator.metrics.compare import TOTALS, direction, total_value
from orchestrator.metrics.names import DISTRIBUTION_METRICS

__all__ = ["GateError", "GateResult", "RegressionGate", "evaluate_gates", "parse_gate"]

_GATE = re.compile(
    r"^\s*(?P<metric>connections\.[A-Za-z_]+|[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\{\s*(?P<kind>scenario|label)\s*:\s*(?P<name>[^}]*?)\s*\})?"
    r"(?:\.(?P<stat>[A-Za-z0-9().]+))?"
    r"\s*=\s*(?P<limit>[0-9]*\.?[0-9]+)\s*(?P<unit>%|ms)?\s*$"
)
_STATS = {"avg": "mean", "mean": "mean", "med": "p50", "min": "min", "max": "max"}
_STATS.update({f"p{q}": f"p{q}" for q in (50, 90, 95, 99)})
_STATS.update({f"p({q})": f"p{q}" for q in (50, 90, 95, 99)})


class GateError(ValueError):
    """A ``--max-regression`` expression that cannot be parsed; names the expression."""


@attrs.frozen(kw_only=True)
class RegressionGate:
    """A parsed gate: B's ``metric``/``stat`` (``stat`` ``None`` for a run total; of the
    ``selector`` ``(kind, name)`` breakdown entry when given) may be worse than A's by
    at most ``limit`` percent (``relative``) or units."""

    expr: str
    metric: str
    stat: str | None
    selector: tuple[str, str] | None
    limit: float
    relative: bool

    @property
    def unit(self) -> str:
        """The metric's unit: ``"ms"`` for a latency, ``""`` for a count."""
        return "ms" if _in_ms(self.metric) else ""


def _in_ms(metric: str) -> bool:
    return metric.endswith("_ms")


@attrs.frozen(kw_only=True)
class GateResult:
    """A judged gate: ``worse`` is how much B is worse than A (percent of A when the gate
    is relative, else in the metric's unit; negative: better; ``None``: not measured,
    ``inf``: A was 0); ``note`` says why a gate without a number failed."""

    expr: str
    a: float | None
    b: float | None
    worse: float | None
    limit: float
    relative: bool
    ok: bool
    note: str | None = None
    unit: str = ""
    """The metric's unit (``"ms"``; ``""`` for counts): of the figures, and of the limit
    and the amount of an absolute gate."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``inf`` as the string ``"inf"``)."""
        out = attrs.asdict(self)
        if self.worse is not None and math.isinf(self.worse):
            out["worse"] = "inf"
        return out


def parse_gate(expr: str) -> RegressionGate:
    """Parse one expression; raises :class:`GateError` saying what is wrong."""
    m = _GATE.match(expr) if isinstance(expr, str) else None
    if m is None:
        raise GateError(
            f"--max-regression {expr!r}: expected METRIC.STAT=LIMIT with LIMIT like 10% "
            "or 25ms, e.g. 'ttfb_ms.p95=10%'"
        )
    metric, raw_stat, unit = m["metric"], m["stat"], m["unit"]
    selector = (m["kind"], m["name"]) if m["kind"] else None
    stat: str | None = None
    if metric in DISTRIBUTION_METRICS:
        if raw_stat is None:
            raise GateError(
                f"--max-regression {expr!r}: {metric!r} is a distribution; name a stat, "
                f"e.g. '{metric}.p95={m['limit']}{unit or ''}'"
            )
        stat = _STATS.get(raw_stat.lower())
        if stat is None:
            raise GateError(
                f"--max-regression {expr!r}: a summary has no stat {raw_stat!r} "
                "(use p50, p90, p95, p99, mean, avg, med, min or max)"
            )
        if direction(metric, stat) == "none":
            raise GateError(
                f"--max-regression {expr!r}: {metric!r} has no better direction to regress in "
                "(it is not a latency)"
            )
    elif metric in TOTALS:
        if raw_stat is not None or selector is not None:
            raise GateError(
                f"--max-regression {expr!r}: {metric!r} is a run total and takes no stat "
                "or selector"
            )
        if direction(metric) == "none":
            raise GateError(
                f"--max-regression {expr!r}: {metric!r} has no better direction to regress in"
            )
    else:
        known = ", ".join(
            (
                *(d for d in DISTRIBUTION_METRICS if direction(d) != "none"),
                *(t for t in TOTALS if direction(t) != "none"),
            )
        )
        raise GateError(f"--max-regression {expr!r}: unknown metric {metric!r} (known: {known})")
    if unit == "ms" and not _in_ms(metric):
        raise GateError(f"--max-regression {expr!r}: {metric!r} is not in milliseconds")
    return RegressionGate(
        expr=expr.strip(),
        metric=metric,
        stat=stat,
        selector=selector,
        limit=float(m["limit"]),
        relative=unit == "%",
    )


def _value(summary: Mapping[str, Any], gate: RegressionGate) -> tuple[float | None, str | None]:
    """The gated number of ``summary`` and, when it is missing, why."""
    if gate.stat is None:
        value = total_value(summary, gate.metric)
        return (None, "not measured") if value is None else (float(value), None)
    metrics = summary.get("metrics", {})
    if gate.selector is not None:
        kind, name = gate.selector
        entry = summary.get("breakdown", {}).get(kind, {}).get(name)
        if entry is None:
            return None, f"no {kind} {name!r} in the summary's breakdown"
        metrics = entry.get("metrics", {})
    value = (metrics.get(gate.metric) or {}).get(gate.stat)
    return (None, "no samples") if value is None else (float(value), None)


def _judge(gate: RegressionGate, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    worse = b - a if direction(gate.metric, gate.stat or "value") == "lower" else a - b
    if not gate.relative:
        return worse
    if a == 0:
        return math.inf if worse > 0 else 0.0
    return 100.0 * worse / abs(a)


def evaluate_gates(
    gates: Iterable[RegressionGate], summary_a: Mapping[str, Any], summary_b: Mapping[str, Any]
) -> list[GateResult]:
    """Judge each gate on B against A (module docstring)."""
    results = []
    for gate in gates:
        a, note_a = _value(summary_a, gate)
        b, note_b = _value(summary_b, gate)
        worse = _judge(gate, a, b)
        note = None
        if worse is None:
            note = "; ".join(f"{side}: {n}" for side, n in (("A", note_a), ("B", note_b)) if n)
        results.append(
            GateResult(
                expr=gate.expr,
                a=a,
                b=b,
                worse=worse,
                limit=gate.limit,
                relative=gate.relative,
                ok=worse is not None and worse <= gate.limit,
                note=note,
                unit=gate.unit,
            )
        )
    return results
