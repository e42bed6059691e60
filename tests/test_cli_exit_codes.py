"""Exit codes of the command line: 0 ok, 1 usage or configuration error (argparse's own
errors included), 2 thresholds failed, 3 expectations failed (``run
--fail-on-expectations``), 130/143/129 interrupted (see test_cli_signals.py).

Runs use the embedded server in this process (``--server-in-process``) on a loopback
port 0, text-only scenarios, under ``fail_after``-style timeouts of the suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import Parser, build_parser, main
from orchestrator.cli.options import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_EXPECTATIONS,
    EXIT_OK,
    EXIT_THRESHOLDS,
    EXIT_USAGE,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"
FAST = ["--server-ttfb-ms", "20", "--server-realtime-factor", "0", "--server-in-process"]


def test_the_codes_are_distinct() -> None:
    assert (EXIT_OK, EXIT_USAGE, EXIT_THRESHOLDS, EXIT_EXPECTATIONS) == (0, 1, 2, 3)
    assert EXIT_ERROR == EXIT_USAGE


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "--rate", "-1"], "argument --rate: must be a number >= 0"),
        (["run", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["run", "--restart", "sometimes"], "argument --restart: invalid choice"),
        (["serve", "--port", "x"], "argument --port"),
        (["serve", "--first-delta", "bogus:1"], "unknown distribution 'bogus'"),
        (["report", "--compare", "only-one"], "argument --compare"),
        (["speak", "--speed", "fast"], "argument --speed"),
        (["validate"], "the following arguments are required: FILE"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
    ],
)
def test_usage_errors_exit_1_and_say_what_was_wrong(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert needle in err and "error:" in err
    assert "--help" in err  # a pointer to the help, not pages of usage
    assert err.count("\n") <= 3


def test_the_parser_and_its_subparsers_exit_1_not_2() -> None:
    parser = build_parser()
    assert isinstance(parser, Parser)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["run", "--sessions", "0"])
    assert info.value.code == EXIT_USAGE


def test_no_command_prints_the_help_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    assert "exit codes:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_help_lists_the_exit_codes(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert EXIT_CODES_HELP.strip() in out  # the table as written, not re-wrapped
    for code in ("0 ", "1 ", "2 ", "3 ", "130/143/129"):
        assert f"\n  {code}" in out


def test_serve_configuration_error_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    # an error found after parsing (the config), no longer argparse's 2
    assert main(["serve", "--no-hearing", "--hear-dir", "x"]) == EXIT_ERROR
    assert "exclude" in capsys.readouterr().err


def test_run_with_a_bad_rate_exits_1_in_a_real_process(tmp_path: Path) -> None:
    """The issue's acceptance check, as a user types it (one subprocess)."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "--rate", "-1", "--out",
         str(tmp_path / "never")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "--rate" in done.stderr and not (tmp_path / "never").exists()


def _impossible(tmp_path: Path) -> Path:
    """faq_text.toml with an expectation the embedded server never meets."""
    text = (EXAMPLES / "faq_text.toml").read_text()
    text = text.replace(
        'expect_tool_args = { topic = "opening_hours" }', 'expect_tool_args = { topic = "returns" }'
    )
    path = tmp_path / "impossible.toml"
    path.write_text(text)
    return path


def test_failed_expectations_exit_3_with_fail_on_expectations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = str(_impossible(tmp_path))
    argv = ["run", scenario, "--sessions", "2", "--concurrency", "2", "--quiet", *FAST]
    # without the flag a failed session is a measurement: exit 0
    assert main([*argv, "--out", str(tmp_path / "a")]) == EXIT_OK
    capsys.readouterr()
    code = main([*argv, "--out", str(tmp_path / "b"), "--fail-on-expectations"])
    assert code == EXIT_EXPECTATIONS
    assert "expectations failed: 2 session(s) failed with ScenarioFailed" in capsys.readouterr().err
    # a failed threshold wins over failed expectations: thresholds are the explicit gate
    code = main(
        [*argv, "--out", str(tmp_path / "c"), "--fail-on-expectations",
         "--threshold", "sessions_failed==0"]
    )  # fmt: skip
    assert code == EXIT_THRESHOLDS


def test_fail_on_expectations_passes_when_they_hold(tmp_path: Path) -> None:
    argv = ["run", str(EXAMPLES / "faq_text.toml"), "--sessions", "2", "--quiet", *FAST]
    assert main([*argv, "--out", str(tmp_path / "ok"), "--fail-on-expectations"]) == EXIT_OK
