"""Session actor costs: the per-event receive path, and many sessions in one process.

    python benchmarks/bench_session.py [--sessions 200] [--turns 2]

1. ``receive path``: one session core's ``on_event`` (decode excluded and included) fed the
   frames of a real GA capture (audio turn) over and over: microseconds per event.
2. ``concurrent``: N session actors, each against its own embedded-server connection
   over a memory stream, on trio's MockClock (so only CPU counts, no waiting): wall
   time, events per second through client *and* server, and every session's status.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing

from orchestrator import protocol as P
from orchestrator.mockserver import Distribution, LatencyModel, MockServer, ServerConfig
from orchestrator.protocol import Dialect
from orchestrator.session import Session, SessionSpec, open_session
from orchestrator.transport import Target, connect_stream

SHARED = Path(__file__).resolve().parents[2] / "shared" / "captures"
CAPTURE = "pydantic-ai__test_openai_ws__test_input_audio_retention_segments_three_server_vad_turns.server.jsonl"


def bench_receive_path(repeat: int) -> None:
    path = SHARED / CAPTURE
    if not path.exists():
        print(f"receive path: skipped ({path} not found)")
        return
    frames = [line for line in path.read_text().splitlines() if line.strip()]
    decoded = [P.decode_server_event(f, Dialect.GA) for f in frames]

    async def run() -> tuple[float, float]:
        session = Session(SessionSpec(connect=lambda: None, wait_session_created=False))  # type: ignore[arg-type,return-value]
        t = 0.0
        start = time.perf_counter()
        for _ in range(repeat):
            for ev in decoded:
                session._core.on_event(ev, t)
        handle = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(repeat):
            for f in frames:
                session._core.on_event(P.decode_server_event(f, Dialect.GA), t)
        both = time.perf_counter() - start
        return handle, both

    handle, both = trio.run(run)
    n = repeat * len(frames)
    print(
        f"receive path: {n} events; handling {handle / n * 1e6:.1f} us/event, "
        f"decode + handling {both / n * 1e6:.1f} us/event"
    )


def bench_concurrent(sessions: int, turns: int) -> None:
    latency = LatencyModel(
        response_created_ms=Distribution.parse("fixed:5"),
        first_delta_ms=Distribution.parse("fixed:300"),
        response_words=Distribution.parse("fixed:12"),
        realtime_factor=2.0,
    )
    server = MockServer(ServerConfig(port=0, latency=latency))
    target = Target(url="ws://127.0.0.1/v1/realtime?model=gpt-realtime", dialect=Dialect.GA)

    @asynccontextmanager
    async def factory() -> Any:
        client, far = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve_stream, far)
            try:
                async with connect_stream(client, target) as conn:
                    yield conn
            finally:
                nursery.cancel_scope.cancel()

    results: list[Any] = []

    async def one(i: int) -> None:
        async with open_session(SessionSpec(connect=factory, session_id=f"s{i}")) as s:
            for n in range(turns):
                await s.say_text(f"question {n}")
        results.append(s.result)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(sessions):
                nursery.start_soon(one, i)

    start = time.perf_counter()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    wall = time.perf_counter() - start
    events = sum(r.events_received for r in results)
    ok = sum(r.status == "completed" for r in results)
    print(
        f"concurrent: {sessions} sessions x {turns} turns in {wall:.2f} s wall; "
        f"{events} client events ({events / wall:,.0f}/s incl. the server's work); "
        f"{ok}/{sessions} completed"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)
    bench_receive_path(args.repeat)
    bench_concurrent(args.sessions, args.turns)


if __name__ == "__main__":
    main(sys.argv[1:])
