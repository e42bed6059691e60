"""Plain-text rendering of summaries (terminal output, ``report`` without ``--html``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.metrics.stats import SUMMARY_STATS

__all__ = ["fmt_number", "format_table", "summary_text"]


def fmt_number(value: Any, digits: int = 1) -> str:
    """``-`` for ``None``, floats with ``digits`` decimals, other values with ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A monospace table: first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)]) + "\n"


def summary_text(summary: Mapping[str, Any]) -> str:
    """Human-readable run summary: totals, metric table (only measured metrics),
    validity, cost and threshold results."""
    totals = summary.get("totals", {})
    out = []
    out.append(
        "sessions: {total} ({completed} completed, {failed} failed, {cancelled} cancelled); "
        "turns: {turns} ({tfailed} failed); late starts: {late}; dropped starts: {dropped}".format(
            total=totals.get("sessions_total", 0),
            completed=totals.get("sessions_completed", 0),
            failed=totals.get("sessions_failed", 0),
            cancelled=totals.get("sessions_cancelled", 0),
            turns=totals.get("turns_total", 0),
            tfailed=totals.get("turns_failed", 0),
            late=totals.get("late_starts", 0),
            dropped=totals.get("dropped_starts", 0),
        )
    )
    rows = [
        [name, *(fmt_number(stats.get(k)) for k in SUMMARY_STATS)]
        for name, stats in summary.get("metrics", {}).items()
        if stats.get("count")
    ]
    out.append(format_table(["metric", *SUMMARY_STATS], rows).rstrip())
    validity = summary.get("validity", {})
    if validity and not validity.get("valid", True):
        out.append("RESULTS NOT VALID: " + "; ".join(validity.get("reasons", [])))
    cost = summary.get("cost", {})
    if cost:
        usd = cost.get("usd")
        out.append(
            f"estimated cost: ${usd:.4f} ({cost.get('model')})"
            if usd is not None
            else f"estimated cost: n/a ({cost.get('note')})"
        )
    for t in summary.get("thresholds", []):
        mark = "PASS" if t["ok"] else "FAIL"
        out.append(f"{mark}  {t['expr']}  (actual {fmt_number(t.get('actual'), 3)})")
    return "\n".join(out) + "\n"
