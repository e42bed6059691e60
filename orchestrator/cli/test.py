"""``orchestrator test PATH...``: run scenario files as a regression suite.

Each scenario (files, folders of ``*.toml`` files, glob patterns) runs ``--repeat N`` times
at ``--concurrency C`` against the embedded server (default) or ``--url``: one ``run`` of
the scenarios mixed with weight 1 (:mod:`orchestrator.cli.mix`), ``N`` sessions of each,
so its ``--out`` folder holds what ``run`` writes (``results.jsonl``, ``summary.json``,
``report.html``). The embedded server greets every session of a run alike, so scenarios
whose ``[server] greeting`` differs run as successive parts (``OUT/part-1``, ...; with
``--url`` the server decides and there is one run). Every part is checked before the first
one starts: a bad file or option runs nothing.

Then a table per scenario (runs, passed, pass rate, the p95 of the main latencies) and the
failed runs with what was expected and what happened (:mod:`orchestrator.metrics.suite`);
``--junit FILE`` writes one testcase per run (:mod:`orchestrator.metrics.junit`).

A scenario passes when its pass rate is at least ``--min-pass-rate`` (default 1: every run
passes; lower it for real models, which are flaky by nature). Exit codes: 0 every scenario
passed; 1 usage or configuration error, nothing ran (or a run crashed); 2 a ``--threshold``
failed (judged per run, as ``run`` does; 2 wins over 3); 3 a scenario is under its pass
rate; 130 / 143 / 129 interrupted (the runs done so far are still reported).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from orchestrator.cli.options import (
    EXIT_ERROR,
    EXIT_EXPECTATIONS,
    EXIT_OK,
    EXIT_THRESHOLDS,
    add_server_options,
    add_subcommand,
    fail,
    positive_int,
)
from orchestrator.cli.run_setup import EXPECTATION_FAILURE, UsageError, prepare
from orchestrator.cli.target_process import SERVER_PREFIX
from orchestrator.metrics import ThresholdError, read_results
from orchestrator.metrics.junit import write_junit
from orchestrator.metrics.suite import (
    ScenarioOutcome,
    SuiteScenario,
    suite_outcomes,
    suite_passed,
    suite_table,
)
from orchestrator.scenario import ScenarioError, load_scenario
from orchestrator.supervisor import PlanError
from orchestrator.supervisor.outputs import RESULTS_FILE

__all__ = ["Part", "add_parser", "expand_paths", "handle", "parts_of", "pass_rate"]

#: ``run`` options that ``test`` takes as they are (same spelling, type, default and help).
RUN_OPTIONS: dict[str, tuple[str, ...]] = {
    "target": ("url", "provider", "dialect", "model", "deployment", "api_version", "api_key_env"),
    "embedded server (only without --url): process": (
        "server_in_process",
        "server_processes",
        "target_lateness_limit_ms",
    ),
    "session": ("max_session_s", "voice_cache"),
    "output": ("out", "overwrite", "prices", "threshold", "tag", "seed", "progress", "quiet"),
}


class SuiteError(ValueError):
    """A PATH that names no scenario file, or scenarios that cannot form one suite."""


def pass_rate(text: str) -> float:
    """``--min-pass-rate``: a fraction in [0, 1] (``0.9``) or a percentage (``90%``)."""
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw.removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    value = value / 100 if percent else value
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(
            f"must be a fraction in 0..1 or a percentage in 0..100%, got {text!r}"
        )
    return value


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def expand_paths(paths: Sequence[str]) -> list[Path]:
    """The scenario files of the PATH arguments, in order, each once: a file as given; a
    folder's ``*.toml`` files sorted by name (not its subfolders: ``DIR/**/*.toml`` takes
    them); a glob pattern's matching files, sorted (``**`` matches subfolders).

    Raises :class:`SuiteError` naming every PATH that gives no file."""
    files: list[Path] = []
    problems: list[str] = []
    for text in paths:
        path = Path(text)
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = sorted(p for p in path.glob("*.toml") if p.is_file())
            if not found:
                problems.append(f"{text}: a folder without *.toml scenario files")
        elif _is_glob(text):
            found = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
            if not found:
                problems.append(f"{text}: no file matches this pattern")
        else:
            found = []
            problems.append(f"{text}: no such file or folder")
        files.extend(found)
    if problems:
        raise SuiteError("\n".join(problems))
    seen: set[Path] = set()
    unique = []
    for path in files:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


@attrs.define(eq=False)
class Part:
    """The scenarios that run together in one ``run`` (one embedded server: one greeting),
    and where that run writes (``None``: not decided yet)."""

    scenarios: list[SuiteScenario]
    out: Path | None


def parts_of(files: Sequence[Path], embedded: bool) -> list[list[SuiteScenario]]:
    """Load ``files`` and split them into the runs they need: one, or with the embedded
    server one per ``[server] greeting`` (in order of first appearance).

    Raises :class:`SuiteError` with every file's problems, or when two files share a
    scenario ``name`` (their results could not be told apart)."""
    problems: list[str] = []
    by_greeting: dict[str | None, list[SuiteScenario]] = {}
    names: dict[str, str] = {}
    for path in files:
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            problems.append(str(exc))
            continue
        other = names.setdefault(scenario.name, str(path))
        if other != str(path):
            problems.append(
                f"scenarios {other} and {path} are both named {scenario.name!r}: give them "
                "different names so that their results can be told apart"
            )
            continue
        greeting = scenario.server.greeting if embedded else None
        by_greeting.setdefault(greeting, []).append(
            SuiteScenario(name=scenario.name, file=str(path))
        )
    if problems:
        raise SuiteError("\n".join(problems))
    return list(by_greeting.values())


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``test`` on ``subparsers``: its own options, and ``run``'s target, server
    and output options (:data:`RUN_OPTIONS`, taken from ``run``'s parser)."""
    p = add_subcommand(
        subparsers,
        "test",
        help="run scenario files as a regression suite (table, JUnit, pass rates)",
        description=(
            "Run every scenario of PATH (files, folders of *.toml files, glob patterns) "
            "--repeat times against the embedded server (default) or --url, check its "
            "expectations, and print a table per scenario; --junit writes a JUnit file "
            "for CI. The run's results.jsonl, summary and report.html go to --out, as "
            "with 'orchestrator run'."
        ),
        handler=handle,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="scenario files, folders, globs")
    suite = p.add_argument_group("suite")
    suite.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        metavar="N",
        help="runs of each scenario (default 1)",
    )
    suite.add_argument(
        "--concurrency",
        type=positive_int,
        default=10,
        metavar="C",
        help="sessions at once, across the scenarios (default 10)",
    )
    suite.add_argument(
        "--min-pass-rate",
        type=pass_rate,
        default=1.0,
        metavar="P",
        help="a scenario passes when at least this share of its runs pass: 0..1 or a "
        "percentage (default 1: every run; lower it for real models, flaky by nature)",
    )
    suite.add_argument(
        "--junit",
        metavar="FILE",
        help="write a JUnit XML file: one testcase per run, a failed expectation as its "
        "failure (Jenkins, GitLab and GitHub test reporters read it)",
    )
    _add_run_options(p)
    return p


