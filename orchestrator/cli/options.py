"""Option pieces shared by the subcommands: argparse value types, the embedded server's
options, subcommand registration and error exits.

The embedded server's latency, behaviour, connection and fault options are declared
once, in :data:`SERVER_OPTIONS`. ``orchestrator serve`` adds them as they are
(``--first-delta``); ``orchestrator run`` adds them with the ``server-`` prefix
(``--server-first-delta``) plus the older spellings of its first ``--server-*`` options
(``--server-ttfb-ms`` is a second spelling of ``--server-first-delta``). Both go through
the same value types, so both reject the same input with the same message, naming the
option as it was typed. The one difference is *when*: ``serve`` rejects bad values while
parsing (argparse error), while ``run`` keeps the text and rejects it in
:func:`server_values`, before anything starts, so that ``run`` reports every bad
argument the same way (:class:`ServerOptionError`, exit 1). :func:`build_server_config` turns
the values into one :class:`~orchestrator.mockserver.ServerConfig`.

Binding and auth (``--host``, ``--port``, ``--allow-remote``, ``--api-key``) stay
``serve``'s own: ``run`` always binds its embedded server to a free loopback port and
connects to it without a key.
"""

from __future__ import annotations

import argparse
import math
import operator
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from orchestrator.mockserver import (
    ConfigError,
    Distribution,
    DistributionError,
    FaultConfig,
    FreezeWindow,
    LatencyModel,
    ServerConfig,
    ToolRule,
)
from orchestrator.mockserver.config import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MCP_TOOLS,
    McpToolDef,
)

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_ERROR",
    "EXIT_EXPECTATIONS",
    "EXIT_OK",
    "EXIT_THRESHOLDS",
    "EXIT_USAGE",
    "SERVER_OPTIONS",
    "EpilogAsWrittenFormatter",
    "Given",
    "ServerOption",
    "ServerOptionError",
    "add_server_options",
    "add_subcommand",
    "fail",
    "given_server_options",
    "nonneg_float",
    "nonneg_int",
    "positive_float",
    "positive_int",
    "probability",
    "build_server_config",
    "typed_as",
    "server_config_from_args",
    "server_values",
]

EXIT_OK = 0
#: Usage or configuration error: nothing ran (bad options, argparse errors included, bad
#: scenario or threshold, an ``--out`` holding a run) or the command could not do its job.
EXIT_ERROR = 1
EXIT_USAGE = EXIT_ERROR
#: A threshold failed (after the run, or an ``:abort`` one during it).
EXIT_THRESHOLDS = 2
#: ``run --fail-on-expectations``: a session failed a scenario expectation (and no
#: threshold failed: thresholds, the explicit gate, take precedence).
EXIT_EXPECTATIONS = 3

#: The exit codes as the ``--help`` epilogs state them (one table for every subcommand).
EXIT_CODES_HELP = """\
exit codes:
  0        ok (run: failed sessions alone do not change it; gate with --threshold)
  1        usage or configuration error: nothing ran (also: the run could not be done)
  2        a --threshold failed (also an ':abort' threshold that stopped the run)
  3        expectations failed: 'test' (a scenario under its pass rate) or
           run --fail-on-expectations (and no threshold failed: 2 takes precedence)
  130/143/129  interrupted by SIGINT (Ctrl-C) / SIGTERM / SIGHUP
"""


# --------------------------------------------------------------------------- value types
# Each takes the option's text and returns its value or raises
# ``argparse.ArgumentTypeError`` saying what is wrong with the text (argparse prefixes
# the option name; :func:`server_values` does the same for deferred options).


