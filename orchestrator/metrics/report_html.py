"""Self-contained offline HTML report of a run: inline CSS and inline SVG, no scripts, no
network references. Every string that comes from results or config is HTML-escaped.

Sections: run header and validity, thresholds, totals (and turns by status), metric
table, latency over time, active sessions over time, errors over time, histogram + CDF
per measured metric, the slowest sessions, the failed sessions with their reasons, and
the (redacted) config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from orchestrator import __version__
from orchestrator.metrics.records import SessionResult, TimelinePoint, TurnRecord
from orchestrator.metrics.stats import SUMMARY_STATS
from orchestrator.metrics.summary import metric_samples
from orchestrator.metrics.svg import (
    Series,
    bar_chart,
    cdf_chart,
    esc,
    histogram_chart,
    line_chart,
)
from orchestrator.metrics.text import fmt_number

__all__ = ["active_sessions_series", "render_report", "slowest_sessions"]

TIME_BINS = 30
SLOWEST_ROWS = 20
FAILED_ROWS = 200

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f5f5f5}
.ok{color:#15803d;font-weight:600}.fail{color:#b91c1c;font-weight:600}
.banner{padding:8px 12px;border-radius:4px;margin:8px 0}.bad{background:#fee2e2}.good{background:#dcfce7}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #e5e5e5}
.plot{fill:none;stroke:#999}.g{stroke:#eee}.t{font-size:13px;font-weight:600}
.xt{font-size:10px;text-anchor:middle}.yt{font-size:10px;text-anchor:end;dominant-baseline:middle}
.xl,.yl{font-size:11px;text-anchor:middle}.lg{font-size:11px}.nt{font-size:10px;text-anchor:end;fill:#666}
.empty{font-size:13px;fill:#888;text-anchor:middle}
td.reason{text-align:left;max-width:700px;word-break:break-word}
pre{background:#f8f8f8;padding:8px;overflow:auto}
"""


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] = ()
) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = f' class="{esc(classes[i])}"' if i < len(classes) and classes[i] else ""
            cells.append(f"<td{cls}>{esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def active_sessions_series(
    sessions: Sequence[SessionResult], timeline: Sequence[TimelinePoint] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(t_s, active)`` step points: from ``timeline`` snapshots when given, otherwise
    reconstructed from each session's ``planned_start_s`` (+1) and ``t_end_s`` (-1)."""
    if timeline:
        pts = sorted(timeline, key=lambda p: p.t_s)
        return (
            np.array([p.t_s for p in pts], dtype=np.float64),
            np.array([p.active for p in pts], dtype=np.float64),
        )
    events = sorted(
        [(s.planned_start_s, 1) for s in sessions] + [(s.t_end_s, -1) for s in sessions],
        key=lambda e: (e[0], e[1]),
    )
    if not events:
        return np.empty(0), np.empty(0)
    ts = np.array([0.0] + [t for t, _ in events])
    active = np.concatenate(([0.0], np.cumsum([d for _, d in events], dtype=np.float64)))
    return ts, active


def _percentile_line(
    ts: np.ndarray, values: np.ndarray, edges: np.ndarray, q: float
) -> tuple[np.ndarray, np.ndarray]:
    idx = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, len(edges) - 2)
    xs, ys = [], []
    for k in range(len(edges) - 1):
        sel = values[idx == k]
        if sel.size:
            xs.append((edges[k] + edges[k + 1]) / 2)
            ys.append(float(np.percentile(sel, q)))
    return np.array(xs), np.array(ys)


def _time_edges(t_max: float) -> np.ndarray:
    return np.linspace(0.0, max(t_max, 1e-3), TIME_BINS + 1)


#: Turn metrics drawn over time: (name, colour of the points, colour of the p95 line).
_OVER_TIME: tuple[tuple[str, str, str], ...] = (
    ("voice_to_voice_ms", "#2563eb", "#dc2626"),
    ("ttfb_ms", "#16a34a", "#9333ea"),
    ("ttfa_ms", "#d97706", "#0f766e"),
)


def _latency_over_time(turns: Sequence[TurnRecord], edges: np.ndarray) -> str:
    points, lines = [], []
    for name, color, p95_color in _OVER_TIME:
        pairs = [(t.t_end_s, getattr(t, name)) for t in turns if getattr(t, name) is not None]
        if not pairs:
            continue
        ts = np.array([p[0] for p in pairs], dtype=np.float64)
        vs = np.array([p[1] for p in pairs], dtype=np.float64)
        points.append(Series(name=name, xs=ts, ys=vs, color=color))
        px, py = _percentile_line(ts, vs, edges, 95)
        lines.append(Series(name=f"{name} p95", xs=px, ys=py, color=p95_color))
    return line_chart(
        title="Latency over time (turn end)",
        x_label="run time (s)",
        y_label="ms",
        points=points,
        lines=lines,
    )


def _errors_over_time(
    turns: Sequence[TurnRecord], sessions: Sequence[SessionResult], edges: np.ndarray
) -> str:
    err_t = [e.t_s if e.t_s is not None else t.t_end_s for t in turns for e in t.errors]
    failed_t = [s.t_end_s for s in sessions if s.status == "failed"]
    stacks = [
        Series(name="turn errors", xs=(), ys=np.histogram(err_t, bins=edges)[0], color="#ea580c"),
        Series(
            name="failed sessions", xs=(), ys=np.histogram(failed_t, bins=edges)[0], color="#b91c1c"
        ),
    ]
    return bar_chart(
        title="Errors over time",
        x_label="run time (s)",
        y_label="count",
        edges=edges,
        stacks=stacks,
    )


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


