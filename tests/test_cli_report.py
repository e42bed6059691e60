"""``orchestrator report``: rebuild summary/CSV/HTML from results.jsonl; compare runs."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.metrics import SessionResult, TurnRecord
from orchestrator.supervisor import JsonlSink, read_run_meta


def write_run(
    path: Path, v2v: list[float], *, failed: int = 0, end: bool = True, dropped: int = 0
) -> None:
    """A run directory with a results.jsonl as the supervisor writes it."""
    path.mkdir(parents=True, exist_ok=True)
    with JsonlSink(path / "results.jsonl") as sink:
        sink.event(
            "run",
            {
                "run": {"name": path.name},
                "config": {"model": "gpt-realtime", "thresholds": ["voice_to_voice_ms.p95<10000"]},
            },
        )
        for i, v in enumerate(v2v):
            sid = f"s{i:06d}"
            sink.turn(
                TurnRecord(
                    session_id=sid,
                    turn_index=0,
                    t_start_s=i,
                    t_end_s=i + 1.0,
                    voice_to_voice_ms=v,
                    ttfb_ms=v / 2,
                    response_status="completed",
                )
            )
            status = "failed" if i < failed else "completed"
            reason = "ScenarioFailed: no answer" if i < failed else None
            sink.session(
                SessionResult(
                    session_id=sid,
                    status=status,
                    reason=reason,
                    planned_start_s=float(i),
                    late_start_ms=0.0,
                    connect_ms=2.0,
                    session_ready_ms=4.0,
                    t_end_s=i + 1.0,
                    turns=1,
                )
            )
        for k in range(dropped):
            sink.event("start_dropped", {"session_id": f"d{k}", "reason": "max_concurrency"})
        if end:
            sink.event(
                "run_end",
                {
                    "late_starts": 1,
                    "dropped_starts": dropped,
                    "validity": {"valid": False, "reasons": ["event-loop lag p99 80 ms"]},
                },
            )


def test_report_rebuilds_all_files_from_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    write_run(run, [500.0, 600.0, 700.0, 800.0], failed=1, dropped=2)
    assert main(["report", str(run)]) == 0
    summary = orjson.loads((run / "summary.json").read_bytes())
    assert summary["totals"]["sessions_total"] == 4
    assert summary["totals"]["sessions_failed"] == 1
    assert summary["totals"]["dropped_starts"] == 2 and summary["totals"]["late_starts"] == 1
    assert summary["metrics"]["voice_to_voice_ms"]["p50"] == 650.0
    assert summary["validity"]["valid"] is False
    assert summary["sessions"]["failure_types"] == {"ScenarioFailed": 1}
    # the run's own thresholds are re-evaluated by default
    assert [t["expr"] for t in summary["thresholds"]] == ["voice_to_voice_ms.p95<10000"]
    assert (run / "summary.csv").read_text().startswith("metric,count,mean")
    html = (run / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "ScenarioFailed" in html
    out = capsys.readouterr().out
    assert "voice_to_voice_ms" in out and "RESULTS NOT VALID" in out


def test_report_threshold_failure_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    write_run(run, [500.0, 600.0, 700.0, 800.0])
    assert main(["report", str(run), "-q", "--threshold", "voice_to_voice_ms.p95<700"]) == 2
    assert "voice_to_voice_ms.p95<700" in capsys.readouterr().err
    assert main(["report", str(run), "-q", "--threshold", "voice_to_voice_ms.p95<900"]) == 0


def test_report_of_a_crashed_run(tmp_path: Path) -> None:
    """No run_end line and a cut-off last line: still a report, marked as such."""
    run = tmp_path / "run"
    write_run(run, [500.0, 600.0], end=False)
    with open(run / "results.jsonl", "ab") as fp:
        fp.write(b'{"kind":"turn","session_id":"s9","tur')
    assert not read_run_meta(run / "results.jsonl").ended
    assert main(["report", str(run), "-q"]) == 0
    summary = orjson.loads((run / "summary.json").read_bytes())
    assert summary["totals"]["sessions_total"] == 2
    assert summary["run"]["truncated"] is True and "ended" in summary["run"]


def test_report_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 1
    assert "no such directory" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 1
    assert "no results.jsonl" in capsys.readouterr().err
    run = tmp_path / "run"
    write_run(run, [500.0])
    assert main(["report", str(run), "--threshold", "voice_to_voice_ms.p95<<1"]) == 1
    assert "voice_to_voice_ms.p95<<1" in capsys.readouterr().err
    (run / "results.jsonl").write_bytes(b'{"kind":"session"}\n{"kind":"turn"}\n')
    assert main(["report", str(run)]) == 1
    assert "results.jsonl:1" in capsys.readouterr().err
    assert main(["report"]) == 1


def test_compare_shows_metric_deltas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, [500.0, 500.0, 500.0])
    write_run(b, [600.0, 600.0, 600.0])
    assert main(["report", str(a), "-q"]) == 0  # a has a summary.json, b only results
    assert main(["report", "--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    # identical samples, so the noise is the 2 % floor: +20 % is beyond it
    row = next(line for line in out.splitlines() if line.split()[:1] == ["voice_to_voice_ms"])
    assert row.split()[1:4] == ["regressed", "p50", "+20.0%,"]
    assert (b / "summary.json").is_file()
    assert main(["report", "--compare", str(a), str(tmp_path / "missing")]) == 1


def test_report_of_a_test_folder_names_its_parts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``orchestrator test`` writes OUT/part-1, OUT/part-2, ... when its scenarios need
    several runs: ``report OUT`` says which directories to report."""
    for k in (1, 2, 10):
        write_run(tmp_path / f"part-{k}", [500.0])
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    parts = ", ".join(str(tmp_path / f"part-{k}") for k in (1, 2, 10))
    assert err.splitlines()[0] == (
        f"orchestrator report: error: {tmp_path}: no results.jsonl in this directory; "
        f"it holds parts: {parts}; report each"
    )
