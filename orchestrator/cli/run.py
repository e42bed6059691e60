"""``orchestrator run``: run a load of conversations and measure them.

Everything is validated before the run starts (load shape, thresholds, target, server
options): bad input exits 1 with a message naming the option. Then:

1. without ``--url`` the embedded server starts on a free loopback port in its own
   process(es) (:mod:`orchestrator.cli.target_process`; ``--server-in-process``: in this
   event loop), ``--server-*`` options shape its latency and faults, and its ground truth
   (``OUT/groundtruth.jsonl``) judges whether it kept its own plan (validity);
2. a supervisor runs the load shape (closed: ``--concurrency``; open: ``--rate``) of the
   conversation (a SCENARIO file, else the built-in one spoken question, one answer),
   writing every finished turn and session to ``OUT/results.jsonl`` at once;
3. ``summary.json``, ``summary.csv`` and ``report.html`` are built from ``results.jsonl``.

Several SCENARIO files (``A.toml B.toml:3``) mix across the sessions by weight
(:mod:`orchestrator.cli.mix`): session ``i`` plays the scenario the smooth weighted
round-robin order gives it, and its records carry that scenario's name as their label.

Exit codes (:data:`~orchestrator.cli.options.EXIT_CODES_HELP`): 0 the run was done and no
threshold failed (failed sessions alone, even all of them, do not change it: the summary
lists the top failure reasons and stderr warns when every session failed; gate CI with
``--threshold 'session_error_rate<0.01'``); 1 the run could not be done (bad arguments,
argparse's own errors included, an ``--out`` that already holds a run without
``--overwrite``, unreachable output directory, crash); 2 a ``--threshold`` failed, or one
marked ``:abort`` failed during the run, which then drained as after Ctrl-C; 3 with
``--fail-on-expectations``, a session failed with ``ScenarioFailed`` (an expectation, no
answer, no greeting) and no threshold failed (2 wins: thresholds are the explicit gate); 130
interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM (``timeout``, ``docker stop``, a CI
job cancelled), 129 by SIGHUP (the terminal closed): 128 + the number of the first stop
signal. The first stop signal drains: no new sessions, running ones get ``--grace-s`` to
finish; a second one (any of the three) cancels them. The summary is written in every case
where a results file exists (a SIGTERM or SIGHUP arriving outside the run itself, after
the results file was opened, is held: before the run it drains the run at once, after it
the summary is still written).

Garbage collection (:func:`tuned_gc`, process-wide, for the run only): objects alive
before the run are frozen out of collection, young collections are kept small, and full
collections happen when :class:`~orchestrator.supervisor.monitor.FullCollectionPolicy`
says (a :class:`~orchestrator.supervisor.monitor.FullCollector` task in the run), never at
CPython's own unpredictable moments; every pause is timed and reported with the run's
self-monitoring figures (``gc_*`` in ``run_end``'s ``monitor``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from orchestrator import __version__
from orchestrator.audio.voices.engines import VoiceError, engine_available
from orchestrator.audio.voices.layout import default_cache_dir
from orchestrator.audio.wav import AudioFileError
from orchestrator.cli.mix import (
    MixError,
    ScenarioMix,
    merged_server_hints,
    mix_of,
    parse_mix_arg,
)
from orchestrator.cli.options import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_EXPECTATIONS,
    EXIT_OK,
    EXIT_THRESHOLDS,
    SERVER_OPTIONS,
    ServerOptionError,
    add_server_options,
    add_subcommand,
    build_server_config,
    fail,
    given_server_options,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    probability,
    server_values,
    typed_as,
)
from orchestrator.cli.target_process import (
    GROUNDTRUTH_FILE,
    EmbeddedTarget,
    TargetProcesses,
    child_argv,
    groundtruth_paths,
    judge_groundtruth,
    serve_target,
)
from orchestrator.cli.voice_options import (
    add_voice_options,
    cache_from_args,
    given_voice_options,
    line_from_args,
    variation_from_args,
)
from orchestrator.metrics import (
    ThresholdError,
    all_failed_warning,
    parse_threshold,
    summary_text,
)
from orchestrator.metrics.failure import first_error
from orchestrator.metrics.prices import PriceFileError, PriceTable, builtin_prices, load_prices
from orchestrator.mockserver import ConfigError, MockServer, ServerConfig
from orchestrator.protocol.dialect import Dialect
from orchestrator.scenario import (
    BuiltinConversation,
    ScenarioDriver,
    ScenarioError,
    ScenarioFailed,
    load_scenario,
    voice_session_config,
)
from orchestrator.scenario.transcription import transcription_session_config
from orchestrator.session.spec import PacingSpec, SessionSpec
from orchestrator.supervisor import (
    Backoff,
    CircuitBreaker,
    ClosedModel,
    OpenModel,
    PlanError,
    RestartIntensity,
    RestartPolicy,
    RestartType,
    ValidityLimits,
)
from orchestrator.supervisor.live_thresholds import (
    LiveThresholds,
    abort_thresholds,
    watch_abort_thresholds,
)
from orchestrator.supervisor.monitor import FullCollectionPolicy, FullCollector, merge_validity
from orchestrator.supervisor.outputs import RESULTS_FILE, write_outputs
from orchestrator.supervisor.rate_gate import RateGate
from orchestrator.supervisor.sink import JsonlSink, read_run_meta
from orchestrator.supervisor.supervisor import Supervisor, open_supervisor
from orchestrator.supervisor.tee import TeeSink
from orchestrator.supervisor.workload import Workload, planned_total
from orchestrator.transport import API_KEY_ENV

__all__ = [
    "EXIT_ERROR",
    "EXIT_EXPECTATIONS",
    "EXIT_HANGUP",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_THRESHOLDS",
    "GC_THRESHOLDS",
    "STOP_SIGNALS",
    "RunSetup",
    "StopSignals",
    "UsageError",
    "add_parser",
    "exit_code_for_signal",
    "handle",
    "prepare",
    "tuned_gc",
]

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
EXIT_HANGUP = 129  # 128 + SIGHUP (POSIX)

#: Signals that stop a run: the first one drains, a second one (any of them) cancels.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    sig
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
    if sig is not None
)
SERVER_PREFIX = "server-"
#: The failure type of a session whose conversation did not go as scripted (an
#: expectation, no answer, no greeting): ``--fail-on-expectations`` exits 3 on it.
EXPECTATION_FAILURE = ScenarioFailed.__name__

DEFAULT_MODEL = "gpt-realtime"


class UsageError(ValueError):
    """A bad combination or value of ``run`` options (the message names the option)."""


# --------------------------------------------------------------------------- parser


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``run`` on ``subparsers``."""
    p = add_subcommand(
        subparsers,
        "run",
        help="run many concurrent conversations and measure them",
        description=(
            "Run many concurrent speech-to-speech conversations against the embedded "
            "server (default) or --url, and write results.jsonl, summary.json, "
            "summary.csv and report.html to --out. Every 'orchestrator serve' option "
            "but the network ones shapes the embedded server as --server-OPTION."
        ),
        handler=handle,
        epilog=EXIT_CODES_HELP,
    )
    p.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO[:WEIGHT]",
        help="conversation to run: a scenario file (.toml or .json; see "
        "examples/scenarios/) or 'builtin' (default: one spoken question and one answer). "
        "Several files mix across the sessions by weight (A.toml:3 B.toml: 3 of every 4 "
        "sessions play A, interleaved; default weight 1); each session's records name "
        "its scenario",
    )

    tgt = p.add_argument_group("target")
    tgt.add_argument("--url", help="server to load (default: embedded server on loopback)")
    tgt.add_argument(
        "--provider",
        choices=("custom", "openai", "azure", "azure-legacy"),
        default=None,
        help="URL/auth rules for --url (default custom: URL + /realtime?model=)",
    )
    tgt.add_argument("--dialect", choices=("ga", "beta"), default="ga", help="protocol dialect")
    tgt.add_argument("--model", default=DEFAULT_MODEL, help=f"model (default {DEFAULT_MODEL})")
    tgt.add_argument("--deployment", help="Azure deployment (default: --model)")
    tgt.add_argument("--api-version", help="Azure legacy api-version")
    tgt.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the API key (default OPENAI_API_KEY, or "
        "AZURE_OPENAI_API_KEY for Azure); the key is never printed or stored",
    )

    load = p.add_argument_group("load shape (closed model: --concurrency; open model: --rate)")
    load.add_argument("--concurrency", type=positive_int, help="sessions at once (default 10)")
    load.add_argument(
        "--ramp-up",
        type=nonneg_float,
        default=0.0,
        metavar="S",
        help="closed model: spread the first starts over S seconds",
    )
    load.add_argument("--sessions", type=positive_int, metavar="N", help="total sessions")
    load.add_argument(
        "--duration", type=positive_float, metavar="S", help="start sessions for S seconds"
    )
    load.add_argument("--rate", type=nonneg_float, metavar="R", help="open model: R sessions/s")
    load.add_argument(
        "--rate-to",
        type=nonneg_float,
        metavar="R2",
        help="open model: ramp the rate linearly to R2",
    )
    load.add_argument(
        "--ramp",
        type=positive_float,
        metavar="S",
        help="open model: ramp length in seconds (default --duration)",
    )
    load.add_argument("--poisson", action="store_true", help="open model: Poisson arrivals")
    load.add_argument(
        "--max-concurrency",
        type=positive_int,
        metavar="N",
        help="open model: drop arrivals while N sessions run",
    )
    load.add_argument(
        "--late-after-ms",
        type=nonneg_float,
        default=50.0,
        help="a start later than this counts as late (default 50)",
    )
    load.add_argument("--drop-after-ms", type=nonneg_float, default=None,
                      help="drop a start later than this (default: never)")  # fmt: skip
    load.add_argument(
        "--respect-rate-limits",
        action="store_true",
        help="hold new starts while the server's rate_limits.updated says tokens or "
        "requests are under 20%% of their limit, and after a rate_limit_exceeded for its "
        "'try again in' (see orchestrator.supervisor.rate_gate); summary: held_starts",
    )

    conv = p.add_argument_group("conversation")
    conv.add_argument(
        "--speak",
        metavar="TEXT",
        help="the question, spoken by a caller voice (synthesized before the run; see "
        "'caller voice'); default: --speech-ms of speech-like sound",
    )
    conv.add_argument(
        "--audio",
        metavar="FILE",
        help="the question as a WAV file (PCM, A-law or µ-law; any rate and channels)",
    )
    conv.add_argument(
        "--speech-ms",
        type=positive_float,
        default=1500.0,
        help="length of the spoken question (default 1500)",
    )
    conv.add_argument(
        "--lead-ms", type=nonneg_float, default=200.0, help="silence before speech (default 200)"
    )
    conv.add_argument(
        "--tail-ms", type=nonneg_float, default=300.0, help="silence after speech (default 300)"
    )
    conv.add_argument("--voice", help="assistant voice")
    conv.add_argument(
        "--vad-silence-ms",
        type=nonneg_int,
        default=200,
        help="server VAD silence duration (default 200)",
    )
    conv.add_argument("--instructions", help="session instructions")
    conv.add_argument(
        "--mode",
        choices=("voice", "transcription"),
        default="voice",
        help="built-in conversation: 'voice' (speech to speech, default) or 'transcription' "
        "(a transcription session: stream the audio, wait for its transcription; measures "
        "transcription_ms)",
    )
    conv.add_argument(
        "--realtime-factor",
        type=positive_float,
        default=1.0,
        help="send user audio N x faster than real time (default 1)",
    )
    conv.add_argument(
        "--chunk-ms", type=positive_int, default=100, help="audio per append event (default 100)"
    )
    conv.add_argument(
        "--linger-ms",
        type=nonneg_float,
        default=0.0,
        help="stay connected this long after the answer",
    )
    conv.add_argument("--max-session-s", type=positive_float, default=120.0,
                      help="fail a session running longer than this (default 120)")  # fmt: skip

    sup = p.add_argument_group("supervision")
    sup.add_argument(
        "--restart",
        choices=("temporary", "transient", "permanent"),
        default="temporary",
        help="restart type of sessions (default temporary: never restart)",
    )
    sup.add_argument(
        "--max-restarts",
        type=nonneg_int,
        default=3,
        help="restart intensity: at most N restarts ... (default 3)",
    )
    sup.add_argument(
        "--restart-window-s",
        type=positive_float,
        default=60.0,
        help="... within this many seconds per session (default 60)",
    )
    sup.add_argument("--no-breaker", action="store_true", help="disable the fleet circuit breaker")
    sup.add_argument(
        "--breaker-threshold",
        type=probability,
        default=0.5,
        help="failure fraction that opens the breaker (default 0.5)",
    )
    sup.add_argument(
        "--grace-s",
        type=nonneg_float,
        default=30.0,
        help="Ctrl-C, SIGTERM or SIGHUP: how long running sessions may finish (default 30)",
    )
    sup.add_argument(
        "--loop-lag-limit-ms",
        type=nonneg_float,
        default=50.0,
        help="event-loop lag p99 above which the run is invalid (default 50)",
    )
    sup.add_argument("--pacer-limit-ms", type=nonneg_float, default=50.0,
                     help="pacer lateness p99 above which the run is invalid (default 50)")  # fmt: skip

    add_voice_options(p, prefix="voice-", title="caller voice (with --speak)")

    add_server_options(
        p, SERVER_PREFIX, defer=True, title="embedded server (only without --url): {}"
    )
    emb = p.add_argument_group("embedded server (only without --url): process")
    emb.add_argument(
        "--server-in-process",
        action="store_true",
        help="serve the embedded server inside this process's event loop (tests, small "
        "runs; its sends then wait behind the sessions' work) instead of its own process",
    )
    emb.add_argument(
        "--server-processes",
        type=positive_int,
        default=None,
        metavar="N",
        help="N server processes sharing one port (SO_REUSEPORT) (default 1)",
    )
    emb.add_argument(
        "--target-lateness-limit-ms",
        type=nonneg_float,
        default=50.0,
        metavar="MS",
        help="the embedded server's own send lateness p99 (ground truth actual - "
        "intended) above which the run is invalid (default 50)",
    )

    out = p.add_argument_group("output")
    out.add_argument(
        "--out",
        metavar="DIR",
        help="output directory (default runs/<timestamp>); refused if it already holds "
        "a run's results.jsonl, unless --overwrite",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in --out DIR",
    )
    out.add_argument(
        "--prices",
        metavar="FILE",
        help="token prices (USD per 1M) for the cost estimate, TOML or .json, laid over the "
        "built-in table (orchestrator/metrics/prices.toml shows the layout); a model "
        "without a price gets cost null with the reason",
    )
    out.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="pass/fail rule, e.g. 'voice_to_voice_ms.p95<800' or 'session_error_rate<0.01' "
        "(repeatable; a failure exits 2). Failed sessions alone exit 0: in CI add "
        "'session_error_rate<0.01'. Append ':abort' to also judge it during the run "
        "(rolling windows) and stop the run when it fails (drains like Ctrl-C, exits 2)",
    )
    out.add_argument(
        "--fail-on-expectations",
        action="store_true",
        help="exit 3 when a session failed a scenario expectation (ScenarioFailed: an "
        "expect_* that did not hold, no answer, no greeting), unless a threshold failed "
        "(exit 2 wins: thresholds are the explicit gate)",
    )
    out.add_argument(
        "--abort-grace-s",
        type=nonneg_float,
        default=0.0,
        metavar="S",
        help="no ':abort' threshold stops the run in its first S seconds (default 0)",
    )
    out.add_argument(
        "--abort-window-s",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="':abort' thresholds judge rates and distributions over the last S seconds "
        "(default 30)",
    )
    out.add_argument(
        "--metrics-port",
        type=nonneg_int,
        metavar="PORT",
        help="serve live Prometheus/OpenMetrics metrics at http://HOST:PORT/metrics "
        "during the run (0: a free port, printed on stderr)",
    )
    out.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address of --metrics-port (default 127.0.0.1: loopback only)",
    )
    out.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    out.add_argument(
        "--progress",
        choices=("auto", "rich", "plain", "off"),
        default="auto",
        help="live progress: rich on a terminal, plain lines otherwise (default auto)",
    )
    out.add_argument("--quiet", "-q", action="store_true", help="no progress, no summary text")
    return p


