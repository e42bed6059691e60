"""``orchestrator serve``: run the embedded Realtime-compatible server in the foreground.

With ``--child`` it serves a parent process (``orchestrator run``'s default target, see
:mod:`orchestrator.cli.target_process`) over its standard streams: once listening it
prints one line ``ready port=PORT pid=PID`` on stdout (nothing else goes there); each
``start`` line on stdin makes that moment the origin of scheduled faults (the run's
start); the end of stdin (the parent closed it, exited or died) stops the server, so a
child never outlives its parent. ``--reuse-port`` binds with ``SO_REUSEPORT`` so that
several such processes share one port.

Garbage collection as in ``orchestrator run`` (:func:`~orchestrator.supervisor.gc_regime.tuned_gc`
and a :class:`~orchestrator.supervisor.gc_regime.FullCollector` counting connections for
sessions): everything alive before serving (modules, the audio bank) is frozen out of
collection and full collections come when the policy says, not at CPython's moments. A
full collection of the start-up heap paused the loop 40-65 ms and held every frame due
then: with 100 sessions on 2 cores (``benchmarks/bench_baseline.py``) the server's send
lateness p99 was 10-115 ms over nine runs before, 8-9 ms after.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import orjson
import trio
import trio.testing

from orchestrator.audio.voices.layout import default_cache_dir
from orchestrator.cli.options import (
    EXIT_ERROR,
    add_server_options,
    add_subcommand,
    server_config_from_args,
)
from orchestrator.cli.signals import exit_code_for_signal
from orchestrator.mockserver import (
    ConfigError,
    DistributionError,
    MockServer,
    ServerConfig,
)
from orchestrator.supervisor.gc_regime import FullCollector, tuned_gc

API_KEY_ENV = "ORCHESTRATOR_MOCK_API_KEY"

log = logging.getLogger("orchestrator.mockserver")


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
        "--reuse-port",
        action="store_true",
        help="bind with SO_REUSEPORT: several server processes may share the port",
    )
    net.add_argument(
        "--first-connection",
        type=int,
        default=0,
        metavar="N",
        help="number this server's connections from N (several processes sharing a port: "
        "each its own range, so no two connections draw the same latencies and faults)",
    )
    net.add_argument(
        "--child",
        action="store_true",
        help="serve a parent process: print 'ready port=PORT pid=PID' on stdout once "
        "listening; stdin: a 'start' line marks the start of scheduled faults, its end "
        "stops the server",
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
    p.add_argument(
        "--default-model",
        default=None,
        metavar="MODEL",
        help="model of a session whose handshake names none it accepts (default gpt-realtime)",
    )
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Build the server configuration (raises ConfigError / ValueError with the option name)."""
    if args.no_hearing and args.hear_dir is not None:
        raise ConfigError("--hear-dir and --no-hearing exclude each other")
    extra = {} if args.default_model is None else {"default_model": args.default_model}
    return server_config_from_args(
        args,
        **extra,
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        api_key=args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None,
        hearing_dir=None if args.no_hearing else args.hear_dir or default_cache_dir(),
    )


