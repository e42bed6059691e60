"""The header of the run report: what matters at a glance, as cards.

``<header id="overview">``: the run line, then cards for the verdict (results valid or
not, with the reasons), the thresholds (pass/fail, the failed expressions), sessions
(completed, failed, cancelled), turns, connections (when the summary has
``connections``), and the p50/p95/p99 of each main metric measured; then the threshold
table (``id="thresholds"``) when thresholds were set, and every run total (collapsed).
Pure HTML from the summary dict;
every value is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from orchestrator.metrics.compare import MAIN_METRICS
from orchestrator.metrics.svg import esc
from orchestrator.metrics.text import fmt_number

__all__ = ["CARD_CSS", "overview_header"]

CARD_CSS = """
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:150px}
.card h3{margin:0 0 4px;font-size:12px;color:#555;font-weight:600;text-transform:uppercase}
.card .big{font-size:20px;font-weight:700}.card ul{margin:4px 0;padding-left:18px}
.card.bad{border-color:#b91c1c;background:#fef2f2}
.card.good{border-color:#15803d;background:#f0fdf4}
.card small{color:#555}
"""


def _card(
    title: str, big: str, lines: Sequence[str] = (), tone: str = "", items: Iterable[Any] = ()
) -> str:
    cls = f"card {tone}".strip()
    body = "".join(f"<div><small>{esc(line)}</small></div>" for line in lines)
    listed = "".join(f"<li>{esc(i)}</li>" for i in items)
    return (
        f'<div class="{cls}"><h3>{esc(title)}</h3><div class="big">{esc(big)}</div>{body}'
        + (f"<ul>{listed}</ul>" if listed else "")
        + "</div>"
    )


def _verdict_card(summary: Mapping[str, Any]) -> str:
    validity = summary.get("validity") or {"valid": True, "reasons": []}
    if validity.get("valid", True):
        return _card("verdict", "valid", ["the load generator kept up"], "good")
    return _card(
        "verdict", "NOT valid", ["Results not valid: the load generator itself fell behind"],
        "bad",
        items=validity.get("reasons", ()),
    )  # fmt: skip


def _thresholds_card(summary: Mapping[str, Any]) -> str:
    thresholds = summary.get("thresholds") or []
    if not thresholds:
        return _card("thresholds", "none set")
    failed = [t["expr"] for t in thresholds if not t.get("ok")]
    if failed:
        return _card(
            "thresholds", f"FAIL {len(failed)} of {len(thresholds)}", tone="bad", items=failed
        )
    return _card("thresholds", f"PASS {len(thresholds)} of {len(thresholds)}", tone="good")


def _sessions_card(totals: Mapping[str, Any]) -> str:
    total = totals.get("sessions_total", 0)
    failed = totals.get("sessions_failed", 0)
    lines = [f"failed {failed}", f"cancelled {totals.get('sessions_cancelled', 0)}"]
    if totals.get("dropped_starts"):
        lines.append(f"dropped starts {totals['dropped_starts']}")
    return _card(
        "sessions completed",
        f"{totals.get('sessions_completed', 0)} / {total}",
        lines,
        "bad" if failed else "good",
    )


def _turns_card(totals: Mapping[str, Any]) -> str:
    failed = totals.get("turns_failed", 0)
    rate = totals.get("turn_error_rate")
    lines = [f"failed {failed}" + (f" ({100 * rate:.1f} %)" if rate else "")]
    return _card("turns", str(totals.get("turns_total", 0)), lines, "bad" if failed else "")


def _connections_card(connections: Mapping[str, Any]) -> str:
    refused = connections.get("refused", 0)
    by_status = connections.get("refused_by_status") or {}
    lines = [f"refused {refused}"]
    lines += [f"  HTTP {status}: {n}" for status, n in by_status.items()]
    lines += [f"reconnects {connections.get('reconnects', 0)}",
              f"restarts {connections.get('restarts', 0)}"]  # fmt: skip
    return _card(
        "connection attempts", str(connections.get("attempts", 0)), lines, "bad" if refused else ""
    )


def _metric_card(name: str, stats: Mapping[str, Any]) -> str:
    big = " / ".join(fmt_number(stats.get(k), 0) for k in ("p50", "p95", "p99"))
    return _card(name, big, [f"p50 / p95 / p99 ms, n={stats.get('count', 0)}"])


def _threshold_table(thresholds: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("result", "threshold", "actual", "note"))
    body = "".join(
        f'<tr><td class="{"ok" if t["ok"] else "fail"}">{"PASS" if t["ok"] else "FAIL"}</td>'
        f"<td>{esc(t['expr'])}</td><td>{esc(fmt_number(t.get('actual'), 3))}</td>"
        f"<td>{esc(t.get('note') or '')}</td></tr>"
        for t in thresholds
    )
    return f'<table id="thresholds"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def overview_header(summary: Mapping[str, Any], title: str) -> str:
    """The report's ``<header id="overview">`` (module docstring)."""
    run = summary.get("run", {})
    totals = summary.get("totals", {})
    metrics = summary.get("metrics", {})
    facts = [f"{key} {run[key]}" for key in ("name", "started_at", "duration_s") if run.get(key)]
    model = (summary.get("cost") or {}).get("model")
    if model:
        facts.append(f"model {model}")
    cards = [_verdict_card(summary), _thresholds_card(summary), _sessions_card(totals),
             _turns_card(totals)]  # fmt: skip
    connections = summary.get("connections")
    if connections:
        cards.append(_connections_card(connections))
    cards += [
        _metric_card(name, metrics[name])
        for name in MAIN_METRICS
        if (metrics.get(name) or {}).get("count")
    ]
    out = [
        '<header id="overview">',
        f"<h1>{esc(title)}</h1>",
        f"<p>{esc(' · '.join(facts))}</p>",
        f'<div class="cards">{"".join(cards)}</div>',
    ]
    thresholds = summary.get("thresholds") or []
    if thresholds:
        out.append(_threshold_table(thresholds))
    if totals:
        rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{esc(fmt_number(v, 4))}</td></tr>" for k, v in totals.items()
        )
        out.append(
            "<details><summary>All run totals</summary><table><thead><tr><th>total</th>"
            f"<th>value</th></tr></thead><tbody>{rows}</tbody></table></details>"
        )
    out.append("</header>")
    return "\n".join(out)
