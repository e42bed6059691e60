"""``orchestrator serve``: run the embedded Realtime-compatible server in the foreground."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import trio

from orchestrator.mockserver import (
    ConfigError,
    Distribution,
    DistributionError,
    FaultConfig,
    FreezeWindow,
    LatencyModel,
    MockServer,
    ServerConfig,
    ToolRule,
)

API_KEY_ENV = "ORCHESTRATOR_MOCK_API_KEY"


def _dist(text: str) -> Distribution:
    try:
        return Distribution.parse(text)
    except DistributionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _freeze(text: str) -> FreezeWindow:
    try:
        return FreezeWindow.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: Any) -> None:
    """Register the ``serve`` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="run the embedded OpenAI-Realtime-compatible mock server",
        description=(
            "Serve the OpenAI Realtime protocol (GA and beta) on ws://HOST:PORT/v1/realtime "
            "with a seeded latency model, ground truth, deterministic tool calls and "
            "injected faults. Durations accept fixed:MS, uniform:LO:HI, normal:MEAN:SD, "
            "lognormal:MEDIAN:SIGMA (or a bare number)."
        ),
    )
    net = p.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    net.add_argument(
        "--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)"
    )
    net.add_argument(
        "--allow-remote", action="store_true", help="allow binding a non-loopback address"
    )
    net.add_argument(
        "--api-key",
        default=None,
        help=f"require this key (Bearer or api-key header); default ${API_KEY_ENV} or none",
    )
    net.add_argument(
        "--max-message-size",
        type=int,
        default=16 * 1024 * 1024,
        help="largest client frame in bytes (close 1009 above)",
    )

    lat = p.add_argument_group("latency model (ms, seeded)")
    lat.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    lat.add_argument(
        "--response-created",
        type=_dist,
        default=Distribution("fixed", 5.0),
        metavar="DIST",
        help="anchor -> response.created (default fixed:5)",
    )
    lat.add_argument(
        "--first-delta",
        type=_dist,
        default=Distribution("lognormal", 350.0, 0.25),
        metavar="DIST",
        help="anchor -> first audio/text delta (default lognormal:350:0.25)",
    )
    lat.add_argument(
        "--delta-interval",
        type=_dist,
        default=None,
        metavar="DIST",
        help="between deltas (default: chunk length / realtime factor)",
    )
    lat.add_argument(
        "--response-words",
        type=_dist,
        default=Distribution("uniform", 8.0, 20.0),
        metavar="DIST",
        help="answer length in words (default uniform:8:20)",
    )
    lat.add_argument(
        "--realtime-factor",
        type=float,
        default=2.0,
        help="audio generated at N x real time; 0 = as fast as possible (default 2)",
    )
    lat.add_argument(
        "--audio-chunk-ms", type=int, default=100, help="audio per delta in ms (default 100)"
    )
    lat.add_argument(
        "--transcription-latency",
        type=_dist,
        default=Distribution("fixed", 150.0),
        metavar="DIST",
        help="commit -> input transcription (default fixed:150)",
    )

    beh = p.add_argument_group("behaviour")
    beh.add_argument(
        "--groundtruth",
        type=Path,
        default=None,
        metavar="PATH",
        help="append one JSON line per response",
    )
    beh.add_argument(
        "--tool-rule",
        action="append",
        default=[],
        metavar="REGEX=>TOOL[:JSON]",
        help="call TOOL with JSON args when REGEX matches the user's text (repeatable)",
    )
    beh.add_argument(
        "--no-tool-name-matching",
        action="store_true",
        help="do not call a tool just because its name appears in the text",
    )
    beh.add_argument(
        "--spoken-transcript",
        action="append",
        default=[],
        metavar="TEXT",
        help="transcript of successive audio turns (repeatable, cycled)",
    )

    flt = p.add_argument_group("faults (seeded)")
    flt.add_argument(
        "--close-after-s",
        type=float,
        default=None,
        help="close each connection after N seconds (1011)",
    )
    flt.add_argument(
        "--close-after-responses", type=int, default=None, help="close after N responses (1011)"
    )
    flt.add_argument(
        "--close-probability",
        type=float,
        default=0.0,
        help="per response: drop the connection mid-response (1011)",
    )
    flt.add_argument(
        "--error-probability",
        type=float,
        default=0.0,
        help="per response: server_error event, response failed",
    )
    flt.add_argument(
        "--stall-probability", type=float, default=0.0, help="per response: go silent mid-response"
    )
    flt.add_argument(
        "--stall-ms", type=float, default=2000.0, help="length of a stall (default 2000)"
    )
    flt.add_argument(
        "--freeze",
        type=_freeze,
        action="append",
        default=[],
        metavar="AT_S:MS",
        help="freeze the whole server for MS ms from AT_S s after it started: handshakes "
        "and client frames are accepted, but every frame due in the window is held and sent "
        "when it ends (repeatable)",
    )
    flt.add_argument(
        "--reject-percent",
        type=float,
        default=0.0,
        help="refuse this %% of handshakes with HTTP 429",
    )
    flt.add_argument(
        "--session-max-s",
        type=float,
        default=3600.0,
        help="session lifetime: session_expired then close 1001 (default 3600)",
    )
    net.add_argument(
        "--ping-interval-s",
        type=float,
        default=20.0,
        help="websocket PING interval; 0 = off (default 20)",
    )
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.set_defaults(handler=run_serve)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Build the server configuration (raises ConfigError / ValueError with the option name)."""
    latency = LatencyModel(
        response_created_ms=args.response_created,
        first_delta_ms=args.first_delta,
        delta_interval_ms=args.delta_interval,
        response_words=args.response_words,
        realtime_factor=args.realtime_factor,
        audio_chunk_ms=args.audio_chunk_ms,
        transcription_ms=args.transcription_latency,
    )
    faults = FaultConfig(
        close_after_s=args.close_after_s,
        close_after_responses=args.close_after_responses,
        close_probability=args.close_probability,
        error_probability=args.error_probability,
        stall_probability=args.stall_probability,
        stall_ms=args.stall_ms,
        reject_percent=args.reject_percent,
        session_max_s=args.session_max_s,
        freezes=tuple(args.freeze),
    )
    return ServerConfig(
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        api_key=args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None,
        seed=args.seed,
        latency=latency,
        faults=faults,
        tool_rules=tuple(ToolRule.parse(r) for r in args.tool_rule),
        tool_name_matching=not args.no_tool_name_matching,
        spoken_transcripts=tuple(args.spoken_transcript),
        groundtruth_path=args.groundtruth,
        max_message_size=args.max_message_size,
        ping_interval_s=args.ping_interval_s or None,
    )


def run_serve(args: argparse.Namespace) -> int:
    """Run until interrupted; prints the URL on start and the counters on exit."""
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_from_args(args)
    except (ConfigError, DistributionError, ValueError) as exc:
        print(f"orchestrator serve: {exc}", file=sys.stderr)
        return 2
    server = MockServer(config)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            host = f"[{config.host}]" if ":" in config.host else config.host
            auth = "key required" if config.api_key else "no auth"
            print(
                f"mock realtime server on ws://{host}:{port}/v1/realtime ({auth}, seed {config.seed})",
                flush=True,
            )
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    failed: list[BaseException] = []
    try:
        trio.run(main)
    except* OSError as group:
        failed.extend(group.exceptions)
    if failed:
        print(
            f"orchestrator serve: cannot listen on {config.host}:{config.port}: {failed[0]}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(server.stats.snapshot()), file=sys.stderr)
    return 0
