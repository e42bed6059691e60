"""Scale-out check: conversations per second, CPU per conversation and pacer p99 for 1,
2, ... local workers (``orchestrator run --workers N``), with the scaling efficiency.

Usage::

    python benchmarks/bench_scale.py                         # 1 .. cores workers
    python benchmarks/bench_scale.py --workers 1 2 4 --per-worker 100 --duration 20

For each N it runs ``orchestrator run --workers N --concurrency N*PER --duration D`` (the
built-in conversation, real-time speech) as a subprocess against the embedded server with
``--server-processes`` processes (default: one per worker, so the server is not what is
measured), and prints one row per N:

* ``conv/s``: conversations completed per second of the run;
* ``gen CPU ms/conv``: the workers' CPU time (their own monitors: mean CPU % x run time)
  per conversation, and ``all CPU ms/conv`` with the coordinator and the server included
  (this process's children's CPU time);
* ``pacer p99`` and ``lag p99``: the worst worker's (what validity judges);
* ``efficiency``: ``conv/s(N) / (N x conv/s(1))``.

What it should show: on a machine with at least N + server-processes + 1 free cores, the
efficiency stays near 1 (each worker is an independent supervisor; the coordinator only
appends lines, ~0.05 ms of CPU per record) and generator CPU per conversation stays flat;
measured by hand on 16 cores, six processes scaled linearly. On a machine with fewer
cores than workers + server processes (2 cores: 2 workers and 2 server processes share
them) the workers compete with the server for CPU, so the efficiency drops below 1 and
the pacer p99 rises: that is the machine, not the fleet, and the validity line says so.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(
    workers: int, per_worker: int, duration: float, servers: int, out: Path
) -> dict[str, Any]:
    """One ``orchestrator run --workers N``; returns its figures."""
    cmd = [
        sys.executable, "-m", "orchestrator", "run", "--workers", str(workers),
        "--concurrency", str(workers * per_worker), "--duration", str(duration),
        "--ramp-up", "2", "--server-processes", str(servers), "--out", str(out), "--quiet",
    ]  # fmt: skip
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    code = subprocess.run(cmd, check=False).returncode
    wall, cpu = time.perf_counter() - t0, _children_cpu_s() - cpu0
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {code}")
    summary = orjson.loads((out / "summary.json").read_bytes())
    lines = (out / "results.jsonl").read_bytes().splitlines()
    # the run's end (the embedded target's verdict comes after it)
    end = next(r for r in map(orjson.loads, reversed(lines)) if r.get("kind") == "run_end")
    completed = summary["sessions"]["by_status"].get("completed", 0)
    run_s = float(end["t_s"])
    monitor = end.get("monitor") or {}
    # one worker runs in the CLI's own process (no fleet): its monitor is the run's
    monitors = [w.get("monitor") or {} for w in end.get("workers", ())] or [monitor]
    gen_cpu_s = sum(m.get("cpu_percent_mean", 0.0) / 100.0 * run_s for m in monitors)
    return {
        "workers": workers,
        "completed": completed,
        "run_s": run_s,
        "wall_s": wall,
        "conv_per_s": completed / run_s if run_s else 0.0,
        "gen_cpu_ms": 1000.0 * gen_cpu_s / completed if completed else float("nan"),
        "all_cpu_ms": 1000.0 * cpu / completed if completed else float("nan"),
        "pacer_p99_ms": monitor.get("pacer_p99_ms"),
        "lag_p99_ms": monitor.get("lag_p99_ms"),
        "coordinator_cpu_s": monitor.get("coordinator_cpu_s"),
        "valid": summary.get("validity", {}).get("valid"),
    }


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = os.cpu_count() or 1
    parser.add_argument("--workers", type=int, nargs="+", default=list(range(1, cores + 1)))
    parser.add_argument("--per-worker", type=int, default=40, help="concurrent sessions a worker")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of starts")
    parser.add_argument("--server-processes", type=int, default=None, help="default: N")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.workers:
            servers = args.server_processes or n
            rows.append(run_once(n, args.per_worker, args.duration, servers, Path(tmp) / f"w{n}"))
    base = next((r["conv_per_s"] for r in rows if r["workers"] == 1), None)
    print(
        f"{'workers':>7} {'conv':>6} {'conv/s':>7} {'gen CPU ms/conv':>15} "
        f"{'all CPU ms/conv':>15} {'pacer p99':>9} {'lag p99':>8} {'coord CPU s':>11} "
        f"{'efficiency':>10} valid"
    )
    for r in rows:
        eff = "-" if not base else f"{r['conv_per_s'] / (r['workers'] * base):.2f}"
        print(
            f"{r['workers']:>7} {r['completed']:>6} {r['conv_per_s']:>7.1f} "
            f"{r['gen_cpu_ms']:>15.1f} {r['all_cpu_ms']:>15.1f} {_ms(r['pacer_p99_ms']):>9} "
            f"{_ms(r['lag_p99_ms']):>8} {_ms(r['coordinator_cpu_s']):>11} {eff:>10} {r['valid']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