def integer(text: str) -> int:
    """Any integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def nonneg_int(text: str) -> int:
    """An integer >= 0."""
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    value = nonneg_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text!r}")
    return value


def percent(text: str) -> float:
    """A number in [0, 100]."""
    value = nonneg_float(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be a percentage in [0, 100], got {text!r}")
    return value


def distribution(text: str) -> Distribution:
    """A duration/count distribution (``fixed:MS``, ``uniform:LO:HI``, ... or a number)."""
    try:
        return Distribution.parse(text)
    except DistributionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def freeze_window(text: str) -> FreezeWindow:
    """A scheduled server freeze ``AT_S:MS``."""
    try:
        return FreezeWindow.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def tool_rule(text: str) -> ToolRule:
    """A tool rule ``REGEX=>TOOL[:JSON]``."""
    try:
        return ToolRule.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def mcp_tool(text: str) -> McpToolDef:
    """A simulated MCP tool ``NAME[:JSON-SCHEMA]``."""
    try:
        return McpToolDef.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _mcp_tools(tools: list[McpToolDef]) -> tuple[McpToolDef, ...]:
    return tuple(tools) or DEFAULT_MCP_TOOLS


# --------------------------------------------------------------------------- subcommands


def add_subcommand(
    subparsers: Any,
    name: str,
    *,
    help: str,  # noqa: A002 - argparse's own name
    description: str,
    handler: Callable[[argparse.Namespace], int],
    epilog: str | None = EXIT_CODES_HELP,
) -> argparse.ArgumentParser:
    """Register subcommand ``name`` whose ``handler`` gets the namespace and returns the
    exit code (see :mod:`orchestrator.cli`). The ``epilog`` (default: the exit codes) is
    shown as written (its line breaks kept); the description is wrapped as usual."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=EpilogAsWrittenFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


class EpilogAsWrittenFormatter(argparse.HelpFormatter):
    """Wraps the description as argparse does, keeps the epilog's lines as written (the
    exit code table), and writes the usage as ``PROG [options] POSITIONALS``: the options
    are listed below it, and spelling out each of them (``run`` has about a hundred)
    buried the positionals under dozens of lines."""

    def add_usage(
        self,
        usage: str | None,
        actions: Any,
        groups: Any,
        prefix: str | None = None,
    ) -> None:
        if usage is None:
            positionals = [a for a in actions if not a.option_strings]
            words = ["%(prog)s", "[options]"] if len(positionals) < len(actions) else ["%(prog)s"]
            words += [self._format_args(a, a.dest) for a in positionals]
            usage = " ".join(words)
        super().add_usage(usage, actions, groups, prefix)

    def add_text(self, text: str | None) -> None:
        if text is not None and text.startswith("exit codes:"):
            self._add_item(lambda t: t, [text])
        else:
            super().add_text(text)


