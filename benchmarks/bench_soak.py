"""Soak check: do the load generator's and the embedded server's memory stay flat over a
long open-model run?

Usage::

    python benchmarks/bench_soak.py                          # 20 sessions/s for 120 s
    python benchmarks/bench_soak.py --rate 20 --duration 600 --sample-s 5
    python benchmarks/bench_soak.py --rate 20 --duration 180 -- --poisson

It starts the embedded server in its own process (``orchestrator serve --port 0`` on
loopback, :func:`bench_load.start_server`), then the generator as a second process,
``python -m orchestrator run --url ws://127.0.0.1:PORT/v1 --rate R --duration S``
(arguments after ``--`` are passed on to it), and samples the generator's resident set
size (``VmRSS`` of ``/proc/PID/status``), and the server's, every ``--sample-s`` seconds
until it exits.

It prints both RSS over time, then each one's growth in MB/min as the slope of a least-squares line
through the samples taken after ``--warmup-s`` (default 60 s: the first minute holds the
ramp to steady concurrency and the allocator's warm-up), and the run's own figures (sessions
by status, validity, loop lag, garbage-collection pauses). It is a report: growth alone
never makes it fail. Exit code 1 only when the run could not be done (the server did not
start, the generator exited non-zero or wrote no summary).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from bench_load import start_server  # benchmarks/ is sys.path[0] when run as a script

from orchestrator.supervisor import read_run_meta

REPO = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float | None:
    """The resident set size of process ``pid`` in MB (``None`` once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fp:
            for line in fp:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def growth_mb_per_min(samples: list[tuple[float, float]], warmup_s: float) -> float | None:
    """Slope (MB/min) of the least-squares line through the ``(t_s, rss_mb)`` samples taken
    at or after ``warmup_s``; ``None`` with fewer than 3 such samples."""
    late = [(t, m) for t, m in samples if t >= warmup_s]
    if len(late) < 3:
        return None
    t = np.array([s[0] for s in late]) / 60.0
    m = np.array([s[1] for s in late])
    slope, _ = np.polyfit(t, m, 1)
    return float(slope)


def _print_growth(who: str, samples: list[tuple[float, float]], warmup_s: float) -> None:
    """RSS first / after the warm-up / last / peak of ``samples`` and the growth after it."""
    if samples:
        first_late = next((m for t, m in samples if t >= warmup_s), None)
        print(
            f"  {who} RSS {'':<{12 - len(who)}}first {samples[0][1]:.1f} MB, "
            f"at {warmup_s:g} s {first_late if first_late is None else round(first_late, 1)}"
            f" MB, last {samples[-1][1]:.1f} MB, peak {max(m for _, m in samples):.1f} MB"
        )
    slope = growth_mb_per_min(samples, warmup_s)
    print(
        f"  {who} growth after {warmup_s:g} s  "
        + ("- (too few samples)" if slope is None else f"{slope:.2f} MB/min (linear fit)")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="sessions/s (default 20)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling interval")
    parser.add_argument(
        "--warmup-s", type=float, default=60.0, help="samples before this are not fitted"
    )
    parser.add_argument("--out", default=None, help="run output directory (default: a temp dir)")
    parser.add_argument("run_args", nargs="*", help="after --: more 'orchestrator run' options")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_soak_"))
    server, port = start_server()
    try:
        cmd = [
            sys.executable, "-m", "orchestrator", "run",
            "--url", f"ws://127.0.0.1:{port}/v1",
            "--rate", f"{args.rate:g}", "--duration", f"{args.duration:g}",
            "--out", str(out), "--overwrite", "--quiet",
            *args.run_args,
        ]  # fmt: skip
        t0 = time.monotonic()
        gen = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        samples: list[tuple[float, float]] = []
        n = 0
        print(f"bench_soak: generator pid {gen.pid}; RSS every {args.sample_s:g} s")
        print(f"  {'t (s)':>7} {'RSS (MB)':>9} {'server RSS (MB)':>15}")
        server_samples: list[tuple[float, float]] = []
        while gen.poll() is None:
            n += 1
            time.sleep(max(0.0, t0 + n * args.sample_s - time.monotonic()))
            mb = rss_mb(gen.pid)
            if mb is None or gen.poll() is not None:
                break
            t = time.monotonic() - t0
            samples.append((t, mb))
            server_mb = rss_mb(server.pid)
            if server_mb is not None:
                server_samples.append((t, server_mb))
            shown = "-" if server_mb is None else f"{server_mb:.1f}"
            print(f"  {t:7.1f} {mb:9.1f} {shown:>15}", flush=True)
        code = gen.wait()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"bench_soak: rate {args.rate:g}/s for {args.duration:g} s, generator exit code {code}")
    for who, series in (("generator", samples), ("server", server_samples)):
        _print_growth(who, series, args.warmup_s)
    summary_path = out / "summary.json"
    if code != 0 or not summary_path.exists():
        print(f"  the run failed (exit code {code}); output in {out}")
        return 1
    summary = orjson.loads(summary_path.read_bytes())
    monitor = read_run_meta(out / "results.jsonl").monitor or {}
    totals = summary["totals"]
    print(
        f"  sessions             {totals['sessions_total']} total, "
        f"{totals['sessions_completed']} completed, {totals['sessions_failed']} failed, "
        f"{totals['sessions_cancelled']} cancelled"
    )

    def fmt(key: str) -> str:
        value = monitor.get(key)
        return "-" if value is None else f"{value:.1f}"

    print(
        f"  event-loop lag       p50 {fmt('lag_p50_ms')} p99 {fmt('lag_p99_ms')} "
        f"max {fmt('lag_max_ms')} ms; CPU mean {fmt('cpu_percent_mean')}%"
    )
    print(
        f"  pacer lateness       p50 {fmt('pacer_p50_ms')} p99 {fmt('pacer_p99_ms')} "
        f"max {fmt('pacer_max_ms')} ms over {monitor.get('pacer_frames', 0)} frames"
    )
    if "gc_collections" in monitor:
        print(
            f"  gc pauses            {monitor['gc_collections']} collections "
            f"({monitor.get('gc_full_collections', 0)} full), p99 {fmt('gc_pause_p99_ms')} "
            f"max {fmt('gc_pause_max_ms')} ms, total {fmt('gc_pause_total_ms')} ms; "
            f"{monitor.get('gc_collected', 0)} objects freed"
        )
    validity = summary["validity"]
    print(f"  valid                {validity['valid']} {'; '.join(validity['reasons'])}")
    print(f"  output               {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
