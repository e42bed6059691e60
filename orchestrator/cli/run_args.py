"""The arguments of ``orchestrator run``: every option, its type, default and help.

Only the parser: :func:`add_run_parser` registers the subcommand; turning the parsed
namespace into a run is :mod:`orchestrator.cli.run_setup`'s job.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from orchestrator.cli.options import (
    EXIT_CODES_HELP,
    add_server_options,
    add_subcommand,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    probability,
)
from orchestrator.cli.run_setup import DEFAULT_MODEL
from orchestrator.cli.target_process import SERVER_PREFIX
from orchestrator.cli.voice_options import (
    add_voice_options,
)

__all__ = ["add_run_parser"]


def add_run_parser(
    subparsers: Any, handler: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """Register ``run`` on ``subparsers``, its options and their help, calling ``handler``."""
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
        handler=handler,
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
        help="N server processes sharing one port (SO_REUSEPORT) (default on Linux: one per "
        "50 sessions at once, at most one per core beside the generator's or the workers', "
        "at least one per two workers; elsewhere 1)",
    )
    emb.add_argument(
        "--target-lateness-limit-ms",
        type=nonneg_float,
        default=50.0,
        metavar="MS",
        help="the embedded server's own send lateness p99 (ground truth actual - "
        "intended) above which the run is invalid (default 50)",
    )

    fleet = p.add_argument_group("scale-out (orchestrator.fleet)")
    fleet.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N|auto",
        help="split the run over N local worker processes (auto: one per CPU), each "
        "running its share of the plan; one results.jsonl and summary (default: this "
        "process runs it; with --ray, one worker per CPU of the cluster)",
    )
    fleet.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the workers as Ray actors on the cluster at ADDRESS (without one: a "
        "local Ray instance started and stopped by the run); one worker per CPU unless "
        "--workers N (at most the cluster's free CPUs); the API key variable, when set "
        "here, is passed to the actors' environment (with a remote cluster: to its "
        "nodes); needs pip install 'realtime-orchestrator[ray]'",
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
        "--tag",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a user tag on every record (repeatable; --tag env=staging); summary and "
        "thresholds select by it: 'ttfb_ms{env:staging}.p95<500'",
    )
    out.add_argument(
        "--progress",
        choices=("auto", "rich", "plain", "off"),
        default="auto",
        help="live progress: rich on a terminal, plain lines otherwise (default auto)",
    )
    out.add_argument("--quiet", "-q", action="store_true", help="no progress, no summary text")
    return p


def _workers(text: str) -> int | str:
    """``--workers``: a positive integer or ``auto``."""
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 1 or 'auto', got {text!r}"
        ) from None