def fail(command: str, message: str) -> int:
    """Print ``orchestrator COMMAND: error: MESSAGE`` to stderr; returns :data:`EXIT_ERROR`."""
    print(f"orchestrator {command}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


# --------------------------------------------------------------------------- server options

Section = Literal["latency", "behaviour", "connection", "faults"]

#: Length of a stall when only its probability is given (see :func:`build_server_config`).
STALL_MS = 2000.0

SECTION_TITLES: Mapping[Section, str] = {
    "latency": "latency model (ms, seeded)",
    "behaviour": "behaviour",
    "connection": "connections",
    "faults": "faults (seeded)",
}


def _keep(value: Any) -> Any:
    return value


@attrs.frozen
class ServerOption:
    """One option of the embedded server.

    ``name``: ``serve``'s spelling without ``--``; ``field``: where the value goes,
    ``"latency.X"`` / ``"faults.X"`` (:class:`LatencyModel` / :class:`FaultConfig`
    fields) or a :class:`ServerConfig` field, after ``to_field``. ``convert`` is the
    value type (``None``: a flag taking no value). ``default`` is ``serve``'s default
    (``run`` leaves an option it was not given to the server's own default, or to what
    ``run`` decides, e.g. the seed). ``aliases``: extra spellings, only with a prefix
    (``run``'s original ``--server-*`` names).
    """

    name: str
    section: Section
    field: str
    convert: Callable[[str], Any] | None
    help: str
    default: Any = None
    default_help: str | None = None
    prefixed_default_help: str | None = None
    metavar: str | None = None
    repeat: bool = False
    aliases: tuple[str, ...] = ()
    to_field: Callable[[Any], Any] = _keep

    def dest(self, prefix: str) -> str:
        """The namespace attribute of this option under ``prefix``."""
        return (prefix + self.name).replace("-", "_")

    def spellings(self, prefix: str) -> list[str]:
        """Every option string of this option under ``prefix``, the main one first."""
        names = [self.name, *(self.aliases if prefix else ())]
        return [f"--{prefix}{n}" for n in names]


SERVER_OPTIONS: tuple[ServerOption, ...] = (
    ServerOption("seed", "latency", "seed", integer,
                 "seed for every random choice", default=0, default_help="default 0",
                 prefixed_default_help="default --seed", metavar="N"),
    ServerOption("response-created", "latency", "latency.response_created_ms", distribution,
                 "anchor -> response.created", default=Distribution("fixed", 5.0),
                 default_help="default fixed:5", metavar="DIST", aliases=("created-ms",)),
    ServerOption("first-delta", "latency", "latency.first_delta_ms", distribution,
                 "anchor -> first audio/text delta",
                 default=Distribution("lognormal", 350.0, 0.25),
                 default_help="default lognormal:350:0.25", metavar="DIST", aliases=("ttfb-ms",)),
    ServerOption("delta-interval", "latency", "latency.delta_interval_ms", distribution,
                 "between deltas", default_help="default: chunk length / realtime factor",
                 metavar="DIST"),
    ServerOption("response-words", "latency", "latency.response_words", distribution,
                 "answer length in words", default=Distribution("uniform", 8.0, 20.0),
                 default_help="default uniform:8:20", metavar="DIST", aliases=("words",)),
    ServerOption("realtime-factor", "latency", "latency.realtime_factor", nonneg_float,
                 "audio generated at N x real time; 0 = as fast as possible", default=2.0,
                 default_help="default 2", metavar="N"),
    ServerOption("audio-chunk-ms", "latency", "latency.audio_chunk_ms", positive_int,
                 "audio per delta in ms", default=100, default_help="default 100", metavar="MS"),
    ServerOption("transcription-latency", "latency", "latency.transcription_ms", distribution,
                 "commit -> input transcription", default=Distribution("fixed", 150.0),
                 default_help="default fixed:150", metavar="DIST"),
    ServerOption("leading-silence", "latency", "latency.leading_silence_ms", distribution,
                 "digital silence at the start of every audio answer (part of its audio)",
                 default=Distribution("fixed", 0.0), default_help="default 0", metavar="DIST"),
    ServerOption("mcp-call-latency", "latency", "latency.mcp_call_ms", distribution,
                 "how long a simulated MCP call runs", default=Distribution("fixed", 200.0),
                 default_help="default fixed:200", metavar="DIST"),
    ServerOption("groundtruth", "behaviour", "groundtruth_path", Path,
                 "append one JSON line per response", metavar="PATH"),
    ServerOption("tool-rule", "behaviour", "tool_rules", tool_rule,
                 "call TOOL with JSON args when REGEX matches the user's text (repeatable)",
                 default=[], metavar="REGEX=>TOOL[:JSON]", repeat=True, to_field=tuple),
    ServerOption("mcp-tool", "behaviour", "mcp_tools", mcp_tool,
                 "a tool every simulated MCP server lists, replacing the default list "
                 "(search_docs, fetch_page, create_ticket); repeatable",
                 default=[], metavar="NAME[:JSON-SCHEMA]", repeat=True, to_field=_mcp_tools),
    ServerOption("no-tool-name-matching", "behaviour", "tool_name_matching", None,
                 "do not call a tool just because its name appears in the text",
                 default=False, to_field=operator.not_),
    ServerOption("spoken-transcript", "behaviour", "spoken_transcripts", str,
                 "transcript of successive audio turns (repeatable, cycled)",
                 default=[], metavar="TEXT", repeat=True, to_field=tuple),
    ServerOption("greeting", "behaviour", "greeting", str,
                 "the assistant speaks TEXT first, once the first session.update is answered",
                 metavar="TEXT"),
    ServerOption("rate-limit-tokens-per-min", "behaviour", "rate_limit_tokens_per_min",
                 positive_int, "token budget per minute; responses past it fail with "
                 "rate_limit_exceeded", default_help="default 15000000", metavar="N"),
    ServerOption("rate-limit-requests-per-min", "behaviour", "rate_limit_requests_per_min",
                 positive_int, "responses per minute before rate_limit_exceeded",
                 default_help="default 20000", metavar="N"),
    ServerOption("max-message-size", "connection", "max_message_size", positive_int,
                 "largest client frame in bytes (close 1009 above)",
                 default=DEFAULT_MAX_MESSAGE_SIZE,
                 default_help="default 16 MiB", metavar="BYTES"),
    ServerOption("ping-interval-s", "connection", "ping_interval_s", nonneg_float,
                 "websocket PING interval (the real service: ~20 s); 0 = off", default=0.0,
                 default_help="default off", metavar="S", to_field=lambda s: s or None),
    ServerOption("close-after-s", "faults", "faults.close_after_s", nonneg_float,
                 "close each connection after S seconds (1011)", metavar="S"),
    ServerOption("close-after-responses", "faults", "faults.close_after_responses",
                 positive_int, "close after N responses (1011)", metavar="N"),
    ServerOption("close-probability", "faults", "faults.close_probability", probability,
                 "per response: drop the connection mid-response (1011)", default=0.0,
                 metavar="P", aliases=("drop-rate",)),
    ServerOption("error-probability", "faults", "faults.error_probability", probability,
                 "per response: server_error event, response failed", default=0.0,
                 metavar="P", aliases=("error-rate",)),
    ServerOption("stall-probability", "faults", "faults.stall_probability", probability,
                 "per response: go silent mid-response", metavar="P",
                 default_help=f"default 0; given alone, stalls last {STALL_MS:g} ms",
                 aliases=("stall-rate",)),
    ServerOption("stall-ms", "faults", "faults.stall_ms", nonneg_float,
                 "length of a stall", metavar="MS",
                 default_help=f"default {STALL_MS:g}; given alone, every response stalls"),
    ServerOption("freeze", "faults", "faults.freezes", freeze_window,
                 "freeze the whole server for MS ms from AT_S s after it started (with run: "
                 "after the run started): handshakes and client frames are accepted, but "
                 "every frame due in the window is held and sent when it ends (repeatable)",
                 default=[], metavar="AT_S:MS", repeat=True, to_field=tuple),
    ServerOption("transcription-failure-rate", "faults",
                 "faults.transcription_failure_probability", probability,
                 "per input transcription: input_audio_transcription.failed instead of "
                 ".completed", default=0.0, metavar="P"),
    ServerOption("mcp-failure-rate", "faults", "faults.mcp_failure_probability",
                 probability, "per MCP call: response.mcp_call.failed instead of .completed",
                 default=0.0, metavar="P"),
    ServerOption("reject-percent", "faults", "faults.reject_percent", percent,
                 "refuse this %% of handshakes with HTTP 429", default=0.0, metavar="PCT"),
    ServerOption("session-max-s", "faults", "faults.session_max_s", positive_float,
                 "session lifetime: session_expired then close 1001", default=3600.0,
                 default_help="default 3600", metavar="S"),
)  # fmt: skip


@attrs.frozen
class Given:
    """A server option's text as given, kept for :func:`server_values` (``run``)."""

    option: str  # the spelling typed, e.g. "--server-ttfb-ms"
    text: str | None  # None for a flag


class _Keep(argparse.Action):
    """Stores :class:`Given` (a list of them when ``repeat``) instead of a value."""

    def __init__(self, *args: Any, repeat: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.repeat = repeat

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given = Given(option_string or self.dest, None if self.nargs == 0 else values)
        if self.repeat:
            setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or ()), given])
        else:
            setattr(namespace, self.dest, given)


