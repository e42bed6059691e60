"""k6-style threshold parsing and evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.metrics.thresholds import (
    ThresholdError,
    evaluate,
    evaluate_summary,
    parse_threshold,
)


@pytest.mark.parametrize(
    ("expr", "metric", "stat", "q", "op", "target"),
    [
        ("voice_to_voice_ms.p95<800", "voice_to_voice_ms", "p95", 95.0, "<", 800.0),
        ("ttfb_ms.avg<=300", "ttfb_ms", "mean", None, "<=", 300.0),
        ("session_error_rate<0.01", "session_error_rate", None, None, "<", 0.01),
        ("turn_error_rate<0.05", "turn_error_rate", None, None, "<", 0.05),
        ("sessions_failed==0", "sessions_failed", None, None, "==", 0.0),
        ("ttfb_ms.max<2000", "ttfb_ms", "max", None, "<", 2000.0),
        ("voice_to_voice_ms.count>10", "voice_to_voice_ms", "count", None, ">", 10.0),
        (" ttfb_ms.p99.9 >= 1e3 ", "ttfb_ms", "p99.9", 99.9, ">=", 1000.0),
        ("ttfb_ms.p(95)!=5", "ttfb_ms", "p95", 95.0, "!=", 5.0),
        ("ttfb_ms.med>-1", "ttfb_ms", "p50", 50.0, ">", -1.0),
        ("connect_ms.MIN>0", "connect_ms", "min", None, ">", 0.0),
    ],
)
def test_parse(
    expr: str, metric: str, stat: str | None, q: float | None, op: str, target: float
) -> None:
    t = parse_threshold(expr)
    assert (t.metric, t.stat, t.q, t.op, t.target) == (metric, stat, q, op, target)
    assert t.expr == expr.strip()


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("latency_ms.p95<800", "unknown metric 'latency_ms'"),
        ("ttfb_ms.p95=<800", "bad operator '=<'"),
        ("ttfb_ms.p95=800", "bad operator '='"),
        ("ttfb_ms.p95<8oo", "bad number '8oo'"),
        ("ttfb_ms.p95<", "bad number ''"),
        ("ttfb_ms.p95<800ms", "bad number '800ms'"),
        ("ttfb_ms.p95<inf", "must be finite"),
        ("ttfb_ms<800", "distribution; name a stat"),
        ("sessions_failed.max==0", "takes no stat"),
        ("ttfb_ms.p95x<1", "unknown stat 'p95x'"),
        ("ttfb_ms.stddev<1", "unknown stat 'stddev'"),
        ("ttfb_ms.p101<1", "above 100"),
        ("<5", "missing metric"),
        ("ttfb_ms.p95", "expected METRIC"),
        ("", "empty expression"),
    ],
)
def test_parse_errors_name_expression_and_problem(expr: str, message: str) -> None:
    with pytest.raises(ThresholdError) as info:
        parse_threshold(expr)
    assert message in str(info.value)
    assert repr(expr) in str(info.value)


def test_evaluate_on_samples() -> None:
    samples = {"voice_to_voice_ms": np.arange(1.0, 101.0), "ttfb_ms": [None, 100.0, 300.0]}
    scalars = {"session_error_rate": 0.02, "sessions_failed": 0, "turn_error_rate": None}
    results = evaluate(
        [
            "voice_to_voice_ms.p95<96",
            "voice_to_voice_ms.p95<95",
            "voice_to_voice_ms.count>10",
            "voice_to_voice_ms.p99.9<=100",
            "ttfb_ms.avg<=200",
            "ttfb_ms.avg<200",
            "ttfb_ms.max!=300",
            "ttfb_ms.min>=100",
            "session_error_rate<0.01",
            "sessions_failed==0",
            "turn_error_rate<0.05",
            "barge_in_stop_ms.count==0",
            "barge_in_stop_ms.p95<1000",
        ],
        samples=samples,
        scalars=scalars,
    )
    got = {r.expr: (r.actual, r.ok, r.note) for r in results}
    assert got["voice_to_voice_ms.p95<96"] == (pytest.approx(95.05), True, None)
    assert got["voice_to_voice_ms.p95<95"][1] is False
    assert got["voice_to_voice_ms.count>10"] == (100.0, True, None)
    assert got["voice_to_voice_ms.p99.9<=100"][0] == pytest.approx(99.901)
    assert got["ttfb_ms.avg<=200"] == (200.0, True, None)
    assert got["ttfb_ms.avg<200"] == (200.0, False, None)
    assert got["ttfb_ms.max!=300"] == (300.0, False, None)
    assert got["ttfb_ms.min>=100"] == (100.0, True, None)
    assert got["session_error_rate<0.01"] == (0.02, False, None)
    assert got["sessions_failed==0"] == (0.0, True, None)
    assert got["turn_error_rate<0.05"] == (None, False, "not measured")
    assert got["barge_in_stop_ms.count==0"] == (0.0, True, None)
    assert got["barge_in_stop_ms.p95<1000"] == (None, False, "no samples")


def test_evaluate_raises_on_bad_expression() -> None:
    with pytest.raises(ThresholdError, match="unknown metric"):
        evaluate(["nope.p95<1"], samples={}, scalars={})


def test_evaluate_summary() -> None:
    summary = {
        "metrics": {"ttfb_ms": {"count": 3, "mean": 200.0, "p95": 290.0, "max": 300.0}},
        "totals": {"sessions_failed": 2},
    }
    results = evaluate_summary(
        ["ttfb_ms.p95<300", "ttfb_ms.count>=3", "sessions_failed==0", "connect_ms.count==0",
         "connect_ms.p(99)<5"],
        summary,
    )  # fmt: skip
    assert [(r.actual, r.ok) for r in results] == [
        (290.0, True),
        (3.0, True),
        (2.0, False),
        (0.0, True),
        (None, False),
    ]
    with pytest.raises(ThresholdError, match="stored summary has no 'p99.9'"):
        evaluate_summary(["ttfb_ms.p99.9<1"], summary)