# --------------------------------------------------------------------------- setup


@attrs.define(eq=False)
class RunSetup:
    """Everything ``run`` needs, validated: built by :func:`prepare` before any I/O."""

    model: ClosedModel | OpenModel
    conversation: BuiltinConversation | ScenarioDriver | ScenarioMix
    spec: SessionSpec | None  # None until the embedded server's port is known
    target_kwargs: dict[str, Any]
    server_config: ServerConfig | None  # the embedded server's, None with --url
    restart: RestartPolicy
    breaker: CircuitBreaker | None
    thresholds: list[str]
    out_dir: Path
    config: dict[str, Any]
    validity_limits: ValidityLimits
    seed: int
    aborted: dict[str, Any] | None = None
    """Set when an ``:abort`` threshold stopped the run (the ``run_abort`` line)."""
    metrics_port: int | None = None
    """The port ``--metrics-port`` was served on (known once the run started)."""
    target: EmbeddedTarget | None = None
    """How the embedded server runs and where its ground truth goes (``None``: --url)."""
    prices: PriceTable | None = None
    """The price table for the cost estimate (``None``: the built-in one)."""


def _load_model(args: argparse.Namespace) -> ClosedModel | OpenModel:
    if args.rate is not None:
        for flag, value in (("--concurrency", args.concurrency), ("--ramp-up", args.ramp_up)):
            if value:
                raise UsageError(
                    f"{flag} is for the closed model; with --rate use --max-concurrency"
                )
        duration = args.duration
        if duration is None:
            if args.sessions is None or args.rate_to is not None or args.rate == 0:
                raise UsageError("--rate needs --duration S (or --sessions N at a constant rate)")
            duration = args.sessions / args.rate
        return OpenModel(
            rate=args.rate,
            duration_s=duration,
            rate_to=args.rate_to,
            ramp_s=args.ramp,
            poisson=args.poisson,
            seed=args.seed if args.seed >= 0 else 0,
            max_concurrency=args.max_concurrency,
            sessions=args.sessions,
        )
    for flag, value in (
        ("--rate-to", args.rate_to),
        ("--ramp", args.ramp),
        ("--poisson", args.poisson or None),
        ("--max-concurrency", args.max_concurrency),
    ):
        if value is not None:
            raise UsageError(f"{flag} needs the open model (--rate R)")
    concurrency = args.concurrency or 10
    sessions = args.sessions
    if sessions is None and args.duration is None:
        sessions = concurrency
    return ClosedModel(
        concurrency=concurrency,
        ramp_up_s=args.ramp_up,
        sessions=sessions,
        duration_s=args.duration,
    )