class ServerOptionError(ValueError):
    """A bad embedded-server option; the message starts with the option as typed."""


def add_server_options(
    parser: argparse.ArgumentParser,
    prefix: str = "",
    *,
    defer: bool = False,
    title: str = "{}",
) -> None:
    """Add every :data:`SERVER_OPTIONS` entry to ``parser``, one argument group per
    section (titled ``title.format(section title)``), spelled ``--PREFIXNAME``.

    ``defer=False`` (``serve``): values are checked while parsing and the namespace
    holds them, with ``serve``'s defaults. ``defer=True`` (``run``): the namespace holds
    :class:`Given` texts (``None`` when not given), checked by :func:`server_values`.
    """
    groups: dict[Section, Any] = {}
    for opt in SERVER_OPTIONS:
        if opt.section not in groups:
            groups[opt.section] = parser.add_argument_group(
                title.format(SECTION_TITLES[opt.section])
            )
        default_help = opt.prefixed_default_help if prefix else None
        default_help = default_help or opt.default_help
        kwargs: dict[str, Any] = {
            "dest": opt.dest(prefix),
            "help": opt.help + (f" ({default_help})" if default_help else ""),
        }
        if opt.convert is not None:
            kwargs["metavar"] = opt.metavar
        if defer:
            kwargs.update(action=_Keep, repeat=opt.repeat, default=None)
            if opt.convert is None:
                kwargs["nargs"] = 0
        elif opt.convert is None:
            kwargs.update(action="store_true")
        else:
            kwargs.update(
                type=opt.convert,
                action="append" if opt.repeat else "store",
                default=list(opt.default) if opt.repeat else opt.default,
            )
        groups[opt.section].add_argument(*opt.spellings(prefix), **kwargs)


