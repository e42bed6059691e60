"""Plain-text rendering of summaries (terminal output, ``report`` without ``--html``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from orchestrator.metrics.stats import SUMMARY_STATS

__all__ = [
    "all_failed_warning",
    "breakdown_lines",
    "connection_line",
    "failure_reason_lines",
    "fmt_number",
    "format_table",
    "planned_sessions",
    "run_state_lines",
    "summary_text",
    "truncate",
]

#: How many failure reasons of each kind (sessions, turns) the text summary lists.
TOP_REASONS = 3
#: Longest failure reason printed in full; longer ones are cut with an ellipsis.
REASON_WIDTH = 200
#: The metrics of the per-scenario / per-label tables (p95 of each, when measured).
BREAKDOWN_METRICS: tuple[str, ...] = (
    "connect_ms",
    "voice_to_voice_ms",
    "ttfb_ms",
    "response_ms",
    "tool_roundtrip_ms",
)


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
    """The largest session and turn failure groups of ``summary`` (``failure_groups``:
    ``  COUNT x TYPE [CODE]: TEMPLATE``, or ``  COUNT x TEXT`` when every failure of the
    group said the same), or for a summary written before groups existed
    its most frequent ``sessions.failure_reasons`` / ``turns.failure_reasons`` (``  COUNT
    x REASON``), under a heading per kind; no lines when nothing failed."""
    out: list[str] = []
    groups = summary.get("failure_groups")
    for section, label in (("sessions", "session"), ("turns", "turn")):
        if groups is not None:
            reasons = _group_counts(g for g in groups if g.get("scope") == label)
        else:
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


def _group_counts(groups: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Failure counts by :func:`_group_text`, largest first: groups shown with the same
    text (e.g. one full text under two types) add up instead of hiding each other."""
    counts: dict[str, int] = {}
    for g in groups:
        text = _group_text(g)
        counts[text] = counts.get(text, 0) + int(g.get("count") or 0)
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _group_text(group: Mapping[str, Any]) -> str:
    """The group's one full text when all its failures said the same, else its type,
    code and template."""
    if group.get("distinct") == 1:
        return str(group.get("example"))
    code = f" [{group['code']}]" if group.get("code") else ""
    return f"{group.get('type')}{code}: {group.get('template')}"


def connection_line(summary: Mapping[str, Any]) -> str | None:
    """``connections: H handshakes, R refused (429: n), N reconnected, S restarts`` when
    anything beyond one handshake per session happened, else None. When connections
    failed before the handshake (TCP or TLS: ``connections.connect_failed``) the line
    starts ``A attempts, F failed to connect (TCP/TLS), H handshakes``; a summary written
    before that count existed says ``A attempts`` only (they were never all handshakes).
    ``H`` counts the attempts that did not fail before the handshake: a connect that timed
    out (``ConnectTimeout``) is among them, whatever stage it reached.
    ``reconnected``: successful reconnects (a failed reconnect attempt is an attempt)."""
    conn = summary.get("connections")
    if not conn:
        return None
    sessions = summary.get("totals", {}).get("sessions_total", 0)
    attempts = conn.get("attempts", 0)
    failed = conn.get("connect_failed")
    if not (failed or conn.get("refused") or conn.get("reconnects") or conn.get("restarts")) and (
        attempts <= sessions
    ):
        return None
    if failed is None:
        tried = f"{attempts} attempts"
    elif failed:
        tried = f"{attempts} attempts, {failed} failed to connect (TCP/TLS), "
        tried += f"{attempts - failed} handshakes"
    else:
        tried = f"{attempts} handshakes"
    by_status = ", ".join(f"{k}: {v}" for k, v in (conn.get("refused_by_status") or {}).items())
    refused = f"{conn.get('refused', 0)} refused" + (f" ({by_status})" if by_status else "")
    return (
        f"connections: {tried}, {refused}, "
        f"{conn.get('reconnects', 0)} reconnected, {conn.get('restarts', 0)} restarts"
    )


