"""``orchestrator validate FILE...``: check scenario files without running them.

Each file gets every check ``orchestrator run`` makes before its clock starts, short of
synthesizing speech: the file parses, every field is valid (all problems at once, each
named by its field path), audio and noise files exist and WAVs hold speech where a server
VAD must find some, the caller-voice engine of ``speak`` turns is installed and has the
voices asked for, and the ``[server]`` tool rules compile for the embedded server. With
``--together`` it also checks that the files can share one run (``orchestrator run A B``):
their greetings for the embedded server agree (:mod:`orchestrator.cli.mix`); without it,
each file is judged on its own (a folder of scenarios run one by one).

Synthesis itself (seconds per line on a cold cache) is left to the run: an installed
engine that then fails on a line is reported by ``run``, before its clock starts.

Output: ``FILE: ok (N turns)`` on stdout for each good file; every problem of every bad
file on stderr. Exit codes: 0 every file is good; 1 any file is bad (or none given).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from orchestrator.cli.mix import MixError, merged_server_hints, tool_rules_of
from orchestrator.cli.options import EXIT_ERROR, EXIT_OK, add_subcommand
from orchestrator.scenario import ScenarioDriver, ScenarioError, load_scenario

__all__ = ["add_parser", "check_scenario_file", "handle"]

EPILOG = """\
exit codes:
  0        every file is valid
  1        a file has a problem (each one is listed on stderr), or a usage error
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``validate`` on ``subparsers``."""
    p = add_subcommand(
        subparsers,
        "validate",
        help="check scenario files without running them",
        description=(
            "Check scenario files (.toml or .json) as 'orchestrator run' would before "
            "starting: every field, audio and noise files, the caller-voice engine of "
            "speak turns, the embedded server's tool rules (--together: and that the "
            "files can be mixed in one run). Nothing is synthesized, nothing connects."
        ),
        handler=handle,
        epilog=EPILOG,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario files to check")
    p.add_argument(
        "--together",
        action="store_true",
        help="also check that the files can be mixed in one 'orchestrator run A B' (the "
        "embedded server's greeting is the same for all)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no 'ok' lines")
    return p


def check_scenario_file(path: str) -> tuple[ScenarioDriver | None, list[str]]:
    """``(driver, problems)`` of one scenario file: the driver (built, not prepared: no
    synthesis) when the file is good, else ``None`` and the problem lines (the first one
    names the file). Reads the file and its audio; starts and writes nothing."""
    driver, report, _ = _checked(path)
    return driver, report.splitlines()


def _checked(path: str) -> tuple[ScenarioDriver | None, str, int]:
    """``(driver, report, number of problems)`` of one scenario file (see
    :func:`check_scenario_file`; a good file: ``(driver, "", 0)``)."""
    try:
        driver = ScenarioDriver(load_scenario(path))
    except ScenarioError as exc:
        return None, str(exc), max(1, len(exc.problems))
    try:
        tool_rules_of(driver.scenario.origin, driver.server_hints())
    except MixError as exc:
        return None, str(exc), 1
    return driver, "", 0


def handle(args: argparse.Namespace) -> int:
    """Run ``orchestrator validate``; returns the exit code."""
    problems = bad_files = 0
    good: list[ScenarioDriver] = []
    for path in args.files:
        driver, report, count = _checked(path)
        if driver is None:
            problems += count
            bad_files += 1
            print(report, file=sys.stderr)
            continue
        good.append(driver)
        if not args.quiet:
            turns = len(driver.scenario.turns)
            print(f"{path}: ok ({_counted(turns, 'turn')})")
    found = (
        [f"{_counted(problems, 'problem')} in {_counted(bad_files, 'file')}"] if problems else []
    )
    if args.together and len(good) > 1:
        try:
            merged_server_hints([(d.scenario.origin, d.server_hints()) for d in good])
        except MixError as exc:
            print(f"together: {exc}", file=sys.stderr)
            found.append("1 problem with the files together")
    if found:
        print(f"orchestrator validate: {', '.join(found)}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _counted(n: int, noun: str) -> str:
    """``"1 problem"``, ``"9 problems"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
