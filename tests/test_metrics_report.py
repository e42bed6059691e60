"""Offline HTML report: well-formed, one <svg> per plot, escaped, no network references."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from orchestrator.metrics.records import ErrorRecord, SessionResult, TimelinePoint, TurnRecord
from orchestrator.metrics.report_html import active_sessions_series, render_report, slowest_sessions
from orchestrator.metrics.summary import Validity, build_summary
from orchestrator.metrics.svg import MAX_POINTS, nice_ticks

INJECT = "<script>alert('x')</script>"
VOID = {"meta", "br", "hr", "img", "input", "link", "rect", "line", "circle", "polyline", "path"}


class Checker(HTMLParser):
    """Checks that every non-void element is closed in order; counts tags and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.counts: dict[str, int] = {}
        self.attrs: list[tuple[str, str | None]] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        self.attrs.extend(attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        self.attrs.extend(attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Checker:
    c = Checker()
    c.feed(html)
    c.close()
    assert c.errors == []
    assert c.stack == []
    return c


def make_run(n_sessions: int = 30) -> tuple[list[TurnRecord], list[SessionResult]]:
    rng = np.random.default_rng(5)
    turns, sessions = [], []
    for i in range(n_sessions):
        sid = f"sess_{i}"
        for k in range(2):
            turns.append(
                TurnRecord(
                    session_id=sid, turn_index=k, label=INJECT if i == 1 else "t",
                    t_start_s=i * 0.5 + k, t_end_s=i * 0.5 + k + 1,
                    voice_to_voice_ms=float(rng.gamma(5, 100)), ttfb_ms=float(rng.gamma(3, 60)),
                    response_ms=float(rng.gamma(8, 100)),
                    errors=[ErrorRecord(code="c", message=INJECT)] if i % 7 == 0 and k else [],
                )
            )  # fmt: skip
        failed = i % 10 == 3
        sessions.append(
            SessionResult(
                session_id=sid, status="failed" if failed else "completed",
                reason=f"TransportClosed: {INJECT}" if failed else None,
                planned_start_s=i * 0.5, t_end_s=i * 0.5 + 2.5, connect_ms=float(rng.gamma(4, 20)),
            )
        )  # fmt: skip
    return turns, sessions


def test_report_well_formed_with_svg_per_plot_escaped_and_offline() -> None:
    turns, sessions = make_run()
    summary = build_summary(
        turns,
        sessions,
        config={"model": "gpt-realtime", "note": INJECT},
        run={"name": INJECT},
        thresholds=["voice_to_voice_ms.p95<5000", "sessions_failed==0"],
        validity=Validity(reasons=[INJECT]),
    )
    html = render_report(summary, turns, sessions)
    checker = parse(html)
    measured = [m for m, s in summary["metrics"].items() if s["count"]]
    assert measured == ["connect_ms", "voice_to_voice_ms", "ttfb_ms", "response_ms"]
    # over time: one latency plot per main metric measured (voice_to_voice_ms, ttfb_ms)
    # and 4 others; then a histogram and a CDF per measured metric
    assert checker.counts["svg"] == 2 + 4 + 2 * len(measured)
    titles = [t for t in checker.text if t.endswith(("histogram", "CDF"))]
    assert "voice_to_voice_ms histogram" in titles and "connect_ms CDF" in titles
    # escaping: the injected tag never appears raw, only as text
    assert checker.counts.get("script", 0) == 0
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    assert any(INJECT in t for t in checker.text)  # readable after unescaping
    # offline: no network references, no scripts, no external resources
    assert not re.search(r"https?:", html)
    assert not any(name in ("src", "href") for name, _ in checker.attrs)
    assert "Results not valid" in html
    assert "FAIL" in html and "PASS" in html
    assert "Failed sessions (3)" in html
    # turn status counts sit next to the totals ("(unknown)": records without a status)
    assert "turn status" in checker.text
    assert summary["turns"]["by_status"] == {"(unknown)": 60}


def test_report_shows_turn_status_counts() -> None:
    turns = [
        TurnRecord(session_id="s", turn_index=i, t_start_s=i, t_end_s=i + 1, status=status)
        for i, status in enumerate(["completed", "completed", "interrupted", "failed"])
    ]
    html = render_report(build_summary(turns, []), turns, [])
    parse(html)
    table = html.split("turn status", 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<td>(\w+)</td><td>(\d+)</td>", table) == [
        ("completed", "2"),
        ("failed", "1"),
        ("interrupted", "1"),
    ]


def test_report_of_empty_run_still_renders() -> None:
    html = render_report(build_summary([], []), [], [])
    checker = parse(html)
    assert checker.counts["svg"] == 5  # the over-time plots say "no data"
    assert "no data" in html


def test_report_thins_large_scatter_plots() -> None:
    n = MAX_POINTS + 500
    turns = [
        TurnRecord(session_id="s", turn_index=i, t_start_s=i * 0.01, t_end_s=i * 0.01 + 0.5,
                   voice_to_voice_ms=100.0 + i % 50)
        for i in range(n)
    ]  # fmt: skip
    html = render_report(build_summary(turns, []), turns, [])
    checker = parse(html)
    assert checker.counts["circle"] == MAX_POINTS
    assert f"{MAX_POINTS} of {n} points shown" in html


def test_active_sessions_series() -> None:
    sessions = [
        SessionResult(session_id="a", status="completed", planned_start_s=0.0, t_end_s=3.0),
        SessionResult(session_id="b", status="completed", planned_start_s=1.0, t_end_s=2.0),
        SessionResult(session_id="c", status="failed", planned_start_s=2.0, t_end_s=4.0),
    ]
    ts, active = active_sessions_series(sessions)
    # at t=2.0 "b" ends before "c" starts: ends sort first
    assert ts.tolist() == [0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 4.0]
    assert active.tolist() == [0.0, 1.0, 2.0, 1.0, 2.0, 1.0, 0.0]
    timeline = [TimelinePoint(t_s=1.0, active=4), TimelinePoint(t_s=0.0, active=0)]
    ts, active = active_sessions_series(sessions, timeline)
    assert ts.tolist() == [0.0, 1.0] and active.tolist() == [0.0, 4.0]


def test_slowest_sessions() -> None:
    turns = [
        TurnRecord(session_id="a", turn_index=0, t_start_s=0, t_end_s=1, voice_to_voice_ms=100.0),
        TurnRecord(session_id="a", turn_index=1, t_start_s=1, t_end_s=2, voice_to_voice_ms=900.0),
        TurnRecord(session_id="b", turn_index=0, t_start_s=0, t_end_s=1, voice_to_voice_ms=500.0),
        TurnRecord(session_id="c", turn_index=0, t_start_s=0, t_end_s=1, response_ms=700.0),
        TurnRecord(session_id="d", turn_index=0, t_start_s=0, t_end_s=1),
    ]
    rows = slowest_sessions(turns, [], n=10)
    assert [r["session_id"] for r in rows] == ["a", "c", "b"]
    assert rows[0]["turns"] == 2 and rows[0]["max_voice_to_voice_ms"] == 900.0
    assert rows[0]["status"] == "(running)"
    assert len(slowest_sessions(turns, [], n=1)) == 1


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.0, 1000.0, [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]),
        (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (13.0, 97.0, [20.0, 40.0, 60.0, 80.0]),
        (5.0, 5.0, [5.0]),
    ],
)
def test_nice_ticks(lo: float, hi: float, expected: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(expected)
