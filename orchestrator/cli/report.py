"""``orchestrator report``: rebuild a run's summary and HTML report, or compare two runs.

``orchestrator report DIR``
    reads ``DIR/results.jsonl`` and rewrites ``summary.json``, ``summary.csv`` and
    ``report.html``; prints the summary. ``--threshold`` re-evaluates thresholds (default:
    the ones the run was started with); exit 2 when one fails.
``orchestrator report --compare DIR_A DIR_B``
    prints the metric deltas of B against A (from each ``summary.json``, rebuilt from
    ``results.jsonl`` when missing).

Exit codes: 0 fine, 1 the command could not do its job (no such directory, unreadable
results, bad threshold), 2 a threshold failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from orchestrator.cli.options import EXIT_ERROR, EXIT_OK, EXIT_THRESHOLDS, add_subcommand, fail
from orchestrator.metrics import (
    ResultsFormatError,
    ThresholdError,
    compare,
    parse_threshold,
    render_compare,
    summary_text,
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
        help="print metric deltas of DIR_B against DIR_A",
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=None,
        metavar="EXPR",
        help="threshold to evaluate, e.g. 'voice_to_voice_ms.p95<800' (repeatable; "
        "default: the run's own thresholds)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    return parser


def _err(message: str) -> int:
    return fail("report", message)


def handle(args: argparse.Namespace) -> int:
    """Run ``orchestrator report``; returns the exit code."""
    if args.compare and args.dir:
        return _err("give either DIR or --compare DIR_A DIR_B, not both")
    if args.compare:
        return _compare(args.compare[0], args.compare[1], quiet=args.quiet)
    if not args.dir:
        return _err("missing DIR (a run directory with results.jsonl) or --compare DIR_A DIR_B")
    return _rebuild(Path(args.dir), args.threshold, quiet=args.quiet)


def _rebuild(run_dir: Path, thresholds: list[str] | None, *, quiet: bool) -> int:
    if not run_dir.is_dir():
        return _err(f"{run_dir}: no such directory")
    if not (run_dir / RESULTS_FILE).is_file():
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


def _compare(dir_a: str, dir_b: str, *, quiet: bool) -> int:
    summaries = []
    for d in (dir_a, dir_b):
        try:
            summaries.append(load_summary(d))
        except (OSError, ValueError) as exc:
            return _err(str(exc))
    rows = compare(summaries[0], summaries[1])
    if not quiet:
        print(f"A = {dir_a}\nB = {dir_b}")
        if rows:
            print(render_compare(rows, label_a="A", label_b="B"), end="")
        else:
            print("no metrics measured in either run")
    return EXIT_OK
