"""The summary's breakdown per scenario and per turn label, thresholds with k6-style
``{key:value}`` selectors, and the text summary's per-scenario / per-label tables."""

from __future__ import annotations

import pytest

from orchestrator.metrics import SessionResult, TurnRecord, build_summary, summary_text
from orchestrator.metrics.thresholds import (
    ThresholdError,
    evaluate,
    evaluate_summary,
    parse_threshold,
)
from orchestrator.supervisor.live_thresholds import abort_thresholds


def turn(sid: str, i: int, label: str | None, ttfb: float, **kw: object) -> TurnRecord:
    return TurnRecord(
        session_id=sid, turn_index=i, label=label, t_start_s=0.0, t_end_s=1.0, ttfb_ms=ttfb,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def session(
    sid: str, scenario: str | None, status: str = "completed", **kw: object
) -> SessionResult:
    return SessionResult(
        session_id=sid, status=status, scenario=scenario, label=scenario, planned_start_s=0.0,
        t_end_s=1.0, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


STAGING = {"env": "staging"}
TURNS = [
    turn("a1", 0, "greet", 100.0, scenario="a", tags=STAGING),
    turn("a1", 1, "question", 300.0, scenario="a", tags=STAGING),
    turn("a2", 0, "greet", 200.0, scenario="a", tags=STAGING, status="failed", reason="boom"),
    turn("b1", 0, "question", 500.0, scenario="b"),
    turn("b1", 1, None, 700.0),  # written before turns carried their scenario
]
SESSIONS = [
    session("a1", "a", connect_ms=10.0, tags=STAGING),
    session("a2", "a", "failed", attempt=0, reason="X: y", connect_ms=20.0, tags=STAGING),
    session("a2", "a", "failed", attempt=1, reason="X: y", connect_ms=30.0, tags=STAGING),
    session("b1", "b", connect_ms=40.0),
]


def test_breakdown_per_scenario_and_label() -> None:
    breakdown = build_summary(TURNS, SESSIONS)["breakdown"]
    assert set(breakdown) == {"scenario", "label"}
    a, b = breakdown["scenario"]["a"], breakdown["scenario"]["b"]
    assert (a["sessions"], a["completed"], a["failed"]) == (2, 1, 1)  # a2 counted once
    assert set(a["metrics"]) == {"connect_ms", "ttfb_ms"}  # only metrics with data
    assert a["metrics"]["ttfb_ms"]["count"] == 3 and a["metrics"]["connect_ms"]["count"] == 3
    assert a["metrics"]["ttfb_ms"]["max"] == 300.0
    # b1's unlabelled turn gets its scenario from its session record
    assert (b["sessions"], b["completed"], b["failed"]) == (1, 1, 0)
    assert b["metrics"]["ttfb_ms"]["count"] == 2
    labels = breakdown["label"]
    assert list(labels) == ["(none)", "greet", "question"]
    assert (labels["greet"]["turns"], labels["greet"]["failed"]) == (2, 1)
    assert labels["question"]["metrics"]["ttfb_ms"]["p50"] == 400.0
    assert set(labels["question"]["metrics"]) == {"ttfb_ms"}
    assert set(labels["question"]) == {"turns", "failed", "metrics"}


def judged(*exprs: str) -> list[dict[str, object]]:
    results: list[dict[str, object]] = build_summary(TURNS, SESSIONS, thresholds=exprs)[
        "thresholds"
    ]
    return results


def test_thresholds_with_selectors() -> None:
    by_label, by_scenario, by_tag, both, scalar = judged(
        "ttfb_ms{label:question}.p95<1",
        "ttfb_ms{scenario:b}.max<=700",
        "connect_ms{env:staging}.count==3",
        "ttfb_ms{scenario:a,label:greet}.mean==150",
        "sessions_failed{scenario:a}==1",
    )
    assert by_label["ok"] is False and by_label["actual"] == pytest.approx(490.0)
    assert by_label["selector"] == {"label": "question"}
    assert by_scenario["ok"] is True and by_scenario["actual"] == 700.0
    assert by_tag["ok"] is True
    assert both["ok"] is True and both["selector"] == {"scenario": "a", "label": "greet"}
    assert scalar["ok"] is True


def test_selector_matching_nothing_fails_with_a_note() -> None:
    (typo,) = judged("ttfb_ms{label:qestion}.p95<1000")
    assert typo["ok"] is False and typo["actual"] is None
    assert "no record matches {label:qestion}" in str(typo["note"])


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("ttfb_ms{label}.p95<1", "bad selector item 'label'"),
        ("ttfb_ms{label:}.p95<1", "bad selector item"),
        ("ttfb_ms{}.p95<1", "bad selector item"),
        ("ttfb_ms{label:a,label:b}.p95<1", "'label' given twice"),
        ("ttfb_ms.p95{label:a}<1", "goes right after the metric"),
        ("ttfb_ms{label:a}p95<1", "expected METRIC"),
        ("ttfb_ms{label:a}.p95<1:abrt", "unknown option"),
    ],
)
def test_bad_selector_syntax_names_the_threshold(expr: str, message: str) -> None:
    with pytest.raises(ThresholdError, match=message) as err:
        parse_threshold(expr)
    assert repr(expr) in str(err.value)


def test_selector_parsing_and_where_it_applies() -> None:
    t = parse_threshold("ttfb_ms{ scenario : 'a b' , env:staging }.p95 < 800:abort")
    assert (t.metric, t.stat, t.abort) == ("ttfb_ms", "p95", True)
    assert t.selector == (("scenario", "a b"), ("env", "staging"))
    with pytest.raises(ThresholdError, match="judged after the run only"):
        abort_thresholds([t])
    with pytest.raises(ThresholdError, match="needs the run's records"):
        evaluate([t], samples={}, scalars={})


def test_stored_summary_thresholds_read_the_breakdown() -> None:
    summary = build_summary(TURNS, SESSIONS)
    ok, missing = evaluate_summary(
        ["ttfb_ms{label:question}.p95>400", "ttfb_ms{scenario:zzz}.p95<1"], summary
    )
    assert ok.ok and ok.actual == pytest.approx(490.0)
    assert not missing.ok and "no record matches" in str(missing.note)
    with pytest.raises(ThresholdError, match="evaluate it on the results file"):
        evaluate_summary(["ttfb_ms{env:staging}.p95<1"], summary)


def test_text_summary_tables_only_with_several_groups() -> None:
    text = summary_text(build_summary(TURNS, SESSIONS))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("scenario "))
    assert header.split() == ["scenario", "sessions", "completed", "failed", "connect", "p95",
                              "ttfb", "p95"]  # fmt: skip
    assert any(line.split()[:4] == ["a", "2", "1", "1"] for line in lines)
    assert any(line.startswith("label ") for line in lines)
    one = summary_text(build_summary(TURNS[:1], SESSIONS[:1]))
    assert not any(line.startswith(("scenario ", "label ")) for line in one.splitlines())