def _server_config(args: argparse.Namespace) -> ServerConfig:
    """The embedded server's config from the ``--server-*`` options (``serve``'s options;
    an option not given keeps the server's default). Run-specific: the seed defaults to
    ``--seed``, and ``--server-stall-ms`` alone makes every response stall."""
    try:
        values = server_values(args, SERVER_PREFIX)
    except ServerOptionError as exc:
        raise UsageError(str(exc)) from None
    values.setdefault("seed", args.seed)
    if "stall-ms" in values:
        values.setdefault("stall-probability", 1.0)
    elif values.get("stall-probability"):
        typed = typed_as(args, SERVER_PREFIX, "stall-probability")
        raise UsageError(f"{typed} needs --server-stall-ms")
    try:
        # the embedded server hears the lines the run's callers say (their voice cache)
        hearing_dir = Path(getattr(args, "voice_cache", None) or default_cache_dir())
        return build_server_config(
            values, host="127.0.0.1", port=0, default_model=args.model, hearing_dir=hearing_dir
        )
    except (ConfigError, ValueError) as exc:
        raise UsageError(f"{_option_of(args, str(exc))}: {exc}") from None


def _option_of(args: argparse.Namespace, message: str) -> str:
    """The ``--server-*`` option (as typed) whose server field ``message`` is about."""
    for opt in SERVER_OPTIONS:
        field = opt.field.rpartition(".")[2]
        if message.startswith(field + " "):
            return typed_as(args, SERVER_PREFIX, opt.name) or f"--{SERVER_PREFIX}{opt.name}"
    return "embedded server options"


