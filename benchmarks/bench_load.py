"""Scale check: N concurrent built-in conversations against the embedded server running in
a separate process (as a real target would be), through the same code path as
``orchestrator run --url``.

Usage::

    python benchmarks/bench_load.py                    # 500 concurrent sessions
    python benchmarks/bench_load.py --sessions 200 --ramp-up 2 --out /tmp/bench

It starts ``python -m orchestrator serve --port 0`` (loopback), runs
``orchestrator run --url ws://127.0.0.1:PORT/v1 --sessions N --concurrency N`` in this
process, and prints one table: wall time, sessions by status, the latency percentiles, and
the generator's self-monitoring (event-loop lag, pacer lateness, CPU, validity). Exit code
1 when any session failed or the run was judged invalid.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from orchestrator.cli import main as cli_main
from orchestrator.supervisor import read_run_meta

_URL = re.compile(rb"ws://127\.0\.0\.1:(\d+)/v1/realtime")


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    """The mock server in its own process; returns it and its port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = _URL.search(line)
    if m is None:
        proc.kill()
        raise SystemExit(f"the mock server did not start: {line!r}")
    return proc, int(m.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=None, help="default: --sessions")
    parser.add_argument("--ramp-up", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    concurrency = args.concurrency or args.sessions
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_load_"))
    server, port = start_server()
    try:
        t = time.perf_counter()
        code = cli_main(
            [
                "run",
                "--url", f"ws://127.0.0.1:{port}/v1",
                "--sessions", str(args.sessions),
                "--concurrency", str(concurrency),
                "--ramp-up", str(args.ramp_up),
                "--out", str(out),
                "--progress", "plain",
                "--quiet",
            ]
        )  # fmt: skip
        wall = time.perf_counter() - t
    finally:
        server.terminate()
        server.wait(timeout=10)
    summary = orjson.loads((out / "summary.json").read_bytes())
    monitor = read_run_meta(out / "results.jsonl").monitor or {}
    totals, metrics = summary["totals"], summary["metrics"]
    print(
        f"bench_load: {args.sessions} sessions, concurrency {concurrency}, "
        f"ramp-up {args.ramp_up:g} s, server in a separate process (exit code {code})"
    )
    print(f"  wall time            {wall:8.1f} s")
    print(
        f"  sessions             {totals['sessions_total']} total, "
        f"{totals['sessions_completed']} completed, {totals['sessions_failed']} failed, "
        f"{totals['sessions_cancelled']} cancelled; turns failed {totals['turns_failed']}"
    )
    print(f"  {'metric':20} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}  (ms)")
    for name in (
        "connect_ms",
        "session_ready_ms",
        "voice_to_voice_ms",
        "vad_delay_ms",
        "ttfb_ms",
        "late_start_ms",
        "pacer_lateness_p99_ms",
    ):
        s = metrics[name]
        if s["count"]:
            print(f"  {name:20} {s['p50']:8.1f} {s['p95']:8.1f} {s['p99']:8.1f} {s['max']:8.1f}")

    def fmt(key: str) -> str:
        value = monitor.get(key)
        return "-" if value is None else f"{value:.1f}"

    print(
        f"  event-loop lag       p50 {fmt('lag_p50_ms')} p99 {fmt('lag_p99_ms')} "
        f"max {fmt('lag_max_ms')} ms"
    )
    print(
        f"  pacer wake lateness  p50 {fmt('pacer_p50_ms')} p99 {fmt('pacer_p99_ms')} "
        f"max {fmt('pacer_max_ms')} ms over {monitor.get('pacer_frames', 0)} frames; "
        f"{monitor.get('ticker_wakes', 0)} wakes in {monitor.get('ticker_ticks', 0)} ticks"
    )
    print(
        f"  client CPU           mean {fmt('cpu_percent_mean')}% max {fmt('cpu_percent_max')}% "
        "of one core"
    )
    validity = summary["validity"]
    print(f"  valid                {validity['valid']} {'; '.join(validity['reasons'])}")
    print(f"  output               {out}")
    return 0 if totals["sessions_failed"] == 0 and validity["valid"] and code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
