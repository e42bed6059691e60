"""The HTML report leads with what matters: section order, cards, failure groups,
breakdown tables, charts that count each thing once, load shape and faults as tables."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from orchestrator.metrics.records import ErrorRecord, SessionResult, TimelinePoint, TurnRecord
from orchestrator.metrics.report_html import SECTION_IDS, render_report
from orchestrator.metrics.report_time import over_time_charts, starts_per_second
from orchestrator.metrics.summary import build_summary
from orchestrator.metrics.svg import HEIGHT, Series, line_chart

METRIC = {"count": 4, "mean": 300.0, "min": 200.0, "p50": 290.0, "p90": 380.0, "p95": 390.0,
          "p99": 398.0, "max": 400.0}  # fmt: skip


class Sections(HTMLParser):
    """Collects element ids (in document order) and the text of each ``<h2>``."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.h2: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.h2[-1] += data


def sections(html: str) -> Sections:
    parser = Sections()
    parser.feed(html)
    parser.close()
    return parser


def failing_run() -> tuple[
    dict[str, Any], list[TurnRecord], list[SessionResult], list[TimelinePoint]
]:
    """Six sessions over two scenarios, two failed (one never connected), one failed
    turn with an error; a summary with the keys of the breakdown/grouping work."""
    turns, sessions = [], []
    for i in range(6):
        sid = f"s{i}"
        failed = i in (1, 4)
        never_connected = i == 4
        if not never_connected:
            turns.append(
                TurnRecord(
                    session_id=sid, turn_index=0, label="question", t_start_s=i, t_end_s=i + 1.0,
                    voice_to_voice_ms=500.0 + 10 * i, ttfb_ms=250.0 + i, ttfa_ms=260.0 + i,
                    status="failed" if failed else "completed",
                    errors=[ErrorRecord(code="server_error", message="boom", t_s=i + 0.5)]
                    if failed else [],
                )
            )  # fmt: skip
        sessions.append(
            SessionResult(
                session_id=sid, status="failed" if failed else "completed",
                reason="TransportClosed: 1006 sess_ABC" if failed else None,
                planned_start_s=float(i), t_end_s=i + 1.5,
                connect_ms=None if never_connected else 20.0,
            )
        )  # fmt: skip
    summary = build_summary(
        turns,
        sessions,
        run={"name": "nightly"},
        config={
            "model": "gpt-realtime",
            "load": {"model": "closed", "concurrency": 3, "sessions": 6, "ramp_up_s": 0.0},
            "server": {
                "seed": 0,
                "faults": {"reject_percent": 30.0, "close_probability": 0.0, "freeze_at_s": None},
            },
        },  # fmt: skip
        thresholds=["voice_to_voice_ms.p95<400", "sessions_failed==0", "ttfb_ms.p95<1000"],
        validity={"valid": False, "reasons": ["event-loop lag p99 80 ms"]},
    )
    summary["breakdown"] = {
        "scenario": {
            "greeting": {"sessions": 3, "completed": 2, "failed": 1,
                         "metrics": {"voice_to_voice_ms": METRIC}},
            "billing": {"sessions": 3, "completed": 2, "failed": 1, "metrics": {}},
        },
        "label": {"question": {"turns": 5, "failed": 1, "metrics": {"ttfb_ms": METRIC}}},
    }  # fmt: skip
    summary["failure_groups"] = [
        {"scope": "session", "type": "TransportClosed", "code": "1006",
         "template": "TransportClosed: 1006 <id>", "count": 2,
         "example": "TransportClosed: 1006 sess_ABC"},
        {"scope": "turn", "type": "ServerError", "code": "server_error", "template": "boom",
         "count": 1, "example": "boom"},
    ]  # fmt: skip
    summary["connections"] = {"attempts": 9, "refused": 3, "refused_by_status": {"429": 3},
                              "reconnects": 1, "restarts": 0}  # fmt: skip
    timeline = [
        TimelinePoint(t_s=float(t), active=min(3, t + 1), started=min(6, 2 * t), completed=t)
        for t in range(1, 8)
    ]
    return summary, turns, sessions, timeline


