"""The ``orchestrator`` command line: argument parsing, exit codes, progress display.

Each subcommand lives in its own module (``serve``, ``run``, ``report``, ``speak``) exposing
``add_parser(subparsers)``, which registers the subcommand and sets ``handler`` (a
function taking the parsed namespace and returning the exit code). ``main`` only
dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from orchestrator import __version__

SUBCOMMANDS = ("run", "serve", "report", "speak")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Run and measure concurrent OpenAI Realtime conversations.",
    )
    parser.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"orchestrator.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 1
    return int(handler(args))