def render_report(
    summary: Mapping[str, Any],
    turns: Sequence[TurnRecord],
    sessions: Sequence[SessionResult],
    timeline: Sequence[TimelinePoint] | None = None,
) -> str:
    """The report as one HTML document string (see the module docstring). ``summary`` is
    :func:`~orchestrator.metrics.summary.build_summary`'s dict for the same records."""
    run = summary.get("run", {})
    totals = summary.get("totals", {})
    validity = summary.get("validity", {"valid": True, "reasons": []})
    cost = summary.get("cost", {})
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{esc('realtime-orchestrator report ' + str(run.get('name') or ''))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>realtime-orchestrator report</h1>",
    ]
    info = [[k, v if isinstance(v, str) else orjson.dumps(v).decode()] for k, v in run.items()]
    info.append(["model", str(cost.get("model"))])
    out.append(_table(["run", ""], info))
    if validity.get("valid", True):
        out.append('<div class="banner good">Load generator kept up: results valid.</div>')
    else:
        reasons = "".join(f"<li>{esc(r)}</li>" for r in validity.get("reasons", []))
        out.append(
            '<div class="banner bad"><b>Results not valid</b>: the load generator itself '
            f"fell behind.<ul>{reasons}</ul></div>"
        )

    out.append("<h2>Thresholds</h2>")
    thresholds = summary.get("thresholds", [])
    if thresholds:
        rows = [
            [
                "PASS" if t["ok"] else "FAIL",
                t["expr"],
                fmt_number(t.get("actual"), 3),
                t.get("note") or "",
            ]
            for t in thresholds
        ]
        head = "".join(f"<th>{h}</th>" for h in ("result", "threshold", "actual", "note"))
        body = "".join(
            f'<tr><td class="{"ok" if r[0] == "PASS" else "fail"}">{r[0]}</td>'
            + "".join(f"<td>{esc(c)}</td>" for c in r[1:])
            + "</tr>"
            for r in rows
        )
        out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    else:
        out.append("<p>No thresholds set.</p>")

    out.append("<h2>Totals</h2>")
    out.append(_table(["total", "value"], [[k, fmt_number(v, 4)] for k, v in totals.items()]))
    turn_status = summary.get("turns", {}).get("by_status", {})
    if turn_status:
        out.append(_table(["turn status", "turns"], list(turn_status.items())))
    out.append("<h2>Latency summary (ms)</h2>")
    out.append(
        _table(
            ["metric", *SUMMARY_STATS],
            [
                [name, *(fmt_number(stats.get(k)) for k in SUMMARY_STATS)]
                for name, stats in summary.get("metrics", {}).items()
            ],
        )
    )

    t_max = max([s.t_end_s for s in sessions] + [t.t_end_s for t in turns], default=0.0)
    edges = _time_edges(t_max)
    ts, active = active_sessions_series(sessions, timeline)
    out.append('<h2>Over time</h2><div class="charts">')
    out.append(_latency_over_time(turns, edges))
    out.append(
        line_chart(
            title="Active sessions",
            x_label="run time (s)",
            y_label="sessions",
            lines=[Series(name="active", xs=ts, ys=active, color="#0891b2")],
            step=True,
        )
    )
    out.append(_errors_over_time(turns, sessions, edges))
    out.append("</div>")

    out.append("<h2>Distributions</h2>")
    for name, values in metric_samples(turns, sessions).items():
        if values.size == 0:
            continue
        out.append(f'<h3>{esc(name)}</h3><div class="charts">')
        out.append(histogram_chart(values, title=f"{name} histogram", x_label="ms"))
        out.append(cdf_chart(values, title=f"{name} CDF", x_label="ms"))
        out.append("</div>")

    out.append("<h2>Slowest sessions</h2>")
    slow = slowest_sessions(turns, sessions)
    out.append(
        _table(
            ["session", "label", "status", "turns", "max voice_to_voice_ms", "max response_ms"],
            [
                [
                    r["session_id"],
                    r["label"] or "",
                    r["status"],
                    r["turns"],
                    fmt_number(r["max_voice_to_voice_ms"]),
                    fmt_number(r["max_response_ms"]),
                ]
                for r in slow
            ],
        )  # fmt: skip
        if slow
        else "<p>No turn latencies recorded.</p>"
    )

    failed = sorted((s for s in sessions if s.status == "failed"), key=lambda s: s.t_end_s)
    out.append(f"<h2>Failed sessions ({len(failed)})</h2>")
    if failed:
        reasons = summary.get("sessions", {}).get("failure_reasons", {})
        out.append(_table(["reason", "sessions"], list(reasons.items()), classes=("reason",)))
        shown = failed[:FAILED_ROWS]
        if len(failed) > len(shown):
            out.append(f"<p>First {len(shown)} of {len(failed)} shown.</p>")
        out.append(
            _table(
                ["session", "label", "attempt", "ended (s)", "reconnects", "reason"],
                [
                    [
                        s.session_id,
                        s.label or "",
                        s.attempt,
                        fmt_number(s.t_end_s, 3),
                        s.reconnects,
                        s.reason or "",
                    ]
                    for s in shown
                ],
                classes=("", "", "", "", "", "reason"),
            )  # fmt: skip
        )
    else:
        out.append("<p>None.</p>")

    out.append("<h2>Config</h2>")
    config = summary.get("config", {})
    out.append(
        f"<pre>{esc(orjson.dumps(config, option=orjson.OPT_INDENT_2, default=str).decode())}</pre>"
    )
    out.append(
        f"<p><small>realtime-orchestrator {esc(__version__)}; all charts are inline SVG."
        "</small></p></body></html>"
    )
    return "\n".join(out)