def test_report_of_a_failing_run_leads_with_what_matters() -> None:
    summary, turns, sessions, timeline = failing_run()
    html = render_report(summary, turns, sessions, timeline)
    parsed = sections(html)
    # the sections appear in the documented order
    order = [i for i in parsed.ids if i in SECTION_IDS]
    assert order == list(SECTION_IDS)
    pos = {i: html.index(f'id="{i}"') for i in SECTION_IDS}
    assert sorted(pos, key=pos.__getitem__) == list(SECTION_IDS)
    # header cards: verdict, thresholds, sessions, connections, main percentiles
    overview = html[pos["overview"] : pos["failures"]]
    assert "NOT valid" in overview and "event-loop lag p99 80 ms" in overview
    assert "FAIL 2 of 3" in overview and "sessions_failed==0" in overview
    assert "4 / 6" in overview and "failed 2" in overview  # completed / total
    assert "HTTP 429: 3" in overview and "refused 3" in overview
    for name in ("voice_to_voice_ms", "ttfb_ms", "ttfa_ms"):
        assert f"<h3>{name}</h3>" in overview
    assert "520 / 546 / 549" in overview  # v2v p50 / p95 / p99, ms
    assert 'id="thresholds"' in overview
    # failures come next, grouped, before any chart
    failures = html[pos["failures"] : pos["breakdown"]]
    assert "TransportClosed: 1006 &lt;id&gt;" in failures and "<svg" not in failures
    assert parsed.h2[0] == "Failures: 2 sessions, 1 turns"
    assert "Failed sessions (2)" in failures
    # per-scenario and per-label tables
    breakdown = html[pos["breakdown"] : pos["over-time"]]
    assert "<td>greeting</td><td>3</td><td>2</td><td>1</td><td>290.0</td><td>390.0</td>" in (
        breakdown
    )
    assert "<td>billing</td><td>3</td><td>2</td><td>1</td><td>-</td><td>-</td>" in breakdown
    assert "<td>question</td><td>5</td><td>1</td>" in breakdown
    # the over-time charts, each its own thing
    over_time = html[pos["over-time"] : pos["metrics"]]
    titles = re.findall(r'<svg class="chart"[^>]*aria-label="([^"]*)"', over_time)
    assert titles[:3] == [f"{m} over time (turn end, per-bin percentiles)"
                          for m in ("voice_to_voice_ms", "ttfb_ms", "ttfa_ms")]  # fmt: skip
    assert titles[3:] == ["Active sessions", "Session starts per second",
                          "Failed sessions by end time", "Turn errors by time"]  # fmt: skip
    # load shape and faults as tables, only the faults that are on
    load = html[pos["load"] :]
    assert "<td>concurrency</td><td>3</td>" in load
    assert "<td>reject_percent</td><td>30</td>" in load
    assert "close_probability" not in load.split("Full config")[0]
    assert "<pre>" not in html  # no raw JSON


def test_report_without_new_summary_keys_degrades() -> None:
    """A summary from before breakdown/failure_groups/connections still renders: the
    failure reasons stand in for the groups, the breakdown says it is missing."""
    summary, turns, sessions, timeline = failing_run()
    for key in ("breakdown", "failure_groups", "connections"):
        del summary[key]
    html = render_report(summary, turns, sessions, timeline)
    assert [i for i in sections(html).ids if i in SECTION_IDS] == list(SECTION_IDS)
    assert "TransportClosed: 1006 sess_ABC" in html.split('id="breakdown"')[0]
    assert "no per-scenario or per-label breakdown" in html
    assert "connection attempts" not in html


def test_failed_sessions_chart_counts_each_session_once() -> None:
    """Failed sessions split into disjoint causes; turn errors have a chart of their own
    (the old chart stacked a failed turn on top of its failed session)."""
    _, turns, sessions, timeline = failing_run()
    charts = over_time_charts(turns, sessions, timeline)
    failed_chart = next(c for c in charts if "Failed sessions by end time" in c)
    bars = re.findall(r"<title>(never connected|failed after connecting): (\d+)</title>",
                      failed_chart)  # fmt: skip
    assert sorted(bars) == [("failed after connecting", "1"), ("never connected", "1")]
    errors_chart = next(c for c in charts if "Turn errors by time" in c)
    assert re.findall(r"<title>turn errors: (\d+)</title>", errors_chart) == ["1"]


def test_starts_per_second_from_snapshots_and_from_sessions() -> None:
    _, _, sessions, timeline = failing_run()
    ts, rate = starts_per_second(sessions, timeline, np.linspace(0, 8, 5))
    # started: 2, 4, 6, 6, ... at t = 1, 2, 3, 4...: 2/s for three seconds, then 0
    assert list(ts[:5]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert list(rate[:5]) == [2.0, 2.0, 2.0, 0.0, 0.0]
    ts, rate = starts_per_second(sessions, None, np.linspace(0, 8, 5))
    assert list(ts) == [0.0, 2.0, 4.0, 6.0] and list(rate) == [1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("names", "rows"), [(["p50"], 1), (["samples", "p50", "p95", "p99", "a longer name"] * 3, 2)]
)
def test_legend_sits_above_the_plot(names: list[str], rows: int) -> None:
    """Legend entries are placed between the title and the plot area, which moves down
    (the chart grows) as the legend wraps, so no legend covers data."""
    svg = line_chart(
        title="t", x_label="x", y_label="y",
        lines=[Series(name=n, xs=[0, 1], ys=[0, 1]) for n in names],
    )  # fmt: skip
    plot_top = float(re.search(r'<rect x="\d+" y="(\d+)" width="\d+" height="\d+" class="plot"',
                               svg)[1])  # type: ignore[index]  # fmt: skip
    legend_ys = [float(y) for y in re.findall(r'<rect x="\d+" y="([\d.]+)" width="10"', svg)]
    assert len(legend_ys) == len(names)
    assert all(y + 10 <= plot_top for y in legend_ys)
    height = int(re.search(r'height="(\d+)" viewBox', svg)[1])  # type: ignore[index]
    assert height == HEIGHT + 14 * rows
    assert len(set(legend_ys)) == rows