def _scenario_args(args: argparse.Namespace) -> list[str]:
    """The SCENARIO arguments; none, or ``builtin`` alone, is the built-in conversation."""
    given = list(getattr(args, "scenarios", None) or [])
    if given == ["builtin"]:
        return []
    if "builtin" in given:
        raise UsageError("'builtin' cannot be mixed with scenario files: give only files to mix")
    return given


def _load_scenarios(args: argparse.Namespace, given: list[str]) -> ScenarioDriver | ScenarioMix:
    """Load and check the SCENARIO file(s) (their audio included) into the driver: one
    file's, or the :class:`ScenarioMix` of several. Every problem of every file in one
    :class:`UsageError`."""
    files = " ".join(given)
    for flag, value in (("--voice", args.voice), ("--instructions", args.instructions)):
        if value is not None:
            raise UsageError(
                f"{flag} is for the built-in conversation; set it in [session] of the "
                f"scenario file {files}"
            )
    for flag in ("--speak", "--audio"):
        if getattr(args, flag[2:]) is not None:
            raise UsageError(
                f"{flag} is for the built-in conversation; a scenario file says what its "
                f"caller says in [[turns]] ({files})"
            )
    voice_given = given_voice_options(args)
    if voice_given:
        raise UsageError(
            f"{', '.join(voice_given)}: for the built-in conversation; set caller voices in "
            f"[voices] of the scenario file {files}"
        )
    try:
        entries = [parse_mix_arg(text) for text in given]
    except MixError as exc:
        raise UsageError(str(exc)) from None
    cache = cache_from_args(args)
    drivers: list[ScenarioDriver] = []
    problems: list[str] = []
    for entry in entries:
        try:
            drivers.append(ScenarioDriver(load_scenario(entry.path), cache=cache))
        except ScenarioError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("\n".join(problems))
    if len(drivers) == 1:  # one file: its weight does not matter
        return drivers[0]
    try:
        return mix_of(entries, drivers, seed=args.seed)
    except MixError as exc:
        raise UsageError(str(exc)) from None


