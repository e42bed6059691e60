"""The audible-latency metrics (``ttfa_ms``, ``voice_to_voice_audible_ms``,
``playback_underrun_ms``, ``greeting_ms``) flow through names, the summary, thresholds,
scenario budgets, the HTML report and the live panel."""

from __future__ import annotations

import io

from rich.console import Console

from orchestrator.cli.progress import format_line, render_table
from orchestrator.metrics.names import DISTRIBUTION_METRICS, SESSION_METRICS, TURN_METRICS
from orchestrator.metrics.records import SessionResult, TurnRecord
from orchestrator.metrics.report_html import render_report
from orchestrator.metrics.stats import LiveStats
from orchestrator.metrics.summary import build_summary
from orchestrator.scenario import BUDGET_METRICS
from orchestrator.supervisor import MetricPercentiles, SupervisorSnapshot

AUDIBLE_TURN = ("ttfa_ms", "voice_to_voice_audible_ms", "playback_underrun_ms")


def _turn(i: int, ttfa: float, underrun: float) -> TurnRecord:
    return TurnRecord(
        session_id=f"s{i}",
        turn_index=0,
        t_start_s=float(i),
        t_end_s=i + 1.0,
        status="completed",
        ttfb_ms=300.0,
        ttfa_ms=ttfa,
        voice_to_voice_ms=800.0,
        voice_to_voice_audible_ms=800.0 + ttfa - 300.0,
        playback_underrun_ms=underrun,
        audio_out_ms=2000.0,
    )


def _session(i: int, greeting: float | None) -> SessionResult:
    return SessionResult(
        session_id=f"s{i}",
        status="completed",
        planned_start_s=float(i),
        t_end_s=i + 2.0,
        turns=1,
        greeting_ms=greeting,
    )


def test_names() -> None:
    for name in AUDIBLE_TURN:
        assert name in TURN_METRICS and name in DISTRIBUTION_METRICS
        assert name in BUDGET_METRICS  # max_ttfa_ms etc. in scenario files
    assert "greeting_ms" in SESSION_METRICS and "greeting_ms" in DISTRIBUTION_METRICS
    assert "greeting_ms" not in BUDGET_METRICS  # a session metric, not a turn budget


def test_summary_and_thresholds() -> None:
    turns = [_turn(i, 300.0 + 10 * i, 0.0 if i else 1200.0) for i in range(10)]
    sessions = [_session(i, 500.0 if i < 5 else None) for i in range(10)]
    summary = build_summary(
        turns,
        sessions,
        thresholds=["ttfa_ms.p50<400", "playback_underrun_ms.max<1000", "greeting_ms.p95<600"],
    )
    m = summary["metrics"]
    assert m["ttfa_ms"]["count"] == 10 and m["ttfa_ms"]["min"] == 300.0
    assert m["playback_underrun_ms"]["max"] == 1200.0
    assert m["greeting_ms"]["count"] == 5 and m["greeting_ms"]["p50"] == 500.0
    assert m["voice_to_voice_audible_ms"]["min"] == 800.0
    ok = {r["expr"]: r["ok"] for r in summary["thresholds"]}
    assert ok == {
        "ttfa_ms.p50<400": True,
        "playback_underrun_ms.max<1000": False,
        "greeting_ms.p95<600": True,
    }
    html = render_report(summary, turns, sessions)
    assert "ttfa_ms" in html and "greeting_ms" in html and "playback_underrun_ms" in html


def test_live_panel_shows_ttfa_beside_ttfb() -> None:
    live = LiveStats()
    live.observe_turn(_turn(0, 420.0, 0.0))
    assert live.snapshot()["ttfa_ms"].count == 1
    snap = SupervisorSnapshot(
        t_s=1.0,
        metrics={
            "ttfb_ms": MetricPercentiles(count=3, p50=351.0, p95=420.0, p99=500.0),
            "ttfa_ms": MetricPercentiles(count=3, p50=455.0, p95=530.0, p99=610.0),
        },
    )
    line = format_line(snap)
    assert "ttfb p50 351 p95 420 ms | ttfa p50 455 p95 530 ms" in line
    out = io.StringIO()
    Console(file=out, width=120).print(render_table(snap))
    text = out.getvalue()
    assert "ttfa (audible)" in text and "p50 455 ms" in text
    assert text.index("ttfb") < text.index("ttfa (audible)")
