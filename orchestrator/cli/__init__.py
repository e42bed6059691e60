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

This module imports nothing heavy at import time (the subcommands and their options are
imported by :func:`build_parser`, inside :func:`main`): a Ctrl-C during the first second,
while they load, exits 130 quietly instead of printing a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from orchestrator import __version__

__all__ = ["SUBCOMMANDS", "Parser", "build_parser", "main"]

SUBCOMMANDS = ("run", "test", "validate", "serve", "report", "speak")

#: Exit code of a command interrupted by Ctrl-C, as
#: :data:`~orchestrator.cli.signals.EXIT_INTERRUPTED` (not imported: that loads trio).
_EXIT_INTERRUPTED = 128 + signal.SIGINT


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors exit :data:`EXIT_USAGE` (1), not 2:
    2 means "a threshold failed", and a CI job must tell a typo from a regression. The
    message still says what was wrong (``orchestrator run: error: argument --rate: ...``).
    Subparsers are made of the same class (argparse's ``parser_class`` default); the
    message is followed by a pointer to ``--help`` instead of the full usage.

    Unrecognized arguments after a subcommand are reported by that subcommand's parser
    (``orchestrator run: error: unrecognized arguments: --sesions (did you mean
    --sessions?)``), not by the top-level one: :meth:`parse_args` looks the subcommand up
    in :attr:`commands` (filled by :func:`build_parser`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The subcommands' parsers by name (those :func:`build_parser` registered).
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str) -> NoReturn:
        from orchestrator.cli.options import EXIT_USAGE

        # The message alone (``run``'s usage is dozens of lines that would bury it).
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")

    def parse_args(  # type: ignore[override]  # always a namespace, never a typed one
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Parse ``args``; arguments nobody recognised are an error of the chosen
        subcommand's parser (of this one when none was chosen), with a suggestion for a
        misspelled option."""
        given = list(sys.argv[1:] if args is None else args)
        parsed, extras = self.parse_known_args(given, namespace)
        if extras:
            command = getattr(parsed, "command", None) or ""
            # what came before the subcommand's name is this parser's to report
            at = given.index(command) if command in given else len(given)
            mine = [e for e in extras if e in given[:at]]
            blamed = self if mine else self.commands.get(command, self)
            blamed.error(_unrecognized(mine or extras, blamed))
        return parsed


def _unrecognized(extras: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """The message for arguments ``parser`` did not recognise, with the closest of its
    option strings for each misspelled option (``--sesions (did you mean --sessions?)``)."""
    known = [s for action in parser._actions for s in action.option_strings]
    options = [extra for extra in extras if extra.startswith("-")]
    pairs = []
    for option in options:
        close = difflib.get_close_matches(option.partition("=")[0], known, n=1)
        if close:
            pairs.append((close[0], option))
    hints = [c if len(pairs) == 1 else f"{c} for {option}" for c, option in pairs]
    message = f"unrecognized arguments: {' '.join(extras)}"
    return f"{message} (did you mean {', '.join(hints)}?)" if hints else message


def build_parser() -> Parser:
    """The full argument parser with every subcommand registered."""
    from orchestrator.cli.options import EXIT_CODES_HELP, EpilogAsWrittenFormatter

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
        parser.commands[name] = module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (a usage error: 1, after the
    message on stderr; ``--help`` and ``--version``: 0; Ctrl-C that the command does not
    handle itself, e.g. while the modules load: 130, after one line ``interrupted`` on
    stderr)."""
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:
        pass
    except BaseExceptionGroup as group:  # from a command's trio.run: only Ctrl-C is ours
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
    print("interrupted", file=sys.stderr)
    return _EXIT_INTERRUPTED


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    from orchestrator.cli.options import EXIT_USAGE  # loaded by build_parser

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
