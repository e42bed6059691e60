"""The scheduled server freeze on the command line: ``serve --freeze`` and
``run --server-freeze`` (parsing, validation before anything starts, and one short real
run showing the freeze counts from the run's start)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from orchestrator.cli import build_parser, main
from orchestrator.cli.run_setup import UsageError, prepare
from orchestrator.cli.serve import config_from_args
from orchestrator.metrics import read_results
from orchestrator.mockserver import FreezeWindow

QUICK = [
    "--speech-ms", "400", "--lead-ms", "100", "--tail-ms", "100",
    "--realtime-factor", "4", "--server-realtime-factor", "0", "--server-ttfb-ms", "50",
    "--quiet",
]  # fmt: skip


def run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_serve_freeze_is_repeatable() -> None:
    args = build_parser().parse_args(["serve", "--freeze", "5:2000", "--freeze", "0.5:100"])
    config = config_from_args(args)
    assert config.faults.freeze_windows == (FreezeWindow(5.0, 2000.0), FreezeWindow(0.5, 100.0))
    assert config_from_args(build_parser().parse_args(["serve"])).faults.freeze_windows == ()


@pytest.mark.parametrize("bad", ["5", "5:0", "x:100", "-1:100"])
def test_serve_rejects_bad_freeze_naming_the_option(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", f"--freeze={bad}"])
    err = capsys.readouterr().err
    assert "--freeze" in err and repr(bad) in err


def test_run_server_freeze_reaches_the_embedded_server_config() -> None:
    setup = prepare(run_args("--server-freeze", "2:500", "--server-freeze", "7:250"))
    assert setup.server_config is not None
    assert setup.server_config.faults.freeze_windows == (
        FreezeWindow(2.0, 500.0),
        FreezeWindow(7.0, 250.0),
    )
    assert list(setup.config["server"]["faults"]["freezes"]) == [
        {"at_s": 2.0, "ms": 500.0},
        {"at_s": 7.0, "ms": 250.0},
    ]
    assert prepare(run_args()).server_config.faults.freeze_windows == ()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "argv",
    [
        ["--server-freeze", "2"],
        ["--server-freeze", "2:0"],
        ["--server-freeze", "2:500", "--server-freeze", "soon:500"],
        ["--url", "ws://127.0.0.1:1/v1", "--server-freeze", "2:500"],
    ],
)
def test_run_rejects_bad_server_freeze_before_running(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="--server-freeze"):
        prepare(run_args(*argv))
    out = tmp_path / "out"
    assert main(["run", *argv, "--out", str(out), "--quiet"]) == 1
    assert "--server-freeze" in capsys.readouterr().err
    assert not out.exists()


def test_run_freeze_counts_from_the_run_start(tmp_path: Path) -> None:
    # both sessions start at the run's t0, into a server frozen from t0 for 1.5 s: their
    # session.created is held, so session_ready_ms (from the planned start) is >= 1.5 s
    out = tmp_path / "out"
    argv = ["run", "--sessions", "2", "--concurrency", "2", "--out", str(out), *QUICK]
    assert main([*argv, "--server-freeze", "0:1500"]) == 0
    results = read_results(out / "results.jsonl")
    assert {s.status for s in results.sessions} == {"completed"}
    ready = [s.session_ready_ms for s in results.sessions]
    assert all(r is not None and r >= 1490 for r in ready), ready
