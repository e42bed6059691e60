"""The ``orchestrator`` command line: argument parsing, exit codes, progress display.

Each subcommand lives in its own module (``serve``, ``run``, ``test``, ``report``,
``speak``, ``validate``) exposing ``add_parser(subparsers)``, which registers the
subcommand and sets ``handler`` (a function taking the parsed namespace and returning the
exit code). ``main`` only dispatches.

Exit codes (:data:`~orchestrator.cli.options.EXIT_CODES_HELP`, shown by every ``--help``):
0 ok; 1 usage or configuration error, nothing ran (argparse's own errors included: it
would exit 2, the code of a failed threshold, so :class:`Parser` exits 1); 2 a threshold
failed; 3 expectations failed (``test``: a scenario under its pass rate; ``run
--fail-on-expectations``: a session failed an expectation); 130 / 143 / 129 interrupted by
SIGINT / SIGTERM / SIGHUP.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from orchestrator import __version__
from orchestrator.cli.options import EXIT_CODES_HELP, EXIT_USAGE, EpilogAsWrittenFormatter

__all__ = ["SUBCOMMANDS", "Parser", "build_parser", "main"]

SUBCOMMANDS = ("run", "test", "validate", "serve", "report", "speak")


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors exit :data:`EXIT_USAGE` (1), not 2:
    2 means "a threshold failed", and a CI job must tell a typo from a regression. The
    message still says what was wrong (``orchestrator run: error: argument --rate: ...``).
    Subparsers are made of the same class (argparse's ``parser_class`` default); the
    message is followed by a pointer to ``--help`` instead of the full usage."""

    def error(self, message: str) -> NoReturn:
        # The message alone (``run``'s usage is dozens of lines that would bury it).
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = Parser(
        prog="orchestrator",
        description="Run and measure concurrent OpenAI Realtime conversations.",
        epilog=EXIT_CODES_HELP,
        formatter_class=EpilogAsWrittenFormatter,
    )
    parser.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"orchestrator.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (a usage error: 1, after the
    message on stderr; ``--help`` and ``--version``: 0)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage error (Parser.error), --help, --version
        code = exc.code
        return code if isinstance(code, int) else (EXIT_USAGE if code else 0)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return int(handler(args))