def planned_sessions(summary: Mapping[str, Any]) -> int | None:
    """How many sessions the run meant to start, when its config says so before the run
    (a closed load model's ``sessions``), else None (open models, older summaries)."""
    load = summary.get("config", {}).get("load") or {}
    sessions = load.get("sessions")
    if load.get("model") != "closed" or isinstance(sessions, bool) or not isinstance(sessions, int):
        return None
    return sessions


def run_state_lines(summary: Mapping[str, Any]) -> list[str]:
    """What a reader must know before trusting the numbers, from ``summary["run"]``: the
    run was interrupted (a stop signal, or an error that ended it early), aborted (an
    ``:abort`` threshold), never wrote its ``run_end`` line (crashed or still running),
    or its results file ended in a cut-off line; and then, when the plan is known
    (:func:`planned_sessions`) and larger, how many planned sessions never started (or,
    without ``run_end``, have no results). No lines for a run that ended as planned, such
    as a closed model whose ``duration_s`` ran out before its ``sessions`` did."""
    run = summary.get("run", {})
    out = []
    if run.get("interrupted"):
        out.append(
            "RUN INTERRUPTED: stopped before its plan ended (Ctrl-C, a stop signal or an error)"
        )
    aborted = run.get("aborted")
    if aborted:
        out.append(f"RUN ABORTED: {aborted.get('reason') or aborted.get('threshold')}")
    ended = run.get("ended")
    if ended:
        out.append(f"RUN DID NOT END: {ended}")
    if run.get("truncated"):
        out.append("RESULTS TRUNCATED: the last line of the results file was cut off and skipped")
    planned = planned_sessions(summary) if out else None
    recorded = summary.get("totals", {}).get("sessions_total", 0)
    if planned is not None and planned > recorded:
        if ended:
            out.append(
                f"sessions planned: {planned}; with results: {recorded}; "
                f"{planned - recorded} not started or not finished"
            )
        else:
            out.append(
                f"sessions planned: {planned}; started: {recorded}; "
                f"never started: {planned - recorded}"
            )
    return out


def breakdown_lines(summary: Mapping[str, Any]) -> list[str]:
    """A compact table per breakdown dimension of ``summary`` with more than one entry:
    per scenario (sessions, completed, failed) and per turn label (turns, failed), each
    with the p95 of :data:`BREAKDOWN_METRICS` measured in any row."""
    out: list[str] = []
    breakdown = summary.get("breakdown") or {}
    for key, counts in (
        ("scenario", ("sessions", "completed", "failed")),
        ("label", ("turns", "failed")),
    ):
        groups = breakdown.get(key) or {}
        if len(groups) < 2:
            continue
        shown = [
            m for m in BREAKDOWN_METRICS if any(m in g.get("metrics", {}) for g in groups.values())
        ]
        rows = [
            [
                name,
                *(str(g.get(c, 0)) for c in counts),
                *(fmt_number(g.get("metrics", {}).get(m, {}).get("p95")) for m in shown),
            ]
            for name, g in groups.items()
        ]
        headers = [key, *counts, *(f"{m.removesuffix('_ms')} p95" for m in shown)]
        out.append(format_table(headers, rows).rstrip())
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
    """Human-readable run summary: first how the run ended when not as planned
    (:func:`run_state_lines`: interrupted, aborted, not ended, truncated, planned sessions
    never started), then totals, connection counts (when anything failed, was refused,
    retried or restarted), the largest failure groups, metric table (only measured
    metrics), per-scenario / per-label tables (when there are several), validity, cost
    and threshold results."""
    totals = summary.get("totals", {})
    out = run_state_lines(summary)
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
    conn = connection_line(summary)
    if conn is not None:
        out.append(conn)
    out.extend(failure_reason_lines(summary))
    rows = [
        [name, *(fmt_number(stats.get(k)) for k in SUMMARY_STATS)]
        for name, stats in summary.get("metrics", {}).items()
        if stats.get("count")
    ]
    out.append(format_table(["metric", *SUMMARY_STATS], rows).rstrip())
    out.extend(breakdown_lines(summary))
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
