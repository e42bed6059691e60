"""Plain-text rendering of summaries (terminal output, ``report`` without ``--html``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.metrics.stats import SUMMARY_STATS

__all__ = [
    "all_failed_warning",
    "failure_reason_lines",
    "fmt_number",
    "format_table",
    "summary_text",
    "truncate",
]

#: How many failure reasons of each kind (sessions, turns) the text summary lists.
TOP_REASONS = 3
#: Longest failure reason printed in full; longer ones are cut with an ellipsis.
REASON_WIDTH = 200


def fmt_number(value: Any, digits: int = 1) -> str:
    """``-`` for ``None``, floats with ``digits`` decimals, other values with ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def truncate(text: str, width: int) -> str:
    """``text`` on one line, cut to at most ``width`` characters (ending in ``…``)."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    return line[: max(width - 1, 0)] + "…"


def failure_reason_lines(
    summary: Mapping[str, Any], *, top: int = TOP_REASONS, width: int = REASON_WIDTH
) -> list[str]:
    """The most frequent session and turn failure reasons of ``summary`` (its
    ``sessions.failure_reasons`` / ``turns.failure_reasons``, already redacted), as
    ``  COUNT x REASON`` lines under a heading per kind; no lines when nothing failed."""
    out: list[str] = []
    for section, label in (("sessions", "session"), ("turns", "turn")):
        reasons = summary.get(section, {}).get("failure_reasons") or {}
        if not reasons:
            continue
        shown = list(reasons.items())[:top]
        more = len(reasons) - len(shown)
        heading = f"{label} failure reasons"
        heading += f" (top {len(shown)} of {len(reasons)}):" if more > 0 else ":"
        out.append(heading)
        out.extend(f"  {count} x {truncate(str(reason), width)}" for reason, count in shown)
    return out


def all_failed_warning(summary: Mapping[str, Any], *, width: int = REASON_WIDTH) -> str | None:
    """``all N sessions failed: <top reason>`` when every session of ``summary`` failed
    (and there was at least one), else ``None``."""
    totals = summary.get("totals", {})
    total = totals.get("sessions_total", 0)
    if not total or totals.get("sessions_failed", 0) != total:
        return None
    reasons = summary.get("sessions", {}).get("failure_reasons") or {}
    top = truncate(str(next(iter(reasons))), width) if reasons else "(no reason recorded)"
    return f"all {total} sessions failed: {top}"


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
    """Human-readable run summary: totals, the top failure reasons, metric table (only
    measured metrics), validity, cost and threshold results."""
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
    if totals.get("held_starts") is not None or totals.get("rate_limited_turns"):
        out.append(
            "rate limits: {held} held starts; {turns} rate-limited turns in {sessions} "
            "sessions".format(
                held=totals.get("held_starts") or 0,
                turns=totals.get("rate_limited_turns", 0),
                sessions=totals.get("rate_limited_sessions", 0),
            )
        )
    out.extend(failure_reason_lines(summary))
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
    aborted = summary.get("run", {}).get("aborted")
    if aborted:
        out.append(f"RUN ABORTED: {aborted.get('reason') or aborted.get('threshold')}")
    return "\n".join(out) + "\n"
