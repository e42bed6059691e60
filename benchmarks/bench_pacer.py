"""Wake-up cost and lateness of the audio pacers, on the real clock.

N sessions each pace "audio frames" on absolute deadlines ``t0 + n * chunk`` (random
phases ``t0`` within one chunk, as sessions that started at arbitrary times) for
``--duration`` seconds, once with :class:`SleepPacer` (one ``trio.sleep_until`` per
frame per session) and once with the shared :class:`Ticker`; the ``ticker-aligned`` row
starts every timeline on the ticker grid (``t0 = ticker.align(...)``).

Reported per case: process CPU time per wake-up in µs (everything the process did:
scheduler, timer handling, the waiter's own loop), lateness (actual - planned) p50/p99/
max in ms, and waiters per timer wake-up for the ticker.

    python benchmarks/bench_pacer.py [--sessions 100 500] [--duration 3]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import trio

from orchestrator.session.pacer import Pacer, SleepPacer, Ticker


async def run_case(
    kind: str, sessions: int, chunk: float, duration: float, resolution: float
) -> dict[str, float]:
    lateness: list[float] = []
    rng = random.Random(0)
    async with trio.open_nursery() as nursery:
        pacer: Pacer
        ticker: Ticker | None = None
        if kind == "sleep":
            pacer = SleepPacer()
        else:
            ticker = Ticker(resolution)
            await nursery.start(ticker.run)
            pacer = ticker
        start = trio.current_time() + 0.1
        end = start + duration

        async def session(phase: float) -> None:
            t0 = start + phase
            if kind == "ticker-aligned":
                t0 = pacer.align(t0)
            n = 0
            while (planned := t0 + n * chunk) < end:
                actual = await pacer.wait_until(planned)
                lateness.append(actual - planned)
                n += 1

        cpu0 = time.process_time()
        async with trio.open_nursery() as group:
            for _ in range(sessions):
                group.start_soon(session, rng.uniform(0.0, chunk))
        cpu = time.process_time() - cpu0
        nursery.cancel_scope.cancel()
    late_ms = np.asarray(lateness) * 1000.0
    result = {
        "wakes": float(len(lateness)),
        "us_per_wake": cpu / len(lateness) * 1e6,
        "p50_ms": float(np.percentile(late_ms, 50)),
        "p99_ms": float(np.percentile(late_ms, 99)),
        "max_ms": float(late_ms.max()),
        "min_ms": float(late_ms.min()),
    }
    if ticker is not None:
        result["per_tick"] = ticker.wakes / max(ticker.ticks, 1)
    return result


async def main(args: argparse.Namespace) -> None:
    print(
        f"chunk {args.chunk * 1000:.0f} ms, {args.duration:.1f} s per case, "
        f"ticker resolution {args.resolution * 1000:g} ms"
    )
    header = f"{'pacer':<15}{'N':>5}{'wakes':>8}{'us/wake':>9}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'per tick':>9}"
    print(header)
    for sessions in args.sessions:
        for kind in ("sleep", "ticker", "ticker-aligned"):
            r = await run_case(kind, sessions, args.chunk, args.duration, args.resolution)
            assert r["min_ms"] >= -1e-6, f"{kind} woke early: {r['min_ms']} ms"
            per_tick = f"{r['per_tick']:9.1f}" if "per_tick" in r else f"{'-':>9}"
            print(
                f"{kind:<15}{sessions:>5}{r['wakes']:>8.0f}{r['us_per_wake']:>9.1f}"
                f"{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}{r['max_ms']:>8.2f}{per_tick}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--chunk", type=float, default=0.100, help="frame length, s")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per case")
    parser.add_argument("--resolution", type=float, default=0.010, help="ticker bucket, s")
    trio.run(main, parser.parse_args())