def _run_parser() -> argparse.ArgumentParser:
    from orchestrator.cli import Parser
    from orchestrator.cli.run import add_parser as add_run

    parser = Parser(prog="orchestrator")
    return add_run(parser.add_subparsers())


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """``run``'s options of :data:`RUN_OPTIONS` (the action objects themselves, as
    argparse's own ``parents=`` shares them) and its ``--server-*`` options."""
    actions = {a.dest: a for a in _run_parser()._actions}
    for title, dests in RUN_OPTIONS.items():
        group = p.add_argument_group(title)
        if title.startswith("embedded server"):
            add_server_options(
                p, SERVER_PREFIX, defer=True, title="embedded server (only without --url): {}"
            )
        for dest in dests:
            group._add_action(actions[dest])


def _run_namespace(args: argparse.Namespace, part: Part) -> argparse.Namespace:
    """``run``'s namespace for ``part``: ``run``'s defaults, the options ``test`` shares
    with it as given, the part's files mixed with weight 1, ``--repeat`` sessions each."""
    run = _run_parser().parse_args([])
    for key, value in vars(args).items():
        if hasattr(run, key) and key not in ("handler", "scenarios"):
            setattr(run, key, value)
    run.scenarios = [s.file for s in part.scenarios]
    run.sessions = len(part.scenarios) * args.repeat
    run.concurrency = args.concurrency
    run.out = None if part.out is None else str(part.out)
    return run