def run_serve(args: argparse.Namespace) -> int:
    """Run until interrupted; prints the URL on start and the counters on exit. Exit
    code: 128 + the signal that stopped it (130 SIGINT, 143 SIGTERM, as ``run``), 0 when
    a ``--child``'s parent closed stdin, 1 for a bad option or a port it cannot bind."""
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_from_args(args)
    except (ConfigError, DistributionError, ValueError) as exc:
        print(f"orchestrator serve: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    server = MockServer(  # its ground truth goes to the file or nowhere
        config, keep_groundtruth=0, first_connection=args.first_connection
    )
    stopped_by: list[int] = []  # the signal that stopped the server, if one did

    async def main() -> None:
        # Listening before anything is announced: a signal right after the banner (or
        # the ready line) is one the receiver gets, not a default SIGTERM death.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            if args.child:
                await warm_up(config)
            async with trio.open_nursery() as nursery:
                port = await nursery.start(partial(server.serve, reuse_port=args.reuse_port))
                collector = FullCollector(progress=partial(_connection_counts, server))
                await nursery.start(collector.run)
                if args.child:
                    print(f"ready port={port} pid={os.getpid()}", flush=True)
                    nursery.start_soon(_obey_parent, server, nursery.cancel_scope)
                else:
                    _banner(server, config, port)
                async for signum in signals:
                    stopped_by.append(signum)
                    nursery.cancel_scope.cancel()
                    break

    failed: list[BaseException] = []
    try:
        with tuned_gc():
            trio.run(main)
    except* OSError as group:
        failed.extend(group.exceptions)
    if failed:
        print(
            f"orchestrator serve: cannot listen on {config.host}:{config.port}: {failed[0]}",
            file=sys.stderr,
        )
        return 1
    if not args.child:
        print(json.dumps(server.stats.snapshot()), file=sys.stderr)
    return exit_code_for_signal(stopped_by[0]) if stopped_by else 0


def _connection_counts(server: MockServer) -> tuple[int, int]:
    """(connections ended, connections open): the full collector's measure of garbage."""
    return server.stats.connections_closed, server.stats.connections_active


def _banner(server: MockServer, config: ServerConfig, port: int) -> None:
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


#: How long :func:`warm_up` may take at most.
WARM_UP_S = 10.0


async def warm_up(config: ServerConfig) -> None:
    """Run one spoken conversation (session.update, a VAD turn, the answer) through a
    throwaway server of ``config`` over memory streams, without ground truth, faults or
    latency, so that the first burst of real turns does not pay for what is built on
    first use (the protocol converters, the response plans, the input decoders): measured
    at 100 simultaneous first turns, that made every first response ~0.5 s late.

    Best effort and bounded (:data:`WARM_UP_S`); never raises but ``Cancelled``."""
    from trio_websocket import wrap_client_stream

    from orchestrator.audio import pcm16_to_b64, silence, speech_like
    from orchestrator.mockserver import Distribution, FaultConfig, LatencyModel

    fast = LatencyModel(
        response_created_ms=Distribution.parse("fixed:0"),
        first_delta_ms=Distribution.parse("fixed:0"),
        response_words=Distribution.parse("fixed:4"),
        realtime_factor=0.0,
        transcription_ms=Distribution.parse("fixed:0"),
    )
    quiet = attrs.evolve(
        config, groundtruth_path=None, faults=FaultConfig(), latency=fast, greeting=None
    )
    throwaway = MockServer(quiet)
    audio = pcm16_to_b64(np.concatenate([silence(200), speech_like(600, seed=1), silence(800)]))
    client_end, server_end = trio.testing.memory_stream_pair()
    with trio.move_on_after(WARM_UP_S):
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(throwaway.serve_stream, server_end)
                resource = f"/v1/realtime?model={config.default_model}"
                ws = await wrap_client_stream(
                    nursery,
                    client_end,  # type: ignore[arg-type]  # any trio stream works
                    "localhost",
                    resource,
                )
                await ws.send_message(
                    orjson.dumps(
                        {"type": "session.update", "session": {"type": "realtime"}}
                    ).decode()
                )
                await ws.send_message(
                    orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode()
                )
                while True:
                    event = orjson.loads(await ws.get_message())
                    if event.get("type") == "response.done":
                        log.debug("warm-up answered: %s", event["response"]["status"])
                        break
                await ws.aclose()
                nursery.cancel_scope.cancel()
        except Exception as exc:  # noqa: BLE001 - best effort: the server works anyway
            log.info("warm-up skipped: %r", exc)


async def _obey_parent(server: MockServer, scope: trio.CancelScope) -> None:
    """Read the parent's lines on stdin: ``start`` marks the run's start (origin of the
    scheduled faults); the end of stdin cancels ``scope`` (the parent is gone or done)."""
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    async with stdin:
        while True:
            chunk = await stdin.receive_some(4096)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip() == b"start":
                    server.mark_started()
    scope.cancel(reason="the parent closed stdin")
