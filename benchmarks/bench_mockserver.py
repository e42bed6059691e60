"""Benchmark: N concurrent connections, each doing full server-VAD audio turns, against
one mock server process.

The server runs in its own process (so its CPU time is measured alone); the clients
are plain trio-websocket clients in this process, pacing input audio in real time in
100 ms chunks on absolute deadlines. Loopback only.

    python benchmarks/bench_mockserver.py --connections 200 --turns 1

Prints events/s sent by the server, server CPU (seconds and % of one core), the
clients' TTFB (speech_stopped -> first audio delta) against the model's fixed value,
and any errors.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
import orjson
import trio
import trio_websocket

from orchestrator.audio import pcm16_to_b64, silence, speech_like
from orchestrator.mockserver import Distribution, LatencyModel, MockServer, ServerConfig


def _server_main(
    conn: Any, first_delta_ms: float, rtf: float, chunk_ms: int, cpu: int | None = None
) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    latency = LatencyModel(
        first_delta_ms=Distribution("fixed", first_delta_ms),
        response_words=Distribution("uniform", 8, 20),
        realtime_factor=rtf,
        audio_chunk_ms=chunk_ms,
    )
    server = MockServer(ServerConfig(port=0, seed=1, latency=latency))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            conn.send(port)
            await trio.to_thread.run_sync(conn.recv)  # wait for "stop"
            nursery.cancel_scope.cancel()

    cpu0 = time.process_time()
    trio.run(main)
    conn.send({"cpu_s": time.process_time() - cpu0, "stats": server.stats.snapshot()})


async def _client(port: int, frames: list[str], turns: int, out: dict[str, Any]) -> None:
    try:
        async with trio_websocket.open_websocket(
            "127.0.0.1",
            port,
            "/v1/realtime?model=gpt-realtime",
            use_ssl=False,
            message_queue_size=64,
        ) as ws:
            received = 0

            async def reader(done: trio.Event, state: dict[str, Any]) -> None:
                nonlocal received
                while True:
                    event = orjson.loads(await ws.get_message())
                    received += 1
                    etype = event["type"]
                    if etype == "input_audio_buffer.speech_stopped":
                        state["stopped"] = trio.current_time()
                    elif etype == "response.output_audio.delta" and "first" not in state:
                        state["first"] = trio.current_time()
                    elif etype == "error":
                        out["errors"].append(event["error"].get("code"))
                    elif etype == "response.done":
                        out["statuses"].append(event["response"]["status"])
                        done.set()
                        return

            await ws.get_message()  # session.created
            for _ in range(turns):
                state: dict[str, Any] = {}
                done = trio.Event()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reader, done, state)
                    start = trio.current_time()
                    for i, frame in enumerate(frames):
                        await trio.sleep_until(start + i * 0.1)
                        if done.is_set():
                            break
                        await ws.send_message(frame)
                if "stopped" in state and "first" in state:
                    out["ttfb_ms"].append((state["first"] - state["stopped"]) * 1000)
            out["events"] += received
    except Exception as exc:  # counted, reported
        out["errors"].append(type(exc).__name__)


async def _run_clients(port: int, n: int, turns: int, ramp_s: float) -> dict[str, Any]:
    audio = speech_like(1500, seed=2)
    signal = np.concatenate([silence(300), audio, silence(700)])
    frames = [
        orjson.dumps(
            {"type": "input_audio_buffer.append", "audio": pcm16_to_b64(signal[i : i + 2400])}
        ).decode()
        for i in range(0, signal.size, 2400)
    ]
    out: dict[str, Any] = {"events": 0, "errors": [], "statuses": [], "ttfb_ms": []}
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(_client, port, frames, turns, out)
            if ramp_s:
                await trio.sleep(ramp_s / n)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--turns", type=int, default=1)
    ap.add_argument("--first-delta-ms", type=float, default=300.0)
    ap.add_argument("--realtime-factor", type=float, default=2.0)
    ap.add_argument("--chunk-ms", type=int, default=100)
    ap.add_argument(
        "--ramp-s", type=float, default=1.0, help="spread connection starts over this long"
    )
    ap.add_argument(
        "--server-cpu",
        type=int,
        default=None,
        help="pin the server process to this CPU and the clients to the others (Linux)",
    )
    args = ap.parse_args()
    if args.server_cpu is not None and hasattr(os, "sched_setaffinity"):
        mine = os.sched_getaffinity(0)
        if args.server_cpu not in mine:
            ap.error(f"--server-cpu {args.server_cpu}: not one of this process's CPUs {sorted(mine)}")
        others = mine - {args.server_cpu}
        if others:
            os.sched_setaffinity(0, others)

    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_server_main,
        args=(child, args.first_delta_ms, args.realtime_factor, args.chunk_ms, args.server_cpu),
        daemon=True,
    )
    proc.start()
    child.close()  # a server that dies before answering ends the pipe: recv raises EOFError
    port = parent.recv()
    t0 = time.perf_counter()
    out = trio.run(_run_clients, port, args.connections, args.turns, args.ramp_s)
    wall = time.perf_counter() - t0
    parent.send("stop")
    server = parent.recv()
    proc.join(10)
    stats = server["stats"]
    ttfb = sorted(out["ttfb_ms"])
    q = statistics.quantiles(ttfb, n=100) if len(ttfb) >= 2 else [float("nan")] * 99
    print(
        f"connections           {args.connections} x {args.turns} audio turn(s), ramp {args.ramp_s}s"
    )
    print(f"wall time             {wall:.2f} s")
    print(
        f"server events sent    {stats['events_sent']}  ({stats['events_sent'] / wall:,.0f} events/s, {stats['bytes_sent'] / wall / 1e6:.1f} MB/s)"
    )
    print(
        f"server events recv    {stats['events_received']}  ({stats['events_received'] / wall:,.0f} events/s)"
    )
    print(
        f"server CPU            {server['cpu_s']:.2f} s  ({100 * server['cpu_s'] / wall:.0f}% of one core)"
    )
    print(f"responses             {dict(stats['responses_done'])}")
    print(
        f"client TTFB ms        p50 {q[49]:.1f}  p99 {q[98]:.1f}  max {max(ttfb, default=float('nan')):.1f}  (model: fixed {args.first_delta_ms:g})"
    )
    print(
        f"errors                client {len(out['errors'])} {sorted(set(out['errors']))[:5]}  server crashes {stats['crashes']}  client_errors {stats['client_errors']}"
    )
    ok = (
        not out["errors"]
        and stats["crashes"] == 0
        and len(out["statuses"]) == args.connections * args.turns
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
