"""HTML tables of the run report: failures and their groups, the per-scenario and
per-label breakdown, and the load shape / faults / config as key-value tables.

Every function returns an HTML fragment; every value from results or config is escaped.
Summary keys that an older summary lacks (``failure_groups``, ``breakdown``) degrade to
what the summary has, or to a sentence saying what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from orchestrator.metrics.compare import MAIN_METRICS, flatten_dotted
from orchestrator.metrics.records import SessionResult
from orchestrator.metrics.summary import last_attempts
from orchestrator.metrics.svg import esc
from orchestrator.metrics.text import fmt_number

__all__ = [
    "FAILED_ROWS",
    "breakdown_section",
    "failures_section",
    "html_table",
    "key_value_rows",
    "load_section",
]

#: Failed sessions listed one by one (the groups above them count all).
FAILED_ROWS = 200
#: Stats of the main metrics shown per scenario and per label.
_BREAKDOWN_STATS: tuple[str, ...] = ("p50", "p95")


def html_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] = ()
) -> str:
    """A ``<table>``; ``classes[i]`` is the CSS class of column ``i``'s cells."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = f' class="{esc(classes[i])}"' if i < len(classes) and classes[i] else ""
            cells.append(f"<td{cls}>{esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _value_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return fmt_number(value, 3).rstrip("0").rstrip(".")
    return orjson.dumps(value, default=str).decode()


def key_value_rows(data: Mapping[str, Any], *, skip_off: bool = False) -> list[list[str]]:
    """``[dotted.key, value]`` rows of a nested dict; ``skip_off`` leaves out keys that
    are off (``None``, ``False``, 0, empty)."""
    return [
        [key, _value_text(value)]
        for key, value in flatten_dotted(data)
        if not (skip_off and (value is None or value is False or value == 0 or value == []))
    ]


def _failure_groups(groups: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [g.get("count", 0), g.get("scope", ""), g.get("type", ""), g.get("code") or "",
         g.get("template", ""), g.get("example", "")]
        for g in groups
    ]  # fmt: skip
    return html_table(
        ["count", "scope", "type", "code", "reason (ids and transcripts stripped)", "example"],
        rows,
        classes=("", "", "", "", "reason", "reason"),
    )


def _reason_tables(summary: Mapping[str, Any]) -> list[str]:
    out = []
    for section, label in (("sessions", "session"), ("turns", "turn")):
        reasons = summary.get(section, {}).get("failure_reasons") or {}
        if reasons:
            out.append(
                html_table(
                    ["count", f"{label} failure reason"],
                    [[count, reason] for reason, count in reasons.items()],
                    classes=("", "reason"),
                )
            )
    return out


def failures_section(summary: Mapping[str, Any], sessions: Sequence[SessionResult]) -> str:
    """``<section id="failures">``: failure groups (``summary["failure_groups"]``, else
    the summary's top failure reasons), the turns by status, then the failed sessions one
    by one (collapsed; their last attempts: a failed attempt that was restarted is not a
    failed session)."""
    totals = summary.get("totals", {})
    # a session counts once, by its last attempt (as the summary's ``sessions_failed``)
    failed = sorted(
        (s for s in last_attempts(sessions) if s.status == "failed"), key=lambda s: s.t_end_s
    )
    n_sessions = totals.get("sessions_failed", len(failed))
    n_turns = totals.get("turns_failed", 0)
    out = [
        '<section id="failures">',
        f"<h2>Failures: {esc(n_sessions)} sessions, {esc(n_turns)} turns</h2>",
    ]
    groups = summary.get("failure_groups")
    if groups:
        out.append(_failure_groups(groups))
    else:
        out.extend(_reason_tables(summary))
    if not (groups or failed or n_turns):
        out.append("<p>No failures.</p>")
    turn_status = summary.get("turns", {}).get("by_status", {})
    if turn_status:
        out.append(html_table(["turn status", "turns"], list(turn_status.items())))
    if failed:
        shown = failed[:FAILED_ROWS]
        more = f", first {len(shown)} shown" if len(failed) > len(shown) else ""
        out.append(f"<details><summary>Failed sessions ({len(failed)}{more})</summary>")
        out.append(
            html_table(
                ["session", "scenario", "label", "attempt", "ended (s)", "reconnects", "reason"],
                [
                    [
                        s.session_id,
                        s.scenario or "",
                        s.label or "",
                        s.attempt,
                        fmt_number(s.t_end_s, 3),
                        s.reconnects,
                        s.reason or "",
                    ]
                    for s in shown
                ],
                classes=("", "", "", "", "", "", "reason"),
            )  # fmt: skip
        )
        out.append("</details>")
    out.append("</section>")
    return "\n".join(out)


def _metric_columns(entries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Main metrics with samples in any entry."""
    return [
        m
        for m in MAIN_METRICS
        if any((e.get("metrics", {}).get(m) or {}).get("count") for e in entries.values())
    ]


def _breakdown_table(
    entries: Mapping[str, Mapping[str, Any]], first: str, counts: Sequence[tuple[str, str]]
) -> str:
    metrics = _metric_columns(entries)
    headers = [first, *(h for _, h in counts)]
    headers += [f"{m} {stat}" for m in metrics for stat in _BREAKDOWN_STATS]
    rows = []
    for name, entry in entries.items():
        row: list[Any] = [name, *(entry.get(key, "-") for key, _ in counts)]
        for m in metrics:
            stats = entry.get("metrics", {}).get(m) or {}
            row.extend(fmt_number(stats.get(stat)) for stat in _BREAKDOWN_STATS)
        rows.append(row)
    return html_table(headers, rows)


def breakdown_section(summary: Mapping[str, Any]) -> str:
    """``<section id="breakdown">``: one table per scenario and one per turn label
    (``summary["breakdown"]``), counts and the main metrics' p50/p95."""
    breakdown = summary.get("breakdown") or {}
    out = ['<section id="breakdown">', "<h2>By scenario and by turn label</h2>"]
    scenarios = breakdown.get("scenario") or {}
    labels = breakdown.get("label") or {}
    if scenarios:
        out.append("<h3>Scenarios</h3>")
        counts = [("sessions", "sessions"), ("completed", "completed"), ("failed", "failed")]
        out.append(_breakdown_table(scenarios, "scenario", counts))
    if labels:
        out.append("<h3>Turn labels</h3>")
        out.append(_breakdown_table(labels, "label", [("turns", "turns"), ("failed", "failed")]))
    if not (scenarios or labels):
        out.append("<p>This summary has no per-scenario or per-label breakdown.</p>")
    out.append("</section>")
    return "\n".join(out)


def load_section(summary: Mapping[str, Any]) -> str:
    """``<section id="load">``: the load shape (``config.load``), the server faults that
    are on (``config.server.faults``), and the whole (redacted) config, collapsed, as
    dotted key-value tables."""
    config = summary.get("config") or {}
    out = ['<section id="load">', "<h2>Load shape and faults</h2>"]
    load = config.get("load")
    if isinstance(load, Mapping) and load:
        out.append(html_table(["load", "value"], key_value_rows(load)))
    else:
        out.append("<p>No load shape in the config.</p>")
    server = config.get("server")
    faults = server.get("faults") if isinstance(server, Mapping) else None
    if isinstance(faults, Mapping):
        rows = key_value_rows(faults, skip_off=True)
        out.append(html_table(["fault", "value"], rows) if rows else "<p>No faults injected.</p>")
    if config:
        out.append("<details><summary>Full config</summary>")
        out.append(html_table(["config", "value"], key_value_rows(config)))
        out.append("</details>")
    out.append("</section>")
    return "\n".join(out)
