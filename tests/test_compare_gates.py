"""``report --compare A B``: thresholds on B, regression gates, noise, config diff,
output formats and exit codes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from orchestrator.cli import main
from orchestrator.metrics.compare import ABSENT, compare, config_diff, direction
from orchestrator.metrics.compare_gates import GateError, evaluate_gates, parse_gate
from orchestrator.metrics.compare_noise import stat_noise
from orchestrator.metrics.compare_render import (
    build_comparison,
    render_markdown,
    render_text,
)
from orchestrator.metrics.records import SessionResult, TurnRecord
from orchestrator.metrics.summary import build_summary


def summary_of(
    ttfb: list[float] | np.ndarray, *, failed: int = 0, concurrency: int = 3
) -> dict[str, Any]:
    turns = [
        TurnRecord(session_id=f"s{i}", turn_index=0, t_start_s=0, t_end_s=1, ttfb_ms=float(v),
                   voice_to_voice_ms=float(v) + 200)
        for i, v in enumerate(ttfb)
    ]  # fmt: skip
    sessions = [
        SessionResult(session_id=f"s{i}", status="failed" if i < failed else "completed",
                      planned_start_s=0, t_end_s=1)
        for i in range(len(ttfb))
    ]  # fmt: skip
    config = {"model": "gpt-realtime", "load": {"concurrency": concurrency, "sessions": len(ttfb)}}
    return build_summary(turns, sessions, config=config)


def write(path: Path, summary: dict[str, Any]) -> str:
    path.mkdir(parents=True)
    (path / "summary.json").write_bytes(orjson.dumps(summary))
    return str(path)


RNG = np.random.default_rng(11)
BASE = RNG.gamma(20, 20, 2000)  # ~400 ms, sd ~90 ms


# --- gates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "metric", "stat", "selector", "limit", "relative"),
    [
        ("ttfb_ms.p95=10%", "ttfb_ms", "p95", None, 10.0, True),
        (" voice_to_voice_ms.p(99) = 25ms ", "voice_to_voice_ms", "p99", None, 25.0, False),
        ("ttfb_ms.avg=5", "ttfb_ms", "mean", None, 5.0, False),
        ("ttfb_ms{label:question}.med=3%", "ttfb_ms", "p50", ("label", "question"), 3.0, True),
        ("sessions_failed=0", "sessions_failed", None, None, 0.0, False),
        ("sessions_completed=5%", "sessions_completed", None, None, 5.0, True),
        ("connections.refused=0", "connections.refused", None, None, 0.0, False),
    ],
)
def test_parse_gate(
    expr: str,
    metric: str,
    stat: str | None,
    selector: tuple[str, str] | None,
    limit: float,
    relative: bool,
) -> None:
    gate = parse_gate(expr)
    assert (gate.metric, gate.stat, gate.selector, gate.limit, gate.relative) == (
        metric, stat, selector, limit, relative,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("ttfb_ms.p95<10%", "expected METRIC.STAT=LIMIT"),
        ("ttfb_ms.p95=ten", "expected METRIC.STAT=LIMIT"),
        ("ttfb_ms=10%", "name a stat"),
        ("ttfb_ms.p42=10%", "no stat 'p42'"),
        ("nope_ms.p95=10%", "unknown metric 'nope_ms'"),
        ("sessions_total=1", "no better direction"),
        ("sessions_failed.p95=1", "takes no stat"),
        ("session_error_rate=1ms", "not in milliseconds"),
        ("connections.attempts=1", "no better direction"),
    ],
)
def test_parse_gate_errors_name_the_problem(expr: str, message: str) -> None:
    with pytest.raises(GateError, match="--max-regression") as info:
        parse_gate(expr)
    assert message in str(info.value) and repr(expr) in str(info.value)


def test_gates_judge_the_worse_direction() -> None:
    a = summary_of([100.0, 200.0, 300.0, 400.0])
    b = summary_of([110.0, 220.0, 330.0, 440.0], failed=1)  # +10 % everywhere
    gates = [parse_gate(e) for e in ("ttfb_ms.p50=9%", "ttfb_ms.p50=11%", "ttfb_ms.max=40ms",
                                      "ttfb_ms.max=39ms", "sessions_completed=25%",
                                      "sessions_completed=24%", "sessions_failed=0")]  # fmt: skip
    results = evaluate_gates(gates, a, b)
    assert [r.ok for r in results] == [False, True, True, False, True, False, False]
    assert results[0].worse == pytest.approx(10.0) and results[2].worse == pytest.approx(40.0)
    assert results[4].worse == pytest.approx(25.0)  # 4 -> 3 completed: down is worse
    assert results[6].worse == 1.0
    # a relative gate on a total that was 0 in A fails on any regression
    (rel,) = evaluate_gates([parse_gate("sessions_failed=50%")], a, b)
    assert not rel.ok and rel.worse == math.inf and rel.to_dict()["worse"] == "inf"
    # improvements pass
    (better,) = evaluate_gates([parse_gate("ttfb_ms.p95=0%")], b, a)
    assert better.ok and better.worse is not None and better.worse < 0


def test_connection_counters_are_compared_and_gated() -> None:
    a = summary_of([100.0] * 50)
    b = summary_of([100.0] * 50)
    a["connections"] = {"attempts": 50, "refused": 0, "refused_by_status": {}, "restarts": 0}
    b["connections"] = {"attempts": 80, "refused": 30, "refused_by_status": {"429": 30},
                        "restarts": 0}  # fmt: skip
    rows = {r.metric: r for r in compare(a, b) if r.stat == "value"}
    assert rows["connections.refused"].verdict == "regressed"
    assert rows["connections.attempts"].verdict == "changed"
    assert rows["connections.restarts"].verdict == "same"
    (gate,) = evaluate_gates([parse_gate("connections.refused=0")], a, b)
    assert not gate.ok and gate.worse == 30.0
    del a["connections"]
    assert "connections.refused" not in {r.metric for r in compare(a, a)}


def test_gate_on_a_missing_number_fails_and_says_why() -> None:
    a = summary_of([100.0, 200.0])
    b = summary_of([110.0, 220.0])
    a["breakdown"] = {
        "label": {
            "question": {"turns": 2, "failed": 0, "metrics": {"ttfb_ms": a["metrics"]["ttfb_ms"]}}
        }
    }
    (missing,) = evaluate_gates([parse_gate("ttfb_ms{label:question}.p95=10%")], a, b)
    assert not missing.ok and missing.worse is None
    assert missing.note == "B: no label 'question' in the summary's breakdown"
    b["breakdown"] = a["breakdown"]
    (same,) = evaluate_gates([parse_gate("ttfb_ms{label:question}.p95=10%")], a, b)
    assert same.ok and same.worse == 0.0
    (unmeasured,) = evaluate_gates([parse_gate("ttfa_ms.p95=10%")], a, b)
    assert unmeasured.note == "A: no samples; B: no samples"


# --- noise and verdicts ----------------------------------------------------------------


def test_noise_shrinks_with_more_samples_and_has_a_floor() -> None:
    small_a, small_b = summary_of(BASE[:20]), summary_of(BASE[20:40])
    big_a, big_b = summary_of(BASE[:1000]), summary_of(BASE[1000:])
    for stat in ("p50", "p95", "p99", "mean", "min"):
        small = stat_noise(small_a["metrics"]["ttfb_ms"], small_b["metrics"]["ttfb_ms"], stat)
        big = stat_noise(big_a["metrics"]["ttfb_ms"], big_b["metrics"]["ttfb_ms"], stat)
        assert small is not None and big is not None and small > big, stat
    # two halves of the same distribution: nothing beyond noise
    assert not [r for r in compare(big_a, big_b) if r.beyond_noise and r.stat != "max"]
    # identical samples: only the floor, max(1 ms, 2 % of A)
    flat = summary_of([400.0] * 50)
    assert stat_noise(flat["metrics"]["ttfb_ms"], flat["metrics"]["ttfb_ms"], "p95") == 8.0
    tiny = summary_of([10.0] * 50)
    assert stat_noise(tiny["metrics"]["ttfb_ms"], tiny["metrics"]["ttfb_ms"], "p50") == 1.0


def test_compare_verdicts() -> None:
    a = summary_of(BASE[:1000])
    b = summary_of(BASE[1000:] * 1.3, failed=300)  # 30 % slower, 30 % of sessions failed
    rows = {(r.metric, r.stat): r for r in compare(a, b)}
    assert rows[("ttfb_ms", "p95")].verdict == "regressed"
    assert rows[("ttfb_ms", "count")].verdict == "same"
    assert rows[("sessions_failed", "value")].verdict == "regressed"
    assert rows[("session_error_rate", "value")].verdict == "regressed"
    assert rows[("sessions_completed", "value")].verdict == "regressed"
    assert rows[("sessions_total", "value")].verdict == "same"
    back = {(r.metric, r.stat): r for r in compare(b, a)}
    assert back[("ttfb_ms", "p95")].verdict == "improved"
    # a 0.5 ms change of a 2 ms metric is noise, not -25 %
    c = summary_of([2.0] * 100)
    d = summary_of([1.5] * 100)
    p50 = next(r for r in compare(c, d) if (r.metric, r.stat) == ("ttfb_ms", "p50"))
    assert p50.delta_pct == -25.0 and p50.verdict == "noise"
    # main metrics first, only metrics measured in either run
    assert [r.metric for r in compare(a, b) if r.stat == "p50"] == ["voice_to_voice_ms", "ttfb_ms"]
    assert direction("ttfb_ms", "count") == "none" and direction("sessions_completed") == "higher"


def test_config_diff_dotted_only_differences() -> None:
    a = {"model": "m", "load": {"concurrency": 3, "sessions": 6}, "tags": ["a"], "x": {"y": 1}}
    b = {"model": "m", "load": {"concurrency": 10, "sessions": 6}, "tags": ["a", "b"], "z": 2}
    assert config_diff(a, b) == [
        ("load.concurrency", 3, 10),
        ("tags", ["a"], ["a", "b"]),
        ("x.y", 1, ABSENT),
        ("z", ABSENT, 2),
    ]


# --- the command -----------------------------------------------------------------------


@pytest.fixture
def runs(tmp_path: Path) -> tuple[str, str]:
    """A: ttfb p95 ~ 400 ms; B: ~ 600 ms, concurrency 10 instead of 3."""
    a = write(tmp_path / "a", summary_of(np.full(200, 400.0)))
    b = write(tmp_path / "b", summary_of(np.full(200, 600.0), concurrency=10))
    return a, b


def test_cli_threshold_applies_to_b(
    runs: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = runs
    assert main(["report", "--compare", a, b, "--threshold", "ttfb_ms.p95<400"]) == 2
    out = capsys.readouterr().out
    assert "verdict: FAIL" in out and "FAIL threshold on B ttfb_ms.p95<400: 600" in out
    assert main(["report", "--compare", b, a, "--threshold", "ttfb_ms.p95<500"]) == 0


def test_cli_regression_gates(runs: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = runs
    assert main(["report", "--compare", a, b, "--max-regression", "ttfb_ms.p95=10%"]) == 2
    out = capsys.readouterr().out
    assert "FAIL gate ttfb_ms.p95=10%: 50.0% worse (400 -> 600 ms), limit 10% worse" in out
    assert main(["report", "--compare", a, b, "--max-regression", "ttfb_ms.p95=200ms"]) == 0
    assert "PASS gate ttfb_ms.p95=200ms: 200 ms worse (400 -> 600 ms), limit 200 ms worse" in (
        capsys.readouterr().out
    )
    assert main(["report", "--compare", b, a, "--max-regression", "ttfb_ms.p95=0%"]) == 0
    assert "PASS gate ttfb_ms.p95=0%: 33.3% better (600 -> 400 ms), limit 0% worse" in (
        capsys.readouterr().out
    )
    assert main(["report", "--compare", a, b, "--max-regression", "ttfb_ms.p95=199ms"]) == 2
    capsys.readouterr()
    assert main(["report", "--compare", a, b, "--max-regression", "sessions_failed=0"]) == 0
    assert "PASS gate sessions_failed=0: 0 worse (0 -> 0), limit 0 worse" in (  # a count
        capsys.readouterr().out
    )


def test_cli_text_layout(runs: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = runs
    assert main(["report", "--compare", a, b]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[:3] == [f"A = {a}", f"B = {b}", lines[2]]
    # voice_to_voice_ms and ttfb_ms: all 7 value stats regressed (count is the same)
    assert lines[2].startswith("verdict: PASS (metrics beyond noise: 2 regressed, 0 improved")
    heads = [line for line in lines if line and not line.startswith(" ")]
    assert heads[3:] == [
        "changed beyond noise (2):",
        "config differences (1):",
        "metrics (A -> B; ~ within run-to-run noise; worse/better beyond it):",
        "run totals (all others 0 in both runs):",
    ]
    assert "  load.concurrency: 3 -> 10" in lines
    # one row per metric that changed, its verdict and the stats beyond noise, wrapped
    # under their column within 80 columns
    start = lines.index("changed beyond noise (2):") + 1
    block = lines[start : lines.index("config differences (1):") - 1]
    assert block[0].split() == [
        "metric",
        "verdict",
        "stat",
        "change",
        "(A",
        "->",
        "B",
        "for",
        "totals)",
    ]
    assert max(len(line) for line in block) <= 80  # an 80-column terminal
    rows = changed_rows(block[2:])
    assert [row[:2] for row in rows] == [
        ["voice_to_voice_ms", "regressed"],
        ["ttfb_ms", "regressed"],
    ]
    assert rows[1][2] == (
        "p50 +50.0%, p95 +50.0%, p99 +50.0%, mean +50.0%, p90 +50.0%, max +50.0%, min +50.0%"
    )
    assert len(lines) < 60


def changed_rows(block: list[str]) -> list[list[str]]:
    """``[metric, verdict, changes]`` of the text list of changes, continuation lines
    (indented under the changes column) joined to their row."""
    rows: list[list[str]] = []
    for line in block:
        if line.startswith("   "):
            rows[-1][2] += " " + line.strip()
        else:
            rows.append(line.split(None, 2))
    return rows


def test_mixed_metric_marks_changes_without_direction_as_changed() -> None:
    """A metric whose stats got worse, better and (its sample count, which has no better
    direction) just smaller: each change says which, never ``better`` for the count; the
    text list stays within 80 columns."""
    a = summary_of(BASE[:1000])
    b = summary_of(np.concatenate([BASE[1000:1300] * 1.3, BASE[1300:1400] * 0.5]))
    c = build_comparison(a, b)
    text = render_text(c)
    lines = text.splitlines()
    block = lines[lines.index("changed beyond noise (5):") + 1 :]
    block = block[: block.index("")]
    assert max(len(line) for line in block) <= 80  # an 80-column terminal
    rows = {row[0]: row for row in changed_rows(block[2:])}
    metric, verdict, changes = rows["ttfb_ms"]
    assert verdict == "mixed"
    assert "count -60.0% (changed)" in changes and "p95 +27.8% (worse)" in changes
    assert "min -46.3% (better)" in changes and "(better), count" in changes
    assert "count -60.0% (better)" not in text
    assert rows["sessions_total"][1:] == ["changed", "1000 -> 400"]  # no direction either
    md = render_markdown(c)
    assert "count -60.0% (changed)" in md and "count -60.0% (better)" not in md


def test_cli_quiet_prints_verdict_and_failures(
    runs: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = runs
    argv = [
        "report",
        "--compare",
        a,
        b,
        "-q",
        "--max-regression",
        "ttfb_ms.p95=10%",
        "--max-regression",
        "ttfb_ms.p50=100%",
        "--threshold",
        "ttfb_ms.p95<1000",
    ]
    assert main(argv) == 2
    assert capsys.readouterr().out.splitlines() == [
        "verdict: FAIL (metrics beyond noise: 2 regressed, 0 improved; gates 1/2 passed; "
        "thresholds on B 1/1 passed)",
        "FAIL gate ttfb_ms.p95=10%: 50.0% worse (400 -> 600 ms), limit 10% worse",
    ]
    assert main(["report", "--compare", a, a, "-q"]) == 0
    assert capsys.readouterr().out.startswith("verdict: PASS (metrics beyond noise: 0 regressed")


def test_cli_markdown_and_json(runs: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = runs
    gate = ["--max-regression", "ttfb_ms.p95=10%"]
    assert main(["report", "--compare", a, b, "--format", "md", *gate]) == 2
    md = capsys.readouterr().out
    assert md.startswith("**verdict: FAIL")
    assert "| load.concurrency | 3 | 10 |" in md
    assert "<details><summary>All metrics</summary>" in md
    assert "#### Changed beyond noise (2)" in md
    assert main(["report", "--compare", a, b, "--format", "json", *gate]) == 2
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["gates"][0]["worse"] == pytest.approx(50.0)
    assert doc["config_diff"] == [
        {"key": "load.concurrency", "a": 3, "b": 10, "a_absent": False, "b_absent": False}
    ]
    assert doc["metrics"]["ttfb_ms"]["p95"]["verdict"] == "regressed"
    assert doc["totals"]["sessions_total"]["verdict"] == "same"
    assert len(doc["changed"]) == 14


def test_cli_usage_errors_exit_1(runs: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = runs
    assert main(["report", "--compare", a, b, "--max-regression", "ttfb_ms.p95<10%"]) == 1
    assert "ttfb_ms.p95<10%" in capsys.readouterr().err
    assert main(["report", "--compare", a, b, "--threshold", "ttfb_ms.p42<1"]) == 1
    assert "p42" in capsys.readouterr().err
    assert main(["report", a, "--max-regression", "ttfb_ms.p95=10%"]) == 1
    assert "--compare" in capsys.readouterr().err
    assert main(["report", "--compare", a, b + "-missing"]) == 1
