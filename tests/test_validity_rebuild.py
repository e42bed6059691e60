"""The embedded target's verdict lives in ``results.jsonl`` (its ``target`` line), so every
summary of a run, the one the run wrote and any ``orchestrator report`` rebuilds later,
has the same validity and ``run.target``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.cli.run import record_target
from orchestrator.cli.target_process import EmbeddedTarget
from orchestrator.supervisor import JsonlSink, read_run_meta
from orchestrator.supervisor.outputs import SUMMARY_FILE, load_summary, write_outputs
from orchestrator.supervisor.validity import ValidityLimits, merge_validity

QUICK = [
    "--speech-ms", "300", "--lead-ms", "0", "--tail-ms", "300", "--quiet",
    "--server-ttfb-ms", "fixed:50", "--server-words", "fixed:2", "--server-realtime-factor", "0",
]  # fmt: skip
VALID_END = {"valid": True, "reasons": []}


def _groundtruth(path: Path, late_ms: list[float]) -> Path:
    path.write_bytes(b"".join(orjson.dumps({"send_late_ms": v}) + b"\n" for v in late_ms))
    return path


def _results(run_dir: Path, target: EmbeddedTarget | None) -> None:
    """A results file as a run writes it: header, ``run_end`` (the generator kept up), then
    the target's line when there is a target."""
    with JsonlSink(run_dir / "results.jsonl") as sink:
        sink.event("run", {"run": {"name": run_dir.name}, "config": {}})
        end = {"t_s": 1.0, "late_starts": 0, "dropped_starts": 0, "validity": VALID_END}
        sink.event("run_end", {**end, "monitor": {}, "interrupted": False})
        record_target(target, ValidityLimits(target_send_p99_ms=50.0), sink)


def _summary(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((run_dir / SUMMARY_FILE).read_bytes())
    return data


def test_an_invalid_target_stays_invalid_after_report(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    gt = _groundtruth(tmp_path / "gt.jsonl", [200.0, 180.0, 5.0])
    _results(run_dir, EmbeddedTarget(in_process=False, processes=1, groundtruth=[gt]))
    meta = read_run_meta(run_dir / "results.jsonl")
    assert meta.ended and meta.validity == VALID_END  # the generator's verdict alone
    assert meta.target is not None and meta.target["validity"]["valid"] is False
    first = write_outputs(run_dir).summary  # as the run wrote it
    assert first["validity"]["valid"] is False
    (reason,) = first["validity"]["reasons"]
    assert reason.startswith("embedded server (own process): send lateness p99 200.0 ms")
    assert first["run"]["target"]["send_late_p99_ms"] == 200.0
    assert first["run"]["target"]["mode"] == "process"
    # rebuilt by the CLI: same verdict, same target figures
    assert main(["report", str(run_dir), "--quiet"]) == 0
    rebuilt = _summary(run_dir)
    assert rebuilt["validity"] == first["validity"]
    assert rebuilt["run"]["target"] == first["run"]["target"]
    # rebuilt by load_summary when summary.json is missing
    (run_dir / SUMMARY_FILE).unlink()
    loaded = load_summary(run_dir)
    assert loaded["validity"] == first["validity"]
    assert loaded["run"]["target"] == first["run"]["target"]


def test_a_target_verdict_without_run_end_is_kept(tmp_path: Path) -> None:
    """A crashed run (no ``run_end``) still has its target's verdict in the summary."""
    run_dir = tmp_path / "run"
    gt = _groundtruth(tmp_path / "gt.jsonl", [300.0])
    with JsonlSink(run_dir / "results.jsonl") as sink:
        sink.event("run", {"run": {"name": "run"}, "config": {}})
        target = EmbeddedTarget(in_process=True, processes=1, groundtruth=[gt])
        record_target(target, ValidityLimits(), sink)
    summary = write_outputs(run_dir).summary
    assert summary["validity"]["valid"] is False
    assert "in-process" in summary["validity"]["reasons"][0]
    assert "ended" in summary["run"]


def test_results_without_a_target_line_still_load(tmp_path: Path) -> None:
    """``--url`` runs and results files written before the ``target`` line existed."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _results(run_dir, None)
    assert read_run_meta(run_dir / "results.jsonl").target is None
    summary = write_outputs(run_dir).summary
    assert summary["validity"] == VALID_END
    assert "target" not in summary["run"]


def test_unreadable_ground_truth_writes_no_target_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    not_a_file = tmp_path / "gt.jsonl"
    not_a_file.mkdir()  # reading it raises IsADirectoryError
    _results(run_dir, EmbeddedTarget(in_process=False, processes=1, groundtruth=[not_a_file]))
    assert read_run_meta(run_dir / "results.jsonl").target is None
    assert write_outputs(run_dir).summary["validity"] == VALID_END


@pytest.mark.parametrize("fleet", [[], ["--workers", "2"]], ids=["single", "fleet"])
def test_a_run_and_its_report_agree_on_the_target(tmp_path: Path, fleet: list[str]) -> None:
    """End to end: the run writes the ``target`` line (single and fleet runs alike) and
    ``orchestrator report`` rebuilds the same validity and target figures. The limit is
    0 ms, so any send lateness at all makes the run invalid."""
    out = tmp_path / "run"
    argv = ["run", "--sessions", "2", "--concurrency", "2", "--out", str(out), *QUICK, *fleet]
    assert main([*argv, "--target-lateness-limit-ms", "0"]) == 0
    meta = read_run_meta(out / "results.jsonl")
    assert meta.target is not None and meta.target["figures"]["responses"] == 2
    first = _summary(out)
    assert first["run"]["target"] == meta.target["figures"]
    assert first["validity"] == merge_validity(meta.validity, meta.target["validity"])
    if meta.target["figures"]["send_late_p99_ms"] > 0:
        assert first["validity"]["valid"] is False
        assert any("embedded server" in r for r in first["validity"]["reasons"])
    (out / SUMMARY_FILE).unlink()
    assert main(["report", str(out), "--quiet"]) == 0
    rebuilt = _summary(out)
    assert rebuilt["validity"] == first["validity"]
    assert rebuilt["run"]["target"] == first["run"]["target"]
