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

from orchestrator.audio.voices.layout import default_cache_dir
from orchestrator.cli.options import (
    add_server_options,
    add_subcommand,
    server_config_from_args,
)
from orchestrator.mockserver import (
    ConfigError,
    DistributionError,
    MockServer,
    ServerConfig,
)

API_KEY_ENV = "ORCHESTRATOR_MOCK_API_KEY"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``serve`` subcommand."""
    p = add_subcommand(
        subparsers,
        "serve",
        help="run the embedded OpenAI-Realtime-compatible mock server",
        description=(
            "Serve the OpenAI Realtime protocol (GA and beta) on ws://HOST:PORT/v1/realtime "
            "with a seeded latency model, ground truth, deterministic tool calls and "
            "injected faults. Durations accept fixed:MS, uniform:LO:HI, normal:MEAN:SD, "
            "lognormal:MEDIAN:SIGMA (SIGMA: log-space standard deviation, 0 < SIGMA <= 3, "
            "e.g. lognormal:350:0.25) or a bare number."
        ),
        handler=run_serve,
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
    add_server_options(p)
    hearing = p.add_argument_group("hearing")
    hearing.add_argument(
        "--hear-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="voice cache whose caller lines the server recognises in audio turns (their "
        f"transcript is the line's text; default {default_cache_dir()})",
    )
    hearing.add_argument(
        "--no-hearing",
        action="store_true",
        help="do not recognise caller lines (transcripts are hints or generated)",
    )
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Build the server configuration (raises ConfigError / ValueError with the option name)."""
    if args.no_hearing and args.hear_dir is not None:
        raise ConfigError("--hear-dir and --no-hearing exclude each other")
    return server_config_from_args(
        args,
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        api_key=args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None,
        hearing_dir=None if args.no_hearing else args.hear_dir or default_cache_dir(),
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
            if server.hearing is not None:
                print(
                    f"hearing {server.hearing.clips} cached caller lines in {config.hearing_dir} "
                    "(new ones are picked up as they appear)",
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