def _err(message: str) -> int:
    return fail("test", message)


def _check(args: argparse.Namespace) -> list[Part]:
    """Every part of the suite, checked as ``run`` checks its options (nothing written).
    Raises :class:`SuiteError`, ``UsageError``, ``ThresholdError`` or ``PlanError``."""
    files = expand_paths(args.paths)
    groups = parts_of(files, embedded=args.url is None)
    out = None if args.out is None else Path(args.out)
    if out is None and len(groups) > 1:  # one folder for the parts: the first run's default
        out = prepare(_run_namespace(args, Part(groups[0], None))).out_dir
    if len(groups) == 1:
        parts = [Part(groups[0], out)]
    else:
        assert out is not None
        parts = [Part(g, out / f"part-{k}") for k, g in enumerate(groups, start=1)]
    for part in parts:
        part.out = prepare(_run_namespace(args, part)).out_dir
    return parts


def _outcomes(part: Part, repeat: int) -> list[ScenarioOutcome]:
    """The part's scenario outcomes from its ``results.jsonl`` (none written: every run
    counts as not started)."""
    assert part.out is not None
    path = part.out / RESULTS_FILE
    results = read_results(path) if path.exists() else None
    return suite_outcomes(
        part.scenarios,
        repeat,
        results.turns if results else [],
        results.sessions if results else [],
        expectation_type=EXPECTATION_FAILURE,
    )


def handle(args: argparse.Namespace) -> int:
    """Run ``orchestrator test``; returns the exit code (see the module docstring)."""
    from orchestrator.cli.run import handle as run_handle

    try:
        parts = _check(args)
    except (SuiteError, UsageError, ThresholdError, PlanError) as exc:
        return _err(str(exc))
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    codes: list[int] = []
    outcomes: list[ScenarioOutcome] = []
    for part in parts:
        if len(parts) > 1 and not args.quiet:
            names = ", ".join(s.name for s in part.scenarios)
            print(f"{part.out}: {names}", file=sys.stderr, flush=True)
        code = run_handle(_run_namespace(args, part))
        codes.append(code)
        outcomes += _outcomes(part, args.repeat)
        if code > EXIT_EXPECTATIONS:  # interrupted: the parts left do not run
            break
    for part in parts[len(codes) :]:
        outcomes += _outcomes(part, args.repeat)
    if not args.quiet:
        print(suite_table(outcomes, args.min_pass_rate), end="")
    if args.junit is not None:
        try:
            write_junit(args.junit, outcomes, timestamp=started)
        except OSError as exc:
            return _err(f"--junit {args.junit}: {exc}")
    stopped = [code for code in codes if code > EXIT_EXPECTATIONS]  # 130 / 143 / 129
    if EXIT_ERROR in codes or stopped:
        return EXIT_ERROR if EXIT_ERROR in codes else stopped[0]
    if EXIT_THRESHOLDS in codes:
        return EXIT_THRESHOLDS
    if not suite_passed(outcomes, args.min_pass_rate):
        failed = [o.scenario.name for o in outcomes if not o.ok(args.min_pass_rate)]
        print(f"scenarios failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_EXPECTATIONS
    return EXIT_OK