def _convert(opt: ServerOption, given: Given) -> Any:
    if opt.convert is None:
        return True
    assert given.text is not None
    try:
        return opt.convert(given.text)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise ServerOptionError(f"{given.option}: {exc}") from None


def server_values(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The server options in ``args`` (added with ``prefix``) that have a value, by
    :attr:`ServerOption.name`; :class:`Given` texts are converted here.

    Raises :class:`ServerOptionError` naming the option as typed.
    """
    values: dict[str, Any] = {}
    for opt in SERVER_OPTIONS:
        value = getattr(args, opt.dest(prefix))
        if isinstance(value, Given):
            value = _convert(opt, value)
        elif isinstance(value, list):
            value = [_convert(opt, v) if isinstance(v, Given) else v for v in value]
        if value is not None:
            values[opt.name] = value
    return values


def given_server_options(args: argparse.Namespace, prefix: str) -> list[str]:
    """The server options given on a command line parsed with ``defer=True``, as typed."""
    given: list[str] = []
    for opt in SERVER_OPTIONS:
        value = getattr(args, opt.dest(prefix))
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Given) and item.option not in given:
                given.append(item.option)
    return given


def typed_as(args: argparse.Namespace, prefix: str, name: str) -> str | None:
    """How server option ``name`` was typed (``defer=True`` parsing), ``None`` if absent."""
    value = getattr(args, (prefix + name).replace("-", "_"))
    if isinstance(value, list):
        value = value[0] if value else None
    return value.option if isinstance(value, Given) else None


def build_server_config(values: Mapping[str, Any], **fixed: Any) -> ServerConfig:
    """The :class:`ServerConfig` of ``values`` (:func:`server_values`); options without a
    value keep the server's defaults. ``fixed``: further :class:`ServerConfig` fields
    (``host``, ``port``, ``api_key``, ``default_model`` ...).

    Stalls, the same for ``serve`` and ``run``: a stall probability alone stalls for
    :data:`STALL_MS`; a stall length alone makes every response stall (probability 1).

    Raises ``ConfigError`` / ``DistributionError`` / ``ValueError`` for combinations the
    server refuses.
    """
    values = dict(values)
    if "stall-ms" in values:
        values.setdefault("stall-probability", 1.0)
    elif "stall-probability" in values:
        values["stall-ms"] = STALL_MS
    parts: dict[str, dict[str, Any]] = {"latency": {}, "faults": {}, "": dict(fixed)}
    for opt in SERVER_OPTIONS:
        if opt.name in values:
            part, _, field = opt.field.rpartition(".")
            parts[part][field] = opt.to_field(values[opt.name])
    return ServerConfig(
        latency=LatencyModel(**parts["latency"]),
        faults=FaultConfig(**parts["faults"]),
        **parts[""],
    )


def server_config_from_args(
    args: argparse.Namespace, prefix: str = "", **fixed: Any
) -> ServerConfig:
    """:func:`build_server_config` of :func:`server_values` of ``args``."""
    return build_server_config(server_values(args, prefix), **fixed)
