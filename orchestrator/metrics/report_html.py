"""Self-contained offline HTML report of a run: inline CSS and inline SVG, no scripts, no
network references. Every string that comes from results or config is HTML-escaped.

It leads with what matters. Sections, in order (element ids in brackets):

1. header cards [``overview``]: verdict (results valid or not, with the reasons),
   thresholds (pass/fail), sessions completed and failed, turns, handshake attempts and
   refusals (when recorded), the p50/p95/p99 of the main metrics; the threshold table
   [``thresholds``] and every run total, collapsed
   (:mod:`~orchestrator.metrics.report_cards`);
2. failures [``failures``]: the failure groups (type, code, reason template, count,
   example), the turns by status, then the failed sessions, collapsed
   (:mod:`~orchestrator.metrics.report_tables`);
3. by scenario and by turn label [``breakdown``];
4. over time [``over-time``]: latency percentiles, active sessions, starts/s, failed
   sessions by cause, turn errors (:mod:`~orchestrator.metrics.report_time`);
5. latency summary table [``metrics``] and distributions [``distributions``]: histogram
   and CDF per measured metric;
6. the slowest sessions [``slowest``];
7. load shape and faults [``load``] as tables, the full config collapsed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator import __version__
from orchestrator.metrics.records import SessionResult, TimelinePoint, TurnRecord
from orchestrator.metrics.report_cards import CARD_CSS, overview_header
from orchestrator.metrics.report_tables import (
    breakdown_section,
    failures_section,
    html_table,
    load_section,
)
from orchestrator.metrics.report_time import active_sessions_series, over_time_charts
from orchestrator.metrics.stats import SUMMARY_STATS
from orchestrator.metrics.summary import metric_samples
from orchestrator.metrics.svg import cdf_chart, esc, histogram_chart
from orchestrator.metrics.text import fmt_number

__all__ = ["SECTION_IDS", "active_sessions_series", "render_report", "slowest_sessions"]

SLOWEST_ROWS = 20
#: The ids of the report's sections, in the order they appear.
SECTION_IDS: tuple[str, ...] = (
    "overview",
    "failures",
    "breakdown",
    "over-time",
    "metrics",
    "distributions",
    "slowest",
    "load",
)

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f5f5f5}
.ok{color:#15803d;font-weight:600}.fail{color:#b91c1c;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #e5e5e5}
.plot{fill:none;stroke:#999}.g{stroke:#eee}.t{font-size:13px;font-weight:600}
.xt{font-size:10px;text-anchor:middle}.yt{font-size:10px;text-anchor:end;dominant-baseline:middle}
.xl,.yl{font-size:11px;text-anchor:middle}.lg{font-size:11px}
.nt{font-size:10px;text-anchor:end;fill:#666}
.empty{font-size:13px;fill:#888;text-anchor:middle}
td.reason{text-align:left;max-width:700px;word-break:break-word}
details{margin:8px 0}summary{cursor:pointer}
"""


def slowest_sessions(
    turns: Sequence[TurnRecord], sessions: Sequence[SessionResult], n: int = SLOWEST_ROWS
) -> list[dict[str, Any]]:
    """The ``n`` sessions with the highest max ``voice_to_voice_ms`` (or max
    ``response_ms`` for sessions without voice-to-voice samples), slowest first."""
    per: dict[str, dict[str, Any]] = {}
    for t in turns:
        row = per.setdefault(
            t.session_id, {"session_id": t.session_id, "label": t.label, "turns": 0,
                           "max_voice_to_voice_ms": None, "max_response_ms": None}
        )  # fmt: skip
        row["turns"] += 1
        for key, value in (
            ("max_voice_to_voice_ms", t.voice_to_voice_ms),
            ("max_response_ms", t.response_ms),
        ):
            if value is not None and (row[key] is None or value > row[key]):
                row[key] = value
    status = {s.session_id: s.status for s in sessions}
    for row in per.values():
        row["status"] = status.get(row["session_id"], "(running)")
        row["key"] = (
            row["max_voice_to_voice_ms"]
            if row["max_voice_to_voice_ms"] is not None
            else row["max_response_ms"]
        )
    ranked = sorted((r for r in per.values() if r["key"] is not None), key=lambda r: -r["key"])
    return ranked[:n]


def _distributions(
    summary: Mapping[str, Any], turns: Sequence[TurnRecord], sessions: Sequence[SessionResult]
) -> list[str]:
    out = ['<section id="metrics">', "<h2>Latency summary (ms)</h2>"]
    out.append(
        html_table(
            ["metric", *SUMMARY_STATS],
            [
                [name, *(fmt_number(stats.get(k)) for k in SUMMARY_STATS)]
                for name, stats in summary.get("metrics", {}).items()
                if stats.get("count")
            ],
        )
    )
    out.append("</section>")
    out.append('<section id="distributions"><h2>Distributions</h2>')
    for name, values in metric_samples(turns, sessions).items():
        if values.size == 0:
            continue
        out.append(f'<h3>{esc(name)}</h3><div class="charts">')
        out.append(histogram_chart(values, title=f"{name} histogram", x_label="ms"))
        out.append(cdf_chart(values, title=f"{name} CDF", x_label="ms"))
        out.append("</div>")
    out.append("</section>")
    return out


def _slowest(turns: Sequence[TurnRecord], sessions: Sequence[SessionResult]) -> str:
    slow = slowest_sessions(turns, sessions)
    if not slow:
        table = "<p>No turn latencies recorded.</p>"
    else:
        table = html_table(
            ["session", "label", "status", "turns", "max voice_to_voice_ms", "max response_ms"],
            [
                [r["session_id"], r["label"] or "", r["status"], r["turns"],
                 fmt_number(r["max_voice_to_voice_ms"]), fmt_number(r["max_response_ms"])]
                for r in slow
            ],
        )  # fmt: skip
    return f'<section id="slowest"><h2>Slowest sessions</h2>{table}</section>'


def render_report(
    summary: Mapping[str, Any],
    turns: Sequence[TurnRecord],
    sessions: Sequence[SessionResult],
    timeline: Sequence[TimelinePoint] | None = None,
) -> str:
    """The report as one HTML document string (sections: the module docstring and
    :data:`SECTION_IDS`). ``summary`` is
    :func:`~orchestrator.metrics.summary.build_summary`'s dict for the same records."""
    run = summary.get("run", {})
    title = "realtime-orchestrator report " + str(run.get("name") or "")
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{esc(title.strip())}</title>",
        f"<style>{_CSS}{CARD_CSS}</style></head><body>",
        overview_header(summary, title.strip()),
        failures_section(summary, sessions),
        breakdown_section(summary),
        '<section id="over-time"><h2>Over time</h2><div class="charts">',
        *over_time_charts(turns, sessions, timeline),
        "</div></section>",
        *_distributions(summary, turns, sessions),
        _slowest(turns, sessions),
        load_section(summary),
        f"<p><small>realtime-orchestrator {esc(__version__)}; all charts are inline SVG."
        "</small></p></body></html>",
    ]
    return "\n".join(out)
