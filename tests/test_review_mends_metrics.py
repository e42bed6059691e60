"""Review mends of the metrics: sessions counted once live (last attempt decides), MCP
calls as samples, ``audio_out_ms`` without a direction, selectors on unscoped totals,
binomial noise of counts out of a total, attempts in the HTML report, failure groups per
scope, reserved tag names.

The supervisor test runs on trio's autojump MockClock over memory streams to the mock
server (nothing else is contacted)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing
from session_helpers import voice_server

from orchestrator.metrics import SessionResult, TurnRecord
from orchestrator.metrics.compare import compare, direction
from orchestrator.metrics.compare_gates import GateError, parse_gate
from orchestrator.metrics.compare_noise import count_noise, proportion_count_noise
from orchestrator.metrics.records import ErrorRecord, McpCallRecord
from orchestrator.metrics.report_tables import failures_section
from orchestrator.metrics.report_time import over_time_charts, starts_per_second
from orchestrator.metrics.summary import FAILURE_GROUPS_TOP, build_summary, metric_samples
from orchestrator.metrics.text import failure_reason_lines
from orchestrator.metrics.thresholds import ThresholdError, check_tags, parse_threshold
from orchestrator.mockserver import Distribution, LatencyModel, ServerConfig
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import (
    Backoff,
    ListSink,
    RestartIntensity,
    RestartPolicy,
    RestartType,
    open_supervisor,
)
from orchestrator.supervisor.live_thresholds import LiveThresholds
from orchestrator.supervisor.tee import TeeSink

FAST = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:30"),
    response_words=Distribution.parse("fixed:3"),
    realtime_factor=0.0,
    transcription_ms=Distribution.parse("fixed:5"),
)


def sess(session_id: str, status: str, attempt: int = 0, **kw: Any) -> SessionResult:
    kw.setdefault("planned_start_s", 0.0)
    kw.setdefault("t_end_s", 1.0)
    return SessionResult(
        session_id=session_id,
        status=status,  # type: ignore[arg-type]
        attempt=attempt,
        **kw,
    )


def turn(session_id: str = "s", **kw: Any) -> TurnRecord:
    return TurnRecord(session_id=session_id, turn_index=0, t_start_s=0.0, t_end_s=1.0, **kw)


# ---------------------------------------------------------------------- M1: live counts


def mock_specs() -> AbstractAsyncContextManager[Callable[[], SessionSpec]]:
    return voice_server(ServerConfig(port=0, latency=FAST), max_duration=30)


async def test_a_restarted_failed_attempt_is_not_a_failed_session_live(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = ListSink()
    live = LiveThresholds(
        ["sessions_failed<1:abort", "session_error_rate<0.5:abort"], window_s=60.0
    )
    calls: list[int] = []

    async def flaky(session: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        await trio.sleep(0.1)

    restart = RestartPolicy(
        restart_type=RestartType.TRANSIENT,
        intensity=RestartIntensity(3, 60.0),
        backoff=Backoff(initial_s=0.5, max_s=1.0, jitter="none"),
    )
    async with mock_specs() as make_spec:
        async with open_supervisor(
            sink=TeeSink(sink, [live]), timeline_interval_s=None, restart=restart
        ) as sup:
            handle = await sup.start(make_spec(), flaky)
            await handle.wait()
            snap = sup.snapshot()
    assert [s.status for s in sink.sessions] == ["failed", "completed"]  # two attempts
    assert (snap.failed, snap.completed, snap.attempts) == (0, 1, 2)
    assert snap.errors_per_s == 0.0  # the failed attempt was restarted: no failed session
    assert snap.metrics["connect_ms"].count == 2  # latencies of every attempt, as the summary
    assert live.totals["sessions_total"] == 1
    assert live.totals["sessions_failed"] == 0
    assert live.totals["sessions_completed"] == 1
    assert live.failed() is None
    judged = {r.metric: r.actual for r in live.judge()}
    assert judged == {"sessions_failed": 0.0, "session_error_rate": 0.0}
    totals = build_summary(list(sink.turns), list(sink.sessions))["totals"]
    assert (totals["sessions_total"], totals["sessions_failed"]) == (1, 0)


def test_live_counts_a_session_when_done_and_attempts_only_for_reconnects() -> None:
    live = LiveThresholds(["sessions_failed<1:abort", "reconnects<3:abort"], clock=lambda: 0.0)
    live.session(sess("a", "failed", reconnects=1))  # an attempt the supervisor restarts
    assert live.totals["sessions_total"] == 0 and live.failed() is None
    last = sess("a", "failed", attempt=1, reconnects=1)
    live.session(last)
    live.session_done(last)
    assert live.totals["sessions_total"] == 1 and live.totals["sessions_failed"] == 1
    assert live.totals["reconnects"] == 2  # summed over attempts, as the summary's
    failed = live.failed()
    assert failed is not None and failed.metric == "sessions_failed"


# ---------------------------------------------------------------------- M2: MCP samples


def test_each_mcp_call_is_a_sample_of_mcp_call_ms() -> None:
    calls = (
        McpCallRecord(name="a", server_label="x", status="completed", duration_ms=100.0),
        McpCallRecord(name="b", server_label="x", status="completed", duration_ms=300.0),
        McpCallRecord(name="c", server_label="x", status="in_progress"),
    )
    turns = [
        turn(mcp_calls=calls, mcp_call_ms=300.0),
        turn(mcp_call_ms=50.0),  # an older record without its calls listed
        turn(),
    ]
    samples = metric_samples(turns, [])
    assert sorted(samples["mcp_call_ms"].tolist()) == [50.0, 100.0, 300.0]
    assert turns[0].mcp_call_ms == 300.0  # the record keeps the turn's longest call


# ---------------------------------------------------------------------- M5: audio_out_ms


def _summary(metrics: dict[str, Any] | None = None, **totals: Any) -> dict[str, Any]:
    return {"metrics": metrics or {}, "totals": totals}


def test_audio_out_ms_has_no_better_direction() -> None:
    assert direction("audio_out_ms", "p95") == "none"
    assert direction("ttfb_ms", "p95") == "lower"
    stats = {"count": 1000, "min": 900, "p50": 1000, "p90": 1010, "p95": 1020, "p99": 1030}
    a = _summary({"audio_out_ms": {**stats, "mean": 1000, "max": 1040}})
    more = {k: v * 2 for k, v in stats.items() if k != "count"}
    b = _summary({"audio_out_ms": {"count": 1000, **more, "mean": 2000, "max": 2080}})
    rows = [r for r in compare(a, b) if r.metric == "audio_out_ms" and r.stat == "p95"]
    assert [r.verdict for r in rows] == ["changed"]
    with pytest.raises(GateError, match="no better direction"):
        parse_gate("audio_out_ms.p95=10%")
    assert parse_gate("ttfb_ms.p95=10%").metric == "ttfb_ms"


# ---------------------------------------------------------------------- M6: selectors


@pytest.mark.parametrize("metric", ["late_starts", "dropped_starts", "cost_usd"])
def test_a_selector_on_an_unscoped_total_is_refused_at_parse_time(metric: str) -> None:
    with pytest.raises(ThresholdError, match=rf"{metric}\{{scenario:x\}}==0") as info:
        parse_threshold(f"{metric}{{scenario:x}}==0")
    assert "reconnects" in str(info.value) and "sessions_failed" in str(info.value)
    assert parse_threshold(f"{metric}==0").selector == ()


def test_reconnects_take_a_selector() -> None:
    sessions = [
        sess("a", "completed", scenario="x", reconnects=2),
        sess("b", "completed", scenario="y", reconnects=1),
    ]
    summary = build_summary(
        [], sessions, thresholds=["reconnects{scenario:x}==2", "reconnects{scenario:y}<1"]
    )
    results = {r["expr"]: r for r in summary["thresholds"]}
    assert results["reconnects{scenario:x}==2"]["ok"]
    assert results["reconnects{scenario:x}==2"]["actual"] == 2.0
    assert not results["reconnects{scenario:y}<1"]["ok"]
    assert results["reconnects{scenario:y}<1"]["actual"] == 1.0


# ---------------------------------------------------------------------- M7: noise


def test_completed_out_of_a_total_has_binomial_noise() -> None:
    a = _summary(sessions_total=1000, sessions_completed=1000, reconnects=1000)
    b = _summary(sessions_total=1000, sessions_completed=920, reconnects=920)
    rows = {r.metric: r for r in compare(a, b)}
    assert rows["sessions_completed"].verdict == "regressed"
    assert rows["sessions_completed"].noise is not None and rows["sessions_completed"].noise < 80
    assert rows["reconnects"].verdict == "noise"  # an open count stays Poisson
    assert rows["reconnects"].noise == pytest.approx(count_noise(1000, 920))
    # few failures out of many: about Poisson; nothing out of nothing: unknown
    assert proportion_count_noise(3, 100_000, 5, 100_000) == pytest.approx(
        count_noise(3, 5), rel=0.01
    )
    assert proportion_count_noise(0, 0, 1, 10) is None
    half = _summary(sessions_total=1000, sessions_completed=500)
    same = compare(half, _summary(sessions_total=1000, sessions_completed=530))
    assert {r.metric: r.verdict for r in same}["sessions_completed"] == "noise"  # 30 < 44


# ---------------------------------------------------------------------- L1: report


def test_report_counts_sessions_by_their_last_attempt() -> None:
    sessions = [
        sess("a", "failed", reason="boom", t_end_s=1.0, planned_start_s=0.0, connect_ms=5.0),
        sess("a", "completed", attempt=1, t_end_s=3.0, planned_start_s=1.5, connect_ms=5.0),
        sess("b", "failed", reason="bang", t_end_s=2.0, planned_start_s=0.5, connect_ms=5.0),
    ]
    summary = build_summary([], sessions)
    assert summary["totals"]["sessions_failed"] == 1
    html = failures_section(summary, sessions)
    assert "Failed sessions (1)" in html and "bang" in html and "boom" not in html
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    _, rate = starts_per_second(sessions, None, edges)
    assert rate.tolist() == [2.0, 0.0, 0.0]  # the restart at 1.5 s is not a start
    charts = "".join(over_time_charts([], sessions))
    assert "Failed sessions by end time" in charts


# ---------------------------------------------------------------------- L2: groups


def test_failure_groups_are_capped_per_scope() -> None:
    turns = [
        turn(f"t{i}", errors=(ErrorRecord(code=f"code_{i}", message="no"),))
        for i in range(FAILURE_GROUPS_TOP + 10)
        for _ in range(2)
    ]
    sessions = [sess("s", "failed", reason="the one session failure")]
    groups = build_summary(turns, sessions)["failure_groups"]
    scopes = [g["scope"] for g in groups]
    assert scopes.count("session") == 1
    assert scopes.count("turn") == FAILURE_GROUPS_TOP
    counts = [g["count"] for g in groups]
    assert counts == sorted(counts, reverse=True)


def test_failure_lines_sum_groups_with_the_same_text() -> None:
    summary = {
        "failure_groups": [
            {"scope": "turn", "type": "A", "count": 3, "example": "same text", "distinct": 1},
            {"scope": "turn", "type": "B", "count": 4, "example": "other", "distinct": 1},
            {"scope": "turn", "type": "C", "count": 2, "example": "same text", "distinct": 1},
        ]
    }
    lines = failure_reason_lines(summary)
    assert lines == ["turn failure reasons:", "  5 x same text", "  4 x other"]


# ---------------------------------------------------------------------- L8: tag names


@pytest.mark.parametrize("name", ["scenario", "label"])
def test_tag_names_no_selector_can_reach_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=rf"--tag: tag name '{name}' is reserved"):
        check_tags({name: "x"}, "--tag")
    assert check_tags({"env": "x"}, "--tag") == {"env": "x"}
