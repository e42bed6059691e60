"""``orchestrator report``: rebuild a run's summary and HTML report, or compare two runs.

``orchestrator report DIR``
    reads ``DIR/results.jsonl`` and rewrites ``summary.json``, ``summary.csv`` and
    ``report.html`` as the run wrote them (validity: the generator's ``run_end`` verdict and
    the embedded target's ``target`` line); prints the summary. ``--threshold`` re-evaluates
    thresholds (default: the ones the run was started with); exit 2 when one fails.
``orchestrator report --compare DIR_A DIR_B``
    compares B against A (each ``summary.json``, rebuilt from ``results.jsonl`` when
    missing): the verdict, the changes beyond run-to-run noise, the config keys that
    differ, and per-metric tables (:mod:`orchestrator.metrics.compare_render`).
    ``--threshold`` is judged on B; ``--max-regression 'ttfb_ms.p95=10%'`` gates B's
    change against A (:mod:`orchestrator.metrics.compare_gates`); ``--format
    text|md|json``; ``-q`` prints only the verdict line and the failed checks (text and
    md; json is always whole).

Exit codes: 0 fine, 1 the command could not do its job (no such directory, unreadable
results, bad threshold or gate, an option that does not apply), 2 a threshold or a
regression gate failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from orchestrator.cli.options import EXIT_ERROR, EXIT_OK, EXIT_THRESHOLDS, add_subcommand, fail
from orchestrator.metrics import ResultsFormatError, ThresholdError, parse_threshold, summary_text
from orchestrator.metrics.compare_gates import GateError, parse_gate
from orchestrator.metrics.compare_render import (
    build_comparison,
    comparison_json,
    render_markdown,
    render_text,
)
from orchestrator.supervisor.outputs import (
    REPORT_FILE,
    RESULTS_FILE,
    load_summary,
    write_outputs,
)

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_THRESHOLDS", "add_parser", "handle"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on ``subparsers``."""
    parser = add_subcommand(
        subparsers,
        "report",
        help="rebuild summary.json/summary.csv/report.html from results.jsonl, or compare runs",
        description=(
            "Rebuild a run's summary.json, summary.csv and report.html from its "
            "results.jsonl, or compare two runs' metrics."
        ),
        handler=handle,
    )
    parser.add_argument("dir", nargs="?", metavar="DIR", help="run directory (with results.jsonl)")
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("DIR_A", "DIR_B"),
        help="compare DIR_B against DIR_A: verdict, changes beyond noise, config diff",
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=None,
        metavar="EXPR",
        help="threshold to evaluate, e.g. 'voice_to_voice_ms.p95<800' (repeatable; "
        "default: the run's own thresholds; with --compare: judged on DIR_B, none by default)",
    )
    parser.add_argument(
        "--max-regression",
        action="append",
        default=None,
        metavar="GATE",
        help="with --compare: fail (exit 2) when DIR_B is worse than DIR_A by more than "
        "this, e.g. 'ttfb_ms.p95=10%%', 'voice_to_voice_ms.p99=25ms', 'sessions_failed=0' "
        "(repeatable)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "md", "json"),
        default=None,
        help="with --compare: output format (md: for pull-request comments; default text)",
    )
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print nothing on success; with --compare: only the verdict and failed checks",
    )
    return parser


def _err(message: str) -> int:
    return fail("report", message)


def handle(args: argparse.Namespace) -> int:
    """Run ``orchestrator report``; returns the exit code."""
    if args.compare and args.dir:
        return _err("give either DIR or --compare DIR_A DIR_B, not both")
    if args.compare:
        return _compare(args)
    if args.max_regression or args.format:
        return _err("--max-regression and --format apply to --compare DIR_A DIR_B only")
    if not args.dir:
        return _err("missing DIR (a run directory with results.jsonl) or --compare DIR_A DIR_B")
    return _rebuild(Path(args.dir), args.threshold, quiet=args.quiet)


def _rebuild(run_dir: Path, thresholds: list[str] | None, *, quiet: bool) -> int:
    if not run_dir.is_dir():
        return _err(f"{run_dir}: no such directory")
    if not (run_dir / RESULTS_FILE).is_file():
        parts = _parts(run_dir)
        if parts:
            return _err(
                f"{run_dir}: no {RESULTS_FILE} in this directory; it holds parts: "
                f"{', '.join(map(str, parts))}; report each"
            )
        return _err(f"{run_dir}: no {RESULTS_FILE} in this directory")
    try:
        for expr in thresholds or ():
            parse_threshold(expr)
        outputs = write_outputs(run_dir, thresholds=thresholds)
    except (ThresholdError, OSError, ResultsFormatError) as exc:
        return _err(str(exc))
    summary = outputs.summary
    if not quiet:
        print(summary_text(summary), end="")
        print(f"report: {run_dir / REPORT_FILE}")
    if not summary.get("thresholds_ok", True):
        failed = [t["expr"] for t in summary.get("thresholds", []) if not t["ok"]]
        print(f"thresholds failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_THRESHOLDS
    return EXIT_OK


def _parts(out_dir: Path) -> list[Path]:
    """The run directories ``part-1``, ``part-2``, ... of an ``orchestrator test`` folder
    whose scenarios ran in several parts, in order (none: not such a folder)."""
    parts = [p for p in out_dir.glob("part-*") if p.name[5:].isdigit() and p.is_dir()]
    return sorted(parts, key=lambda p: int(p.name[5:]))


def _compare(args: argparse.Namespace) -> int:
    dir_a, dir_b = args.compare
    try:
        gates = [parse_gate(expr) for expr in args.max_regression or ()]
        thresholds = [parse_threshold(expr) for expr in args.threshold or ()]
    except (GateError, ThresholdError) as exc:
        return _err(str(exc))
    summaries = []
    for d in (dir_a, dir_b):
        try:
            summaries.append(load_summary(d))
        except (OSError, ValueError) as exc:
            return _err(str(exc))
    try:
        comparison = build_comparison(
            summaries[0],
            summaries[1],
            label_a=dir_a,
            label_b=dir_b,
            gates=gates,
            thresholds=thresholds,
        )
    except ThresholdError as exc:
        return _err(str(exc))
    if args.format == "json":
        sys.stdout.buffer.write(comparison_json(comparison))
        sys.stdout.flush()
    elif args.format == "md":
        print(render_markdown(comparison, quiet=args.quiet), end="")
    else:
        print(render_text(comparison, quiet=args.quiet), end="")
    return EXIT_OK if comparison.ok else EXIT_THRESHOLDS
