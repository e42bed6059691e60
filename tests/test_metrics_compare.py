"""Comparing two summaries."""

from __future__ import annotations

import pytest

from orchestrator.metrics.compare import COMPARE_STATS, compare
from orchestrator.metrics.compare_render import build_comparison, render_text
from orchestrator.metrics.records import SessionResult, TurnRecord
from orchestrator.metrics.summary import build_summary


def summary_of(v2v: list[float], failed: int) -> dict:
    turns = [
        TurnRecord(session_id=f"s{i}", turn_index=0, t_start_s=0, t_end_s=1, voice_to_voice_ms=v)
        for i, v in enumerate(v2v)
    ]
    sessions = [
        SessionResult(session_id=f"s{i}", status="failed" if i < failed else "completed",
                      planned_start_s=0, t_end_s=1)
        for i in range(len(v2v))
    ]  # fmt: skip
    return build_summary(turns, sessions)


def test_compare_rows() -> None:
    a = summary_of([100.0, 200.0, 300.0, 400.0], failed=0)
    b = summary_of([150.0, 250.0, 350.0, 450.0], failed=2)
    rows = compare(a, b)
    by_key = {(r.metric, r.stat): r for r in rows}
    # only measured metrics, every stat
    assert {m for m, _ in by_key if m.endswith("_ms")} == {"voice_to_voice_ms"}
    assert [r.stat for r in rows if r.metric == "voice_to_voice_ms"] == list(COMPARE_STATS)
    mean = by_key[("voice_to_voice_ms", "mean")]
    assert (mean.a, mean.b, mean.delta) == (250.0, 300.0, 50.0)
    assert mean.delta_pct == pytest.approx(20.0)
    count = by_key[("voice_to_voice_ms", "count")]
    assert (count.delta, count.delta_pct) == (0.0, 0.0)
    failed = by_key[("sessions_failed", "value")]
    assert (failed.a, failed.b, failed.delta, failed.delta_pct) == (0.0, 2.0, 2.0, None)
    cost = by_key[("cost_usd", "value")]
    assert cost.a is None and cost.delta is None


def test_compare_metric_missing_on_one_side() -> None:
    a = summary_of([100.0], failed=0)
    b = summary_of([], failed=0)
    rows = [r for r in compare(a, b) if r.metric == "voice_to_voice_ms"]
    p95 = next(r for r in rows if r.stat == "p95")
    assert p95.a == 100.0 and p95.b is None and p95.delta is None and p95.delta_pct is None


def test_render_compare() -> None:
    a = summary_of([100.0, 200.0], failed=0)
    b = summary_of([150.0, 250.0], failed=1)
    text = render_text(build_comparison(a, b, label_a="run-a", label_b="run-b"))
    lines = text.splitlines()
    assert lines[:2] == ["A = run-a", "B = run-b"]
    row = next(line for line in lines if line.split()[:1] == ["voice_to_voice_ms"] and "->" in line)
    # count, p50, p95, p99: A -> B; two samples each, so every change is within noise
    assert "150 -> 200 ~+33.3%" in row and "2 -> 2" in row