def _builtin(args: argparse.Namespace) -> BuiltinConversation:
    """The built-in conversation of the options: ``--speak`` (checked: the engine is
    there), ``--audio`` or speech-like sound."""
    given = given_voice_options(args)
    if args.speak is None and given:
        raise UsageError(f"{', '.join(given)} need --speak TEXT")
    if args.speak is not None and args.audio is not None:
        raise UsageError("--speak and --audio are two questions: give one")
    if args.speak is not None and not args.speak.strip():
        raise UsageError("--speak: the text is empty")
    speak = None
    if args.speak is not None:
        speak = line_from_args(args, args.speak)
        missing = engine_available(speak.engine)
        if missing is not None:
            raise UsageError(f"--speak: {missing}")
    if args.audio is not None and not Path(args.audio).is_file():
        raise UsageError(f"--audio {args.audio}: file not found")
    if args.voice_variants is not None and not 1 <= args.voice_variants <= 1024:
        raise UsageError(f"--voice-variants must be in [1, 1024], got {args.voice_variants}")
    try:
        variation = variation_from_args(args, args.seed, prefix="voice-")
        return BuiltinConversation(
            speech_ms=args.speech_ms,
            lead_ms=args.lead_ms,
            tail_ms=args.tail_ms,
            seed=args.seed,
            linger_ms=args.linger_ms,
            speak=speak,
            variation=variation,
            variants=32 if args.voice_variants is None else args.voice_variants,
            audio=args.audio,
            cache=cache_from_args(args),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _with_scenario_hints(
    config: ServerConfig, scenario: ScenarioDriver | ScenarioMix
) -> ServerConfig:
    """The embedded server's config with the ``[server]`` hints of the scenario(s) (merged
    as :func:`~orchestrator.cli.mix.merged_server_hints` says); ``--server-*`` options
    given on the command line come first (tool rules) or win (transcripts, greeting)."""
    drivers = scenario.drivers if isinstance(scenario, ScenarioMix) else (scenario,)
    try:
        rules, transcripts, greeting = merged_server_hints(
            [(d.scenario.origin, d.server_hints()) for d in drivers]
        )
    except MixError as exc:
        raise UsageError(str(exc)) from None
    return attrs.evolve(
        config,
        tool_rules=config.tool_rules + rules,
        spoken_transcripts=transcripts or config.spoken_transcripts,
        greeting=config.greeting or greeting,
    )


def _default_out() -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / stamp
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{stamp}-{n}")
    return path


def prepare(args: argparse.Namespace, env: dict[str, str] | None = None) -> RunSetup:
    """Validate every option and build the run's objects; nothing started, nothing
    written (it only reads: the scenario file and its audio, whether ``--out`` already
    holds a run).

    Raises :class:`UsageError` (naming the option), ``ThresholdError`` or ``PlanError``.
    """
    env = dict(os.environ) if env is None else env
    given = _scenario_args(args)
    scenario = _load_scenarios(args, given) if given else None
    thresholds = list(args.threshold)
    for expr in thresholds:
        parse_threshold(expr)  # ThresholdError names the expression
    abort_thresholds(thresholds)  # ':abort' only on metrics known during the run
    if args.metrics_port is not None and args.metrics_port > 65535:
        raise UsageError(f"--metrics-port {args.metrics_port}: a TCP port is 0..65535")
    model = _load_model(args)
    conversation = scenario or _builtin(args)
    dialect = Dialect(args.dialect)
    server_config: ServerConfig | None = None
    target_kwargs: dict[str, Any] = {"model": args.model, "dialect": dialect}
    if args.url is None:
        given = [f"--{n.replace('_', '-')}" for n in ("provider", "deployment", "api_version",
                                                      "api_key_env") if getattr(args, n)]  # fmt: skip
        if given:
            raise UsageError(f"{', '.join(given)} need --url (the default target is embedded)")
        server_config = _server_config(args)
        if not conversation.speaks:
            # Nothing for it to hear: spare the server the per-turn matching (a few ms
            # per committed turn on its event loop, which stack up under load).
            server_config = attrs.evolve(server_config, hearing_dir=None)
        if scenario is not None:
            server_config = _with_scenario_hints(server_config, scenario)
        if args.server_in_process and args.server_processes is not None:
            raise UsageError("--server-in-process and --server-processes exclude each other")
    else:
        given = given_server_options(args, SERVER_PREFIX)
        given += [flag for flag, on in (("--server-in-process", args.server_in_process),
                                        ("--server-processes", args.server_processes))
                  if on]  # fmt: skip
        if given:
            raise UsageError(f"{', '.join(given)} only apply to the embedded server (no --url)")
        provider = args.provider or "custom"
        key = None
        if args.api_key_env:
            key = env.get(args.api_key_env)
            if not key:
                raise UsageError(f"--api-key-env {args.api_key_env}: that variable is not set")
        elif provider != "custom" and not env.get(API_KEY_ENV[provider]):
            raise UsageError(
                f"--provider {provider} needs an API key: set {API_KEY_ENV[provider]}, or "
                "name the variable holding it with --api-key-env NAME"
            )
        target_kwargs.update(
            url=args.url,
            provider=provider,
            deployment=args.deployment,
            api_version=args.api_version,
            api_key=key,
        )
        _build_target(target_kwargs, env)  # validate now (URL, key presence)
    try:
        restart = RestartPolicy(
            restart_type=RestartType(args.restart),
            intensity=RestartIntensity(args.max_restarts, args.restart_window_s),
            backoff=Backoff(rng=random.Random(args.seed)),
        )
        breaker = (
            None
            if args.no_breaker
            else CircuitBreaker(
                failure_threshold=min(args.breaker_threshold, 0.999),
                window_s=10.0,
                min_samples=20,
                cooldown_s=5.0,
            )
        )
        limits = ValidityLimits(
            loop_lag_p99_ms=args.loop_lag_limit_ms,
            pacer_p99_ms=args.pacer_limit_ms,
            target_send_p99_ms=args.target_lateness_limit_ms,
        )
        if args.drop_after_ms is not None and args.drop_after_ms < args.late_after_ms:
            raise UsageError("--drop-after-ms must be >= --late-after-ms")
    except ValueError as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(str(exc)) from None
    prices = None
    if args.prices is not None:
        try:
            prices = builtin_prices().merged(load_prices(args.prices))
        except PriceFileError as exc:
            raise UsageError(f"--prices: {exc}") from None
    out_dir = Path(args.out) if args.out else _default_out()
    if args.out and not args.overwrite and (out_dir / RESULTS_FILE).exists():
        raise UsageError(
            f"--out {out_dir}: already holds the results of a run ({RESULTS_FILE}); "
            "choose another directory or pass --overwrite to replace them"
        )
    config = {
        "scenario": conversation.name,
        "scenario_file": _scenario_file(scenario),
        "scenarios": _describe_mix(scenario),
        "url": args.url or "embedded",
        "provider": target_kwargs.get("provider", "embedded"),
        "dialect": dialect.value,
        "model": args.model,
        "api_key_env": args.api_key_env,
        "load": _describe_model(model),
        "conversation": {
            "speak": args.speak,
            "audio": args.audio,
            "caller_voice": None if args.speak is None else _describe_voice(args),
            "speech_ms": args.speech_ms,
            "lead_ms": args.lead_ms,
            "tail_ms": args.tail_ms,
            "voice": args.voice,
            "vad_silence_ms": args.vad_silence_ms,
            "realtime_factor": args.realtime_factor,
            "chunk_ms": args.chunk_ms,
            "linger_ms": args.linger_ms,
            "max_session_s": args.max_session_s,
        },
        "restart": {
            "type": args.restart,
            "max_restarts": args.max_restarts,
            "window_s": args.restart_window_s,
        },
        "breaker": None if breaker is None else {"failure_threshold": breaker.failure_threshold},
        "late_after_ms": args.late_after_ms,
        "drop_after_ms": args.drop_after_ms,
        "thresholds": thresholds,
        "abort_grace_s": args.abort_grace_s,
        "abort_window_s": args.abort_window_s,
        "seed": args.seed,
        "server": _describe_server(server_config),
        "prices": args.prices,
    }
    target = None
    if server_config is not None:
        processes = 1 if args.server_in_process else args.server_processes or 1
        first = server_config.groundtruth_path or out_dir / GROUNDTRUTH_FILE
        target = EmbeddedTarget(
            in_process=args.server_in_process,
            processes=processes,
            groundtruth=groundtruth_paths(first, processes),
        )
        server_config = attrs.evolve(server_config, groundtruth_path=first)
        config["server"]["process"] = "in-process" if target.in_process else processes
    return RunSetup(
        target=target,
        model=model,
        conversation=conversation,
        spec=None,
        target_kwargs=target_kwargs,
        server_config=server_config,
        restart=restart,
        breaker=breaker,
        thresholds=thresholds,
        out_dir=out_dir,
        config=config,
        validity_limits=limits,
        seed=args.seed,
        prices=prices,
    )


def _build_target(kwargs: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    from orchestrator.transport import build_target

    try:
        return build_target(**kwargs, env=os.environ if env is None else env)
    except ValueError as exc:
        raise UsageError(f"--url: {exc}") from None


def _scenario_file(scenario: ScenarioDriver | ScenarioMix | None) -> str | None:
    """The one scenario file of the run (None: built-in or a mix, see ``scenarios``)."""
    return scenario.scenario.origin if isinstance(scenario, ScenarioDriver) else None


def _describe_mix(scenario: ScenarioDriver | ScenarioMix | None) -> list[dict[str, Any]] | None:
    """Each scenario of a mix: name, file and weight (None: not a mix)."""
    if not isinstance(scenario, ScenarioMix):
        return None
    return [
        {"name": d.name, "file": d.scenario.origin, "weight": w}
        for d, w in zip(scenario.drivers, scenario.weights, strict=True)
    ]


def _describe_voice(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "engine": args.voice_engine or "hibari",
        "voice": args.voice_name,
        "speed": args.voice_speed,
        "speed_range": args.voice_speed_range,
        "noise": args.voice_noise,
        "snr_db": args.voice_snr_db,
        "jitter_ms": args.voice_jitter_ms,
        "telephone": args.voice_telephone,
        "variants": args.voice_variants,
    }


def _describe_model(model: ClosedModel | OpenModel) -> dict[str, Any]:
    kind = "closed" if isinstance(model, ClosedModel) else "open"
    return {"model": kind, **attrs.asdict(model)}


def _describe_server(config: ServerConfig | None) -> dict[str, Any] | None:
    if config is None:
        return None
    lat, faults = config.latency, config.faults
    return {
        "seed": config.seed,
        "first_delta_ms": str(lat.first_delta_ms),
        "response_created_ms": str(lat.response_created_ms),
        "response_words": str(lat.response_words),
        "realtime_factor": lat.realtime_factor,
        "leading_silence_ms": str(lat.leading_silence_ms),
        "greeting": config.greeting,
        "hearing_dir": None if config.hearing_dir is None else str(config.hearing_dir),
        "faults": attrs.asdict(faults),
    }


def make_spec(
    setup: RunSetup,
    target: Any,
    args: argparse.Namespace,
    conversation: BuiltinConversation | ScenarioDriver | None = None,
) -> SessionSpec:
    """The base session spec of the run for ``target``: of ``conversation`` (one scenario
    of a mix), else of the run's conversation (not a mix)."""
    if conversation is None:
        assert not isinstance(setup.conversation, ScenarioMix)
        conversation = setup.conversation
    if isinstance(conversation, ScenarioDriver):
        config, tools = conversation.session_config(), conversation.tool_registry()
    elif args.mode == "transcription":
        config, tools = transcription_session_config(vad_silence_ms=args.vad_silence_ms), None
    else:
        config = voice_session_config(
            voice=args.voice, vad_silence_ms=args.vad_silence_ms, instructions=args.instructions
        )
        tools = None
    return SessionSpec(
        target=target,
        config=config,
        tools=tools,
        pacing=PacingSpec(chunk_ms=args.chunk_ms, realtime_factor=args.realtime_factor),
        max_duration=args.max_session_s,
        label=conversation.name,
        seed=setup.seed,
    )


# --------------------------------------------------------------------------- running


def exit_code_for_signal(signum: int) -> int:
    """The exit code of a run stopped by ``signum``: 128 + its number, as a shell reports a
    process a signal killed (130 SIGINT, 143 SIGTERM, 129 SIGHUP)."""
    return 128 + int(signum)


_SIGNAL_WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}
if hasattr(signal, "SIGHUP"):
    _SIGNAL_WORDS[signal.SIGHUP] = "hung up (SIGHUP)"


@attrs.define(eq=False)
class StopSignals:
    """The stop signals a run received, in order (``signals``); ``first`` decides the exit
    code. Shared by the signal handlers outside the run and the watcher task inside it."""

    signals: list[int] = attrs.field(factory=list)

    @property
    def first(self) -> int | None:
        """The first stop signal received (``None``: none)."""
        return self.signals[0] if self.signals else None

    def note(self, signum: int) -> None:
        """Record a received stop signal."""
        self.signals.append(int(signum))


@contextmanager
def _held_stop_signals(stop: StopSignals) -> Iterator[None]:
    """While the block runs outside trio (setup, writing the summary), SIGTERM and SIGHUP
    are noted in ``stop`` instead of killing the process at once; inside ``trio.run`` the
    run's own signal receiver takes them over. Previous handlers are restored on exit.
    Only in the main thread (elsewhere signals cannot be handled: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = [sig for sig in STOP_SIGNALS if sig != signal.SIGINT]
    previous = {sig: signal.getsignal(sig) for sig in held}
    for sig in held:
        signal.signal(sig, lambda signum, _frame: stop.note(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _watch_stop_signals(
    signals: Any,
    stop: StopSignals,
    sup: Supervisor,
    grace_s: float,
    nursery: trio.Nursery,
    quiet: bool,
) -> None:
    """React to stop signals until cancelled: the first one (those received before this
    task started are in ``stop`` already) starts ``sup.drain(grace_s)`` in ``nursery``; any
    further one cancels every running session. Cancellation: raises ``Cancelled`` while
    waiting for a signal; nothing is left half done."""

    seen = 0

    def react(signum: int) -> None:
        nonlocal seen
        seen += 1
        sup.interrupted = True
        if seen == 1:
            if not quiet:
                again = "Ctrl-C again" if signum == signal.SIGINT else "the signal again or Ctrl-C"
                print(
                    f"\n{_SIGNAL_WORDS.get(signum, f'signal {signum}')}: draining (running "
                    f"sessions get {grace_s:g} s); {again} to cancel them",
                    file=sys.stderr,
                    flush=True,
                )
            nursery.start_soon(sup.drain, grace_s)
        else:
            if not quiet:
                print("\ncancelling running sessions", file=sys.stderr, flush=True)
            sup.cancel()

    for signum in list(stop.signals):  # arrived before the run's receiver was listening
        react(signum)
    async for signum in signals:
        stop.note(signum)
        react(signum)


async def _serve_metrics(
    exporter: Any, sup: Supervisor, setup: RunSetup, args: argparse.Namespace, nursery: trio.Nursery
) -> None:
    """Serve ``exporter`` (bound to ``sup``) on ``--metrics-host:--metrics-port`` in
    ``nursery`` until it is cancelled; the bound port goes to ``setup.metrics_port``."""
    from orchestrator.aio.prometheus import serve_metrics

    exporter.bind(sup, scenario=setup.conversation.name)
    try:
        port = await nursery.start(serve_metrics, exporter, args.metrics_host, args.metrics_port)
    except OSError as exc:
        where = f"{args.metrics_host}:{args.metrics_port}"
        raise OSError(
            exc.errno, f"--metrics-port: cannot listen on {where} ({exc.strerror or exc})"
        ) from None
    setup.metrics_port = port
    if not args.quiet:
        host = args.metrics_host if ":" not in args.metrics_host else f"[{args.metrics_host}]"
        print(f"metrics: http://{host}:{port}/metrics", file=sys.stderr, flush=True)


async def _abort_on_threshold(
    live: LiveThresholds,
    sup: Supervisor,
    setup: RunSetup,
    args: argparse.Namespace,
    nursery: trio.Nursery,
) -> None:
    """Judge the ``:abort`` thresholds from ``--abort-grace-s`` on; on the first failure
    write a ``run_abort`` line, note it in ``setup.aborted`` and drain the run as the first
    Ctrl-C does (running sessions get ``--grace-s``). Nothing happens when the run is
    already draining (a stop signal came first). Cancellation: raises ``Cancelled``."""
    live.counts = lambda: {"late_starts": sup.late_starts, "dropped_starts": sup.dropped_starts}
    verdict = await watch_abort_thresholds(live, t0=sup.t0, grace_s=args.abort_grace_s)
    if sup.draining:
        return
    setup.aborted = verdict.to_dict()
    sup.sink.event("run_abort", setup.aborted)
    if not args.quiet:
        print(
            f"\nrun aborted: {verdict.message}; draining (running sessions get {args.grace_s:g} s)",
            file=sys.stderr,
            flush=True,
        )
    nursery.start_soon(sup.drain, args.grace_s)


def _first(_index: int) -> int:
    return 0


def _session_counts(sup: Supervisor) -> tuple[int, int]:
    """``(finished, running)`` session attempts of ``sup`` (for the full collector)."""
    return sup.completed + sup.failed + sup.cancelled, sup.running


async def execute(
    setup: RunSetup,
    args: argparse.Namespace,
    sink: JsonlSink,
    stop: StopSignals | None = None,
) -> int | None:
    """Run the load; returns the first stop signal received (``None``: the run was not
    stopped). ``stop`` collects the stop signals (see :class:`StopSignals`).

    Cancellation: raises ``Cancelled``; the supervisor cancels every session (their results
    recorded) and writes ``run_end`` first."""
    from orchestrator.cli.progress import Progress

    stop = StopSignals() if stop is None else stop
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as top:
            target_kwargs = dict(setup.target_kwargs)
            server: MockServer | None = None
            children: TargetProcesses | None = None
            if setup.server_config is not None:
                assert setup.target is not None
                setup.target.note_offsets()
                if setup.target.in_process:
                    server = MockServer(setup.server_config)
                    port = await top.start(server.serve)
                else:
                    children = await top.start(
                        serve_target, _argv_for(setup, args), setup.target.processes
                    )
                    port = children.port
                target_kwargs.update(
                    url=f"ws://127.0.0.1:{port}/v1", provider="custom", api_key=None
                )
            target = _build_target(target_kwargs)
            conversation = setup.conversation
            pick: Callable[[int], int]
            if isinstance(conversation, ScenarioMix):
                bases = [make_spec(setup, target, args, d) for d in conversation.drivers]
                pick = conversation.index_for
            else:
                bases = [make_spec(setup, target, args)]
                pick = _first
            conversation.prepare()  # make the shared audio before the clock runs
            seed = setup.seed

            def spec_for(index: int) -> SessionSpec:
                base = bases[pick(index)]
                return attrs.evolve(base, session_id=f"s{index:06d}", seed=seed + index)

            workload = Workload(
                model=setup.model,
                spec=spec_for,
                driver=setup.conversation,
                restart=setup.restart,
            )
            run_info = {
                "name": setup.out_dir.name,
                "started_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "version": __version__,
                "target": target.url if setup.server_config is None else "embedded",
            }
            live = None
            if abort_thresholds(setup.thresholds):
                live = LiveThresholds(setup.thresholds, window_s=args.abort_window_s)
            exporter = None
            if args.metrics_port is not None:
                from orchestrator.aio.prometheus import SupervisorMetrics

                exporter = SupervisorMetrics()
            observers = [o for o in (live, exporter) if o is not None]
            with tuned_gc():
                async with open_supervisor(
                    sink=TeeSink(sink, observers) if observers else sink,
                    restart=setup.restart,
                    breaker=setup.breaker,
                    validity_limits=setup.validity_limits,
                    late_after_ms=args.late_after_ms,
                    drop_after_ms=args.drop_after_ms,
                    run_info=run_info,
                    config=setup.config,
                    seed=seed,
                    rate_gate=RateGate() if args.respect_rate_limits else None,
                ) as sup:
                    sup.planned_total = planned_total(setup.model)
                    if server is not None:
                        server.started_at = sup.t0  # --server-freeze counts from the start
                    if children is not None:
                        await children.mark_start()
                    top.start_soon(
                        _watch_stop_signals, signals, stop, sup, args.grace_s, top, args.quiet
                    )
                    if exporter is not None:
                        await _serve_metrics(exporter, sup, setup, args, top)
                    if live is not None:
                        top.start_soon(_abort_on_threshold, live, sup, setup, args, top)
                    collector = FullCollector(
                        progress=lambda: _session_counts(sup), policy=FullCollectionPolicy()
                    )
                    await top.start(collector.run)
                    mode = "off" if args.quiet else args.progress
                    if mode != "off":
                        progress = Progress(
                            sup.snapshot, rich=None if mode == "auto" else mode == "rich"
                        )
                        top.start_soon(progress.run)
                    await sup.run_workload(workload)
                top.cancel_scope.cancel()
    return stop.first


#: ``gc.set_threshold`` during a run: young collections every 700 net allocations (CPython's
#: default), the middle generation every 3 of them, and no automatic full collection (the
#: run's :class:`FullCollector` does them).
GC_THRESHOLDS: tuple[int, int, int] = (700, 3, 1_000_000_000)


@contextmanager
def tuned_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> Iterator[None]:
    """Keep the cyclic garbage collector from stalling the event loop mid-run, and still
    free everything, for the duration of the block; the previous thresholds are restored
    and the frozen objects released (``gc.unfreeze``) however it ends.

    A session's objects (tasks, scopes, channels, its state) live for seconds and form
    cycles, so they outlive the young generations and only a collection of the generation
    they reached frees them. The pause of a collection grows with the number of objects it
    scans, live or dead (~0.5 us each on a real heap): at 20 new sessions/s with 70
    running, measured, a middle generation collected every 10 young ones held seconds of
    sessions and paused 20-40 ms; every 3 young ones it holds well under a second of them
    and pauses ~3 ms (max 9), and young collections ~1.3 ms. CPython's own full
    collections come when its counters say, and with very high thresholds (the earlier
    setting here) almost never: memory then grew ~42 MB/min at 20 sessions/s.

    So: objects alive before the run (modules, numpy, the shared audio) are frozen out of
    collection (``gc.freeze``: never scanned again), the young generations are kept small
    (:data:`GC_THRESHOLDS`), CPython's automatic full collections are turned off, and the
    run's :class:`FullCollector` runs them when :class:`FullCollectionPolicy` says: in
    proportion to the sessions that ended, with at most 1% of the time spent in their
    pauses, at least every 30 s. Measured at 20 sessions/s for 10 min: one every ~10 s,
    mostly 30-50 ms (max ~110 ms); memory growth after the first minute 0.2 MB/min (was
    ~50); loop-lag p99 1.9 ms and pacer p99 4.7 ms, as before. Process-wide: the CLI does
    it, library users decide for themselves.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def _argv_for(setup: RunSetup, args: argparse.Namespace) -> Any:
    """``argv_for(index, port, reuse_port)`` of :func:`serve_target` for this run."""
    assert setup.server_config is not None and setup.target is not None
    config, paths = setup.server_config, setup.target.groundtruth

    def argv_for(index: int, port: int, reuse_port: bool) -> list[str]:
        return child_argv(
            args,
            config,
            prefix=SERVER_PREFIX,
            port=port,
            reuse_port=reuse_port,
            groundtruth=paths[index],
        )

    return argv_for


def _judged_validity(setup: RunSetup) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(validity, run_extra)`` for the summary: the generator's own verdict (the
    ``run_end`` line) merged with the embedded target's (its ground truth's send
    lateness), and the target's figures under ``run.target``; ``(None, None)`` with
    ``--url`` or when nothing can be read (the summary then keeps ``run_end``'s)."""
    if setup.target is None:
        return None, None
    try:
        meta = read_run_meta(setup.out_dir / RESULTS_FILE)
        verdict, figures = judge_groundtruth(setup.target, setup.validity_limits)
    except (OSError, ValueError):
        return None, None
    return merge_validity(meta.validity, verdict), {"target": figures}


def _err(message: str) -> int:
    return fail("run", message)


def handle(args: argparse.Namespace) -> int:
    """Run ``orchestrator run``; returns the exit code."""
    try:
        setup = prepare(args)
    except (UsageError, ThresholdError, PlanError) as exc:
        return _err(str(exc))
    try:  # synthesize caller voices, read audio: before the run's clock, off the event loop
        setup.conversation.prepare()
    except (ScenarioError, VoiceError, AudioFileError, ValueError) as exc:
        return _err(str(exc))
    try:
        sink = JsonlSink(setup.out_dir / RESULTS_FILE)
    except OSError as exc:
        return _err(f"--out {setup.out_dir}: {exc}")
    stop = StopSignals()
    with _held_stop_signals(stop):
        crashed: BaseException | None = None
        try:
            trio.run(execute, setup, args, sink, stop)
        except* KeyboardInterrupt:
            stop.note(signal.SIGINT)
        except* Exception as group:
            crashed = first_error(group)
        finally:
            sink.close()
        validity, run_extra = _judged_validity(setup)
        try:
            outputs = write_outputs(
                setup.out_dir,
                thresholds=setup.thresholds,
                validity=validity,
                run_extra=run_extra,
                prices=setup.prices,
            )
        except Exception as exc:  # noqa: BLE001 - report, exit 1
            return _err(f"could not write the summary in {setup.out_dir}: {exc}")
    summary = outputs.summary
    if not args.quiet:
        print(summary_text(summary), end="")
        print(f"results: {setup.out_dir}")
    everything_failed = all_failed_warning(summary)
    if everything_failed is not None:
        print(f"WARNING: {everything_failed}", file=sys.stderr)
    validity = summary.get("validity", {})
    if not validity.get("valid", True):
        print(
            "WARNING: results not valid: " + "; ".join(validity.get("reasons", [])),
            file=sys.stderr,
        )
    if crashed is not None:
        return _err(f"the run failed: {type(crashed).__name__}: {crashed}")
    if stop.first is not None:
        return exit_code_for_signal(stop.first)
    if setup.aborted is not None:
        print(f"run aborted: {setup.aborted['reason']}", file=sys.stderr)
        return EXIT_THRESHOLDS
    if not summary.get("thresholds_ok", True):
        failed = [
            f"{t['expr']} (actual {t.get('actual')})" for t in summary["thresholds"] if not t["ok"]
        ]
        print("thresholds failed: " + ", ".join(failed), file=sys.stderr)
        return EXIT_THRESHOLDS
    if args.fail_on_expectations:
        failed_expectations = (
            summary.get("sessions", {}).get("failure_types", {}).get(EXPECTATION_FAILURE, 0)
        )
        if failed_expectations:
            print(
                f"expectations failed: {failed_expectations} session(s) failed with "
                f"{EXPECTATION_FAILURE} (--fail-on-expectations)",
                file=sys.stderr,
            )
            return EXIT_EXPECTATIONS
    return EXIT_OK
