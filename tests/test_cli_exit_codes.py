"""Exit codes of the command line: 0 ok, 1 usage or configuration error (argparse's own
errors included), 2 thresholds failed, 3 expectations failed (``run
--fail-on-expectations``), 130/143/129 interrupted (see test_cli_signals.py).

Runs use the embedded server in this process (``--server-in-process``) on a loopback
port 0, text-only scenarios, under ``fail_after``-style timeouts of the suite.
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import orchestrator.cli as cli
from orchestrator.cli import SUBCOMMANDS, Parser, build_parser, main
from orchestrator.cli.options import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_EXPECTATIONS,
    EXIT_OK,
    EXIT_THRESHOLDS,
    EXIT_USAGE,
)
from orchestrator.cli.signals import EXIT_INTERRUPTED, EXIT_TERMINATED

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


def _serve() -> subprocess.Popen[str]:
    """``orchestrator serve`` in a real process, once it printed its banner (guarded)."""
    cmd = [sys.executable, "-m", "orchestrator", "serve", "--port", "0", "--no-hearing",
           "--log-level", "ERROR"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)  # guard: the server starts
    if not ready:
        proc.kill()
        proc.communicate()
        pytest.fail("orchestrator serve printed nothing within 30 s")
    assert proc.stdout.readline().startswith("mock realtime server on ws://127.0.0.1:")
    return proc


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGTERM, EXIT_TERMINATED)]
)
def test_serve_stopped_by_a_signal_exits_like_run(sig: signal.Signals, code: int) -> None:
    """``serve`` stopped by Ctrl-C / SIGTERM exits 130 / 143 (it exited 0), after its
    counters, as ``run`` does and its ``--help`` says."""
    proc = _serve()
    try:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert '"connections_accepted": 0' in err.splitlines()[-1], err  # the counters
    assert "Traceback" not in err


def test_ctrl_c_while_the_command_loads_exits_130_quietly() -> None:
    """Ctrl-C in the first second (the subcommands still importing): no traceback, one
    line, 130. The signal is raised from inside ``build_parser`` (a real SIGINT, in a real
    process) so the moment is not left to timing."""
    code = (
        "import os, signal, sys\n"
        "import orchestrator.cli as cli\n"
        "real = cli.build_parser\n"
        "def build():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return real()\n"
        "cli.build_parser = build\n"
        "sys.exit(cli.main(['run', '--sessions', '5']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == EXIT_INTERRUPTED, done.stderr
    assert done.stderr == "interrupted\n"


def test_importing_the_entry_point_loads_nothing_heavy() -> None:
    """The console script imports ``orchestrator.cli`` before ``main`` can catch Ctrl-C:
    that import must stay cheap (the subcommands, trio and numpy load inside ``main``)."""
    code = (
        "import sys\n"
        "import orchestrator.cli\n"
        "print(sorted(m for m in ('trio', 'numpy', 'orchestrator.cli.options',"
        " 'orchestrator.mockserver') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_ctrl_c_in_main_exits_130_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["run"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"


def test_ctrl_c_in_an_exception_group_exits_130_and_other_errors_propagate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command's ``trio.run`` may raise Ctrl-C wrapped in a group: still 130, quietly;
    a group that holds anything else is not swallowed."""
    raised: list[BaseException] = [BaseExceptionGroup("run", [KeyboardInterrupt()])]

    def interrupted() -> None:
        raise raised[0]

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["run"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"
    raised[0] = BaseExceptionGroup("run", [KeyboardInterrupt(), ValueError("boom")])
    with pytest.raises(BaseExceptionGroup):
        main(["run"])


def _misspelled(option: str) -> str:
    """``option`` with one letter dropped from its middle (``--sessions`` -> ``--sesions``):
    not a prefix of it, so argparse's abbreviations do not accept it."""
    middle = 2 + (len(option) - 2) // 2
    return option[:middle] + option[middle + 1 :]


def test_a_misspelled_option_is_blamed_on_its_subcommand() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "--sesions", "5"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == EXIT_USAGE
    assert done.stderr.splitlines()[0] == (
        "orchestrator run: error: unrecognized arguments: --sesions (did you mean --sessions?)"
    )


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_suggests_its_own_option(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = build_parser().commands[command]
    option = max((s for a in sub._actions for s in a.option_strings), key=len)
    typo = _misspelled(option)
    positional = {"test": ["x.toml"], "validate": ["x.toml"]}.get(command, [])
    assert main([command, *positional, typo]) == EXIT_USAGE
    first = capsys.readouterr().err.splitlines()[0]
    assert first == (
        f"orchestrator {command}: error: unrecognized arguments: {typo} (did you mean {option}?)"
    )


def test_unknown_arguments_without_a_near_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "x.toml", "--zzzzzz"]) == EXIT_USAGE
    first = capsys.readouterr().err.splitlines()[0]
    assert first == "orchestrator validate: error: unrecognized arguments: --zzzzzz"
    assert main(["--zzzzzz"]) == EXIT_USAGE  # no subcommand: the top-level parser's
    assert capsys.readouterr().err.startswith("orchestrator: error: unrecognized arguments")
    # before the subcommand's name: the top-level parser's too, not the subcommand's
    assert main(["--verison", "run", "--sesions", "5"]) == EXIT_USAGE
    first = capsys.readouterr().err.splitlines()[0]
    assert (
        first == "orchestrator: error: unrecognized arguments: --verison (did you mean --version?)"
    )
    # one hint for one near option among several unknown ones, two for two
    assert main(["run", "--sesions", "5", "--zzzzzz"]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines()[0].endswith("(did you mean --sessions?)")
    assert main(["run", "--sesions", "5", "--concurency", "3"]) == EXIT_USAGE
    assert (
        capsys.readouterr()
        .err.splitlines()[0]
        .endswith("(did you mean --sessions for --sesions, --concurrency for --concurency?)")
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["run", "--speak", "hi", "--voice-noise", "pinkk", "--sessions", "1"],
         "orchestrator run: error: --voice-noise pinkk: not white, pink or an existing .wav file"),
        (["speak", "hi", "--out", "q.wav", "--noise", "pinkk"],
         "orchestrator speak: error: --noise pinkk: not white, pink or an existing .wav file"),
    ],
)  # fmt: skip
def test_a_noise_bed_that_is_nothing_names_the_option_and_the_choices(
    argv: list[str],
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines()[0] == says
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing written
