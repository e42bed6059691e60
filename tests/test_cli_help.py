"""``--help`` of every subcommand: a one-line usage before the options, and the exit
codes at the end; ``serve`` and ``run --server-*`` agree on the embedded server's
defaults and on how stall options combine (the behaviour, not only the help text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import SUBCOMMANDS, build_parser, main
from orchestrator.cli.options import SERVER_OPTIONS, STALL_MS, build_server_config
from orchestrator.cli.run_setup import prepare
from orchestrator.cli.serve import config_from_args
from orchestrator.mockserver import ServerConfig


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main([*argv, "--help"]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_usage_is_one_line_and_the_exit_codes_close_the_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _help(capsys, command)
    assert lines[0].startswith(f"usage: orchestrator {command} [options]")
    assert lines[1] == ""  # one line of usage, then the description
    tail = "\n".join(lines[-8:])
    assert "exit codes:" in tail and "  0 " in tail and "  1 " in tail
    if command in ("run", "serve", "test"):
        assert "2        a --threshold failed" in tail and "130/143/129" in tail


def test_run_usage_names_its_positionals(capsys: pytest.CaptureFixture[str]) -> None:
    assert _help(capsys, "run")[0] == "usage: orchestrator run [options] [SCENARIO[:WEIGHT] ...]"
    assert _help(capsys)[0] == "usage: orchestrator [options] COMMAND ..."


def _serve(*argv: str) -> ServerConfig:
    return config_from_args(build_parser().parse_args(["serve", "--no-hearing", *argv]))


def _run(tmp_path: Path, *argv: str) -> ServerConfig:
    args = build_parser().parse_args(["run", "--out", str(tmp_path / "r"), *argv])
    config = prepare(args, env={}).server_config
    assert config is not None
    return config


def test_each_documented_default_is_the_servers_own() -> None:
    # what serve fills in when an option is not given changes nothing: run, which leaves
    # options it was not given to the server, gets the same server
    plain = build_server_config({})
    for opt in SERVER_OPTIONS:
        if opt.default is not None:
            assert build_server_config({opt.name: opt.default}) == plain, opt.name


@pytest.mark.parametrize(
    ("serve_argv", "run_argv", "expected"),
    [
        ([], [], (None, 0.0, 0.0)),
        (["--ping-interval-s", "5"], ["--server-ping-interval-s", "5"], (5.0, 0.0, 0.0)),
        (["--stall-probability", "0.3"], ["--server-stall-rate", "0.3"], (None, 0.3, STALL_MS)),
        (["--stall-ms", "500"], ["--server-stall-ms", "500"], (None, 1.0, 500.0)),
        (["--stall-probability", "0.2", "--stall-ms", "50"],
         ["--server-stall-probability", "0.2", "--server-stall-ms", "50"], (None, 0.2, 50.0)),
    ],
)  # fmt: skip
def test_serve_and_run_build_the_same_server(
    serve_argv: list[str], run_argv: list[str], expected: tuple[object, ...], tmp_path: Path
) -> None:
    served, ran = _serve(*serve_argv), _run(tmp_path, *run_argv)
    for config in (served, ran):
        got = (config.ping_interval_s, config.faults.stall_probability, config.faults.stall_ms)
        assert got == expected
    assert served.faults == ran.faults and served.latency == ran.latency
