"""Output of ``report --compare A B``: text, Markdown (pull-request comments) and JSON.

Layout (text and Markdown): the verdict line and every failed gate/threshold first;
then (unless quiet) all gates and thresholds, the changes beyond noise (one line per
metric: its verdict and the stats that changed; in text the stats wrap to stay within
:data:`TEXT_WIDTH` columns), and the config keys that differ. Then
the metrics measured in either run, main metrics first: text shows one row per metric
with its count and p50/p95/p99 (``A -> B``, the change marked as noise or as
worse/better) and the run totals that are not 0 in both runs; Markdown has one table per
metric with every stat and its noise band, collapsed in ``<details>``. JSON holds all
of it as data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import orjson

from orchestrator.metrics.compare import ABSENT, CompareRow, compare, config_diff
from orchestrator.metrics.compare_gates import GateResult, RegressionGate, evaluate_gates
from orchestrator.metrics.text import format_table
from orchestrator.metrics.thresholds import Threshold, ThresholdResult, evaluate_summary

__all__ = [
    "Comparison",
    "build_comparison",
    "comparison_json",
    "render_markdown",
    "render_text",
    "verdict_line",
]

_ROW_HEADERS = ("stat", "A", "B", "delta", "delta %", "noise ±", "verdict")
_CHANGED_HEADERS = ("metric", "verdict", "beyond noise: stat change (A -> B for totals)")
TOTALS_GROUP = "run totals"
#: Widest line of the text list of changes beyond noise (an 80-column terminal): a
#: metric's stat changes wrap under their column (at least :data:`_MIN_CHANGE_WIDTH`).
TEXT_WIDTH = 80
_MIN_CHANGE_WIDTH = 24
#: How a stat that changed beyond noise is marked in a metric with mixed verdicts:
#: ``changed`` when it has no better direction (a ``count``, ``audio_out_ms``).
_CHANGE_WORDS = {"regressed": "worse", "improved": "better", "changed": "changed"}


@attrs.frozen(kw_only=True)
class Comparison:
    """Everything ``report --compare`` says about B against A. ``ok``: every gate and
    every threshold (judged on B) passed."""

    label_a: str
    label_b: str
    rows: list[CompareRow]
    gates: list[GateResult]
    thresholds: list[ThresholdResult]
    config: list[tuple[str, Any, Any]]

    @property
    def ok(self) -> bool:
        return all(g.ok for g in self.gates) and all(t.ok for t in self.thresholds)

    @property
    def changed(self) -> list[CompareRow]:
        """Rows beyond noise, regressions first."""
        order = {"regressed": 0, "changed": 1, "improved": 2}
        return sorted((r for r in self.rows if r.beyond_noise), key=lambda r: order[r.verdict])


def build_comparison(
    summary_a: Mapping[str, Any],
    summary_b: Mapping[str, Any],
    *,
    label_a: str = "A",
    label_b: str = "B",
    gates: Iterable[RegressionGate] = (),
    thresholds: Iterable[str | Threshold] = (),
) -> Comparison:
    """Compare B against A, judge ``gates`` and judge ``thresholds`` on B. Raises
    :class:`~orchestrator.metrics.thresholds.ThresholdError` for a threshold a stored
    summary cannot answer."""
    return Comparison(
        label_a=label_a,
        label_b=label_b,
        rows=compare(summary_a, summary_b),
        gates=evaluate_gates(gates, summary_a, summary_b),
        thresholds=evaluate_summary(thresholds, summary_b),
        config=config_diff(summary_a.get("config", {}), summary_b.get("config", {})),
    )


def _num(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    plus = "+" if sign and value > 0 else ""
    if value.is_integer():
        return f"{plus}{int(value)}"
    return f"{plus}{value:.1f}" if abs(value) >= 10 else f"{plus}{value:.4g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def _config_value(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()


def _gate_line(g: GateResult) -> str:
    if g.worse is None:
        detail = g.note or "not measured"
    else:
        unit = f" {g.unit}" if g.unit else ""
        if g.worse == float("inf"):
            amount = "infinitely worse (A was 0)"
        else:
            size = f"{abs(g.worse):.1f}%" if g.relative else f"{_num(abs(g.worse))}{unit}"
            amount = f"{size} {'better' if g.worse < 0 else 'worse'}"
        limit = f"{_num(g.limit)}%" if g.relative else f"{_num(g.limit)}{unit}"
        detail = f"{amount} ({_num(g.a)} -> {_num(g.b)}{unit}), limit {limit} worse"
    return f"{'PASS' if g.ok else 'FAIL'} gate {g.expr}: {detail}"


def _threshold_line(t: ThresholdResult) -> str:
    actual = _num(t.actual) if t.actual is not None else f"- ({t.note})"
    return f"{'PASS' if t.ok else 'FAIL'} threshold on B {t.expr}: {actual}"


def verdict_line(c: Comparison) -> str:
    """``verdict: PASS|FAIL`` with the number of metrics (and run totals) that have a stat
    regressed / improved beyond noise, and the passed checks."""
    regressed = len({r.metric for r in c.rows if r.verdict == "regressed"})
    improved = len({r.metric for r in c.rows if r.verdict == "improved"})
    parts = [f"metrics beyond noise: {regressed} regressed, {improved} improved"]
    if c.gates:
        parts.append(f"gates {sum(g.ok for g in c.gates)}/{len(c.gates)} passed")
    if c.thresholds:
        parts.append(
            f"thresholds on B {sum(t.ok for t in c.thresholds)}/{len(c.thresholds)} passed"
        )
    if not c.gates and not c.thresholds:
        parts.append("no gates or thresholds given")
    return f"verdict: {'PASS' if c.ok else 'FAIL'} ({'; '.join(parts)})"


def _failure_lines(c: Comparison) -> list[str]:
    return [_gate_line(g) for g in c.gates if not g.ok] + [
        _threshold_line(t) for t in c.thresholds if not t.ok
    ]


def _change(r: CompareRow, mixed: bool) -> str:
    if r.stat == "value":
        text = f"{_num(r.a)} -> {_num(r.b)}"
    else:
        amount = _pct(r.delta_pct) if r.delta_pct is not None else _num(r.delta, sign=True)
        text = f"{r.stat} {amount}"
    return f"{text} ({_CHANGE_WORDS[r.verdict]})" if mixed else text


def _changed_items(c: Comparison) -> list[tuple[str, str, list[str]]]:
    """``(metric, verdict, changes)`` per metric (or run total) with a change beyond
    noise; verdict ``mixed`` when its stats' verdicts differ (each change then says
    ``worse``, ``better`` or, without a better direction, ``changed``); regressions
    first, then in metric order."""
    groups: dict[str, list[CompareRow]] = {}
    for r in c.rows:
        if r.beyond_noise:
            groups.setdefault(r.metric, []).append(r)
    out = []
    for metric, rows in groups.items():
        verdicts = {r.verdict for r in rows}
        verdict = verdicts.pop() if len(verdicts) == 1 else "mixed"
        out.append((metric, verdict, [_change(r, verdict == "mixed") for r in rows]))
    order = {"regressed": 0, "mixed": 1, "changed": 2, "improved": 3}
    return sorted(out, key=lambda item: order[item[1]])


def _changed_groups(c: Comparison) -> list[list[str]]:
    """:func:`_changed_items` as table rows (the changes joined on one line)."""
    return [[metric, verdict, ", ".join(changes)] for metric, verdict, changes in _changed_items(c)]


def _wrap_changes(changes: Sequence[str], width: int) -> list[str]:
    """``changes`` joined with ``", "`` into lines of at most ``width`` characters (a
    change is never split; one longer than ``width`` gets a line of its own)."""
    lines: list[str] = []
    line = ""
    for change in changes:
        if line and len(line) + len(", ") + len(change) + len(",") > width:
            lines.append(line + ",")
            line = change
        else:
            line = f"{line}, {change}" if line else change
    return [*lines, line]


def _changed_text(items: Sequence[tuple[str, str, list[str]]], width: int = TEXT_WIDTH) -> str:
    """The text table of :func:`_changed_items`, indented by two, its last column
    wrapped so that lines stay within ``width`` (unless the metric names alone are
    wider than ``width - _MIN_CHANGE_WIDTH``)."""
    head = ("metric", "verdict", "stat change (A -> B for totals)")
    w0 = max(len(head[0]), *(len(item[0]) for item in items))
    w1 = max(len(head[1]), *(len(item[1]) for item in items))
    lead = 2 + w0 + 2 + w1 + 2
    room = max(width - lead, _MIN_CHANGE_WIDTH)
    lines = [
        f"  {head[0]:<{w0}}  {head[1]:<{w1}}  {head[2]}",
        f"  {'-' * w0}  {'-' * w1}  {'-' * min(room, len(head[2]))}",
    ]
    for metric, verdict, changes in items:
        first, *rest = _wrap_changes(changes, room)
        lines.append(f"  {metric:<{w0}}  {verdict:<{w1}}  {first}")
        lines.extend(" " * lead + line for line in rest)
    return "\n".join(lines) + "\n"


def _cells(r: CompareRow) -> list[str]:
    return [_num(r.a), _num(r.b), _num(r.delta, sign=True), _pct(r.delta_pct)]


def _groups(rows: Sequence[CompareRow]) -> dict[str, list[CompareRow]]:
    groups: dict[str, list[CompareRow]] = {}
    for r in rows:
        groups.setdefault(TOTALS_GROUP if r.stat == "value" else r.metric, []).append(r)
    return groups


def _group_rows(group: str, rows: Sequence[CompareRow]) -> list[list[str]]:
    return [
        [r.metric if group == TOTALS_GROUP else r.stat, *_cells(r), _num(r.noise), r.verdict]
        for r in rows
    ]


def _group_title(group: str, rows: Sequence[CompareRow]) -> str:
    count = next((r for r in rows if r.stat == "count"), None)
    if count is None:
        return group
    return f"{group} (n {_num(count.a)} -> {_num(count.b)})"


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


def render_text(c: Comparison, *, quiet: bool = False) -> str:
    """Plain text (module docstring); ``quiet``: only the verdict line and failures."""
    out = [verdict_line(c), *_failure_lines(c)]
    if quiet:
        return "\n".join(out) + "\n"
    out[:0] = [f"A = {c.label_a}", f"B = {c.label_b}"]
    text = "\n".join(out) + "\n"
    if c.gates or c.thresholds:
        checks = [_gate_line(g) for g in c.gates] + [_threshold_line(t) for t in c.thresholds]
        text += "\nchecks:\n" + "".join(f"  {line}\n" for line in checks)
    changed = _changed_items(c)
    text += f"\nchanged beyond noise ({len(changed)}):\n"
    if changed:
        text += _changed_text(changed)
    else:
        text += "  nothing\n"
    text += f"\nconfig differences ({len(c.config)}):\n"
    text += "".join(
        f"  {key}: {_config_value(a)} -> {_config_value(b)}\n" for key, a, b in c.config
    )
    if not c.rows:
        return text + "\nno metrics measured in either run\n"
    groups = _groups(c.rows)
    totals = groups.pop(TOTALS_GROUP, [])
    if groups:
        text += f"\nmetrics (A -> B; {_LEGEND}):\n"
        body = []
        for metric, rows in groups.items():
            by_stat = {r.stat: r for r in rows}
            body.append([metric, *(_compact(by_stat[stat]) for stat in _MAIN_STATS)])
        text += _indent(format_table(("metric", *_MAIN_STATS), body))
    shown = [r for r in totals if r.a or r.b]
    if shown:
        text += "\nrun totals (all others 0 in both runs):\n"
        text += _indent(format_table(("total", "A -> B"), [[r.metric, _compact(r)] for r in shown]))
    return text


#: Stats of each metric shown in the text output (every stat is in md and json).
_MAIN_STATS: tuple[str, ...] = ("count", "p50", "p95", "p99")
_LEGEND = "~ within run-to-run noise; worse/better beyond it"


def _compact(r: CompareRow) -> str:
    """``A -> B`` plus the change: ``~+1.0%`` within noise, ``+12.0% worse`` beyond."""
    cell = f"{_num(r.a)} -> {_num(r.b)}"
    if r.verdict in ("same", "missing"):
        return cell
    change = _pct(r.delta_pct) if r.delta_pct is not None else _num(r.delta, sign=True)
    if r.verdict == "noise":
        return f"{cell} ~{change}"
    suffix = {"regressed": " worse", "improved": " better"}.get(r.verdict, "")
    return f"{cell} {change}{suffix}"


def _md_cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join(":--" if i == 0 else "--:" for i in range(len(headers))) + "|")
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def render_markdown(c: Comparison, *, quiet: bool = False) -> str:
    """Markdown for a pull-request comment: verdict and failures, then (unless ``quiet``)
    the checks, changes beyond noise and config differences, and every metric's table
    inside a collapsed ``<details>`` block."""
    out = [f"**{verdict_line(c)}**\n"]
    out.extend(f"- {_md_cell(line)}\n" for line in _failure_lines(c))
    if quiet:
        return "".join(out)
    out.append(f"\nA: `{_md_cell(c.label_a)}`  \nB: `{_md_cell(c.label_b)}`\n")
    if c.gates or c.thresholds:
        out.append("\n#### Checks\n\n")
        out.extend(f"- {_md_cell(_gate_line(g))}\n" for g in c.gates)
        out.extend(f"- {_md_cell(_threshold_line(t))}\n" for t in c.thresholds)
    changed = _changed_groups(c)
    out.append(f"\n#### Changed beyond noise ({len(changed)})\n\n")
    if changed:
        out.append(_md_table(_CHANGED_HEADERS, changed))
    else:
        out.append("Nothing changed beyond run-to-run noise.\n")
    if c.config:
        out.append(f"\n#### Config differences ({len(c.config)})\n\n")
        out.append(
            _md_table(
                ("key", "A", "B"),
                [[key, _config_value(a), _config_value(b)] for key, a, b in c.config],
            )
        )
    if c.rows:
        out.append("\n<details><summary>All metrics</summary>\n")
        for group, rows in _groups(c.rows).items():
            headers = ("total", *_ROW_HEADERS[1:]) if group == TOTALS_GROUP else _ROW_HEADERS
            out.append(f"\n**{_md_cell(_group_title(group, rows))}**\n\n")
            out.append(_md_table(headers, _group_rows(group, rows)))
        out.append("\n</details>\n")
    return "".join(out)


def comparison_json(c: Comparison) -> bytes:
    """The comparison as one JSON document: ``ok``, ``verdict``, ``a``, ``b``, ``gates``,
    ``thresholds``, ``changed`` (rows beyond noise), ``config_diff`` (``key``, ``a``,
    ``b``; a missing side is ``null`` with ``a_absent``/``b_absent``), ``metrics``
    (``{metric: {stat: row}}``) and ``totals`` (``{name: row}``)."""
    metrics: dict[str, dict[str, Any]] = {}
    totals: dict[str, Any] = {}
    for r in c.rows:
        if r.stat == "value":
            totals[r.metric] = r.to_dict()
        else:
            metrics.setdefault(r.metric, {})[r.stat] = r.to_dict()
    doc = {
        "ok": c.ok,
        "verdict": verdict_line(c),
        "a": c.label_a,
        "b": c.label_b,
        "gates": [g.to_dict() for g in c.gates],
        "thresholds": [t.to_dict() for t in c.thresholds],
        "changed": [r.to_dict() for r in c.changed],
        "config_diff": [
            {
                "key": key,
                "a": None if a is ABSENT else a,
                "b": None if b is ABSENT else b,
                "a_absent": a is ABSENT,
                "b_absent": b is ABSENT,
            }
            for key, a, b in c.config
        ],
        "metrics": metrics,
        "totals": totals,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str) + b"\n"
