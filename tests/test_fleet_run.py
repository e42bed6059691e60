"""``orchestrator run --workers`` / ``--ray`` end to end: real worker processes (or Ray
actors) against the embedded server on loopback.

Kept few and small (this machine has 2 cores): user audio sent 4x faster than real time,
answers streamed as fast as possible; every test has a ``fail_after`` guard or a bounded
run.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from orchestrator.cli import build_parser, main
from orchestrator.cli.run_fleet import RunSpecs
from orchestrator.cli.run_setup import build_target, prepare
from orchestrator.fleet import Fleet, FleetResults, ProcessWorker, WorkerJob, WorkOrder, dumps_order
from orchestrator.metrics import read_results
from orchestrator.mockserver import MockServer, ServerConfig
from orchestrator.mockserver.latency import Distribution, LatencyModel
from orchestrator.supervisor import read_run_meta

QUICK = [
    "--speech-ms", "400", "--lead-ms", "100", "--tail-ms", "100", "--realtime-factor", "4",
    "--quiet",
]  # fmt: skip
SERVER_QUICK = ["--server-realtime-factor", "0", "--server-ttfb-ms", "50"]


def _orchestrator(argv: list[str], timeout_s: float = 180.0) -> int:
    """Exit code of ``orchestrator ARGV`` in its own process, killed (and the test
    failed by ``TimeoutExpired``) if it runs past ``timeout_s``: a fleet run never hangs."""
    cmd = [sys.executable, "-m", "orchestrator", *argv]
    return subprocess.run(cmd, timeout=timeout_s, stdout=subprocess.DEVNULL).returncode


def _records(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_two_workers_write_one_results_file_of_all_the_sessions(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["run", "--workers", "2", "--sessions", "60", "--concurrency", "30", "--out", str(out)]
    assert _orchestrator([*argv, *QUICK, *SERVER_QUICK]) == 0
    results = read_results(out / "results.jsonl")
    assert sorted(s.session_id for s in results.sessions) == [f"s{i:06d}" for i in range(60)]
    records = _records(out / "results.jsonl")
    by_worker = {r["worker"] for r in records if r["kind"] in ("session", "turn")}
    assert by_worker == {0, 1}
    end, target = records[-2:]  # the embedded target's verdict follows the run's end
    assert end["kind"] == "run_end" and [w["sessions"] for w in end["workers"]] == [30, 30]
    assert target["kind"] == "target" and "send_late_p99_ms" in target["figures"]
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert sum(summary["sessions"]["by_status"].values()) == 60
    assert summary["run"]["workers"] == 2
    assert summary["config"]["server"]["process"] == 1  # one server process per two workers


def test_open_model_workers_start_the_planned_arrivals(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["run", "--workers", "2", "--rate", "10", "--duration", "6", "--out", str(out)]
    assert _orchestrator([*argv, *QUICK, *SERVER_QUICK]) == 0
    sessions = read_results(out / "results.jsonl").sessions
    assert 58 <= len(sessions) <= 62
    planned = sorted(s.planned_start_s for s in sessions)
    # arrival k at k / 10 s on the shared epoch, whichever worker started it
    assert planned == pytest.approx([k / 10 for k in range(len(sessions))], abs=0.005)
    meta = read_run_meta(out / "results.jsonl")
    late = sum(1 for s in sessions if (s.late_start_ms or 0) > 50)
    assert meta.late_starts == late  # late starts counted as in a single run


def test_fleet_options_that_cannot_work_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--workers", "2", "--server-in-process", "--quiet"]) == 1
    assert "--server-in-process" in capsys.readouterr().err
    rate = ["--threshold", "session_error_rate<0.1:abort", "--restart", "transient"]
    assert main(["run", "--workers", "2", *rate, "--quiet"]) == 1
    assert "needs --restart temporary (not transient)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--workers", "some"])
    assert "'auto'" in capsys.readouterr().err


def test_an_abort_threshold_drains_the_fleet_whose_metrics_are_served(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [
        "run", "--workers", "2", "--sessions", "400", "--concurrency", "10", "--out", str(out),
        "--threshold", "ttfb_ms.p50<0.001:abort", "--grace-s", "1", "--metrics-port", "0",
        "--progress", "off", *[a for a in QUICK if a != "--quiet"], *SERVER_QUICK,
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "orchestrator", *argv]
    done = subprocess.run(cmd, timeout=60, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr  # an abort's exit code
    assert re.search(r"^metrics: http://127\.0\.0\.1:\d+/metrics$", done.stderr, re.M)
    assert "run aborted: threshold 'ttfb_ms.p50<0.001:abort' failed" in done.stderr
    records = _records(out / "results.jsonl")
    (abort,) = [r for r in records if r["kind"] == "run_abort"]
    assert abort["threshold"] == "ttfb_ms.p50<0.001:abort" and abort["metric"] == "ttfb_ms"
    (end,) = [r for r in records if r["kind"] == "run_end"]
    assert end["interrupted"] is False  # aborted is not interrupted (a stop signal)
    assert len(read_results(out / "results.jsonl").sessions) < 400  # drained early
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["run"]["aborted"]["threshold"] == abort["threshold"]


def test_ray_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["run", "--ray", "--sessions", "2", "--quiet"]) == 1
    assert "pip install 'realtime-orchestrator[ray]'" in capsys.readouterr().err


FAST = LatencyModel(
    response_created_ms=Distribution.parse("fixed:2"),
    first_delta_ms=Distribution.parse("fixed:20"),
    response_words=Distribution.parse("fixed:5"),
    realtime_factor=0.0,
)


class _Watched(FleetResults):
    """The results file; ``seen`` is set once worker 1 wrote ``count`` records of
    ``kind``."""

    def __init__(self, path: Path, kind: str = "session", count: int = 2) -> None:
        super().__init__(path)
        self.seen = trio.Event()
        self._prefix = b'{"worker":1,"kind":"%s"' % kind.encode()
        self._left = count

    def write_line(self, line: bytes) -> None:
        super().write_line(line)
        if line.startswith(self._prefix):
            self._left -= 1
            if self._left == 0:
                self.seen.set()


def _job(port: int, *run_args: str) -> WorkerJob:
    """The job of ``orchestrator run --url ws://127.0.0.1:PORT/v1 RUN_ARGS`` (quick)."""
    args = build_parser().parse_args(
        ["run", "--url", f"ws://127.0.0.1:{port}/v1", *run_args, *QUICK]
    )
    setup = prepare(args)
    setup.conversation.prepare()
    return WorkerJob(
        model=setup.model,
        spec=RunSpecs.of(setup, build_target(setup.target_kwargs), args),
        driver=setup.conversation,
        restart=setup.restart,
    )


def _two_worker_orders(port: int, linger_ms: int = 200) -> list[bytes]:
    """The orders of two workers sharing 200 sessions, 4 at a time, against ``port``;
    each session stays ``linger_ms`` after its answer."""
    job = _job(port, "--sessions", "200", "--concurrency", "4", "--linger-ms", str(linger_ms))
    return [dumps_order(WorkOrder(job=job, worker=i, workers=2)) for i in range(2)]


async def _signal_worker_1_mid_run(
    results: Path, signum: int, **fleet_kwargs: Any
) -> tuple[Fleet, list[ProcessWorker]]:
    """Run two real workers against an embedded server; send worker 1 ``signum`` once the
    first record is in the file; return the fleet (ended) and its links."""
    sink = _Watched(results)
    links = [ProcessWorker(0), ProcessWorker(1)]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(MockServer(ServerConfig(port=0, latency=FAST)).serve)
            orders = _two_worker_orders(port)
            fleet = Fleet(links, sink, grace_s=5.0, quiet=True, **fleet_kwargs)

            async def signal_worker_1() -> None:
                await sink.seen.wait()
                assert links[1].process is not None
                links[1].process.send_signal(signum)

            nursery.start_soon(signal_worker_1)
            await fleet.run(orders)
            nursery.cancel_scope.cancel()
    sink.close()
    return fleet, links


async def test_a_killed_worker_ends_the_run_named_and_its_sessions_kept(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    fleet, links = await _signal_worker_1_mid_run(results, signal.SIGKILL)
    (death,) = fleet.deaths
    assert death.startswith(f"{links[1].name} died (killed by SIGKILL)")
    kept = read_results(results).sessions
    from_1 = [r for r in _records(results) if r.get("worker") == 1 and r["kind"] == "session"]
    assert len(from_1) >= 2 and f"its {len(from_1)} finished sessions are kept" in death
    assert len({s.session_id for s in kept}) == len(kept) < 200  # the run ended early
    meta = read_run_meta(results)
    assert meta.ended and meta.validity is not None and not meta.validity["valid"]
    assert meta.validity["reasons"][0] == death


async def test_a_stopped_worker_is_found_hung_and_the_run_ends_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.fleet import local

    monkeypatch.setattr(local, "STOP_TIMEOUT_S", 0.5)  # SIGTERM, then SIGKILL, soon
    results = tmp_path / "results.jsonl"
    # SIGSTOP: alive and silent, hung
    fleet, links = await _signal_worker_1_mid_run(
        results, signal.SIGSTOP, silence_timeout_s=6.0, stop_timeout_s=1.0
    )
    # (only worker 1 is judged: the live one sends its status twice a second, but on a
    # busy machine this test does not lean on its 6 s of real silence never happening)
    (lost,) = [d for d in fleet.deaths if d.startswith(links[1].name)]
    assert lost.startswith(f"{links[1].name} hung (no message for 6 s) and was stopped")
    assert "(killed by SIGKILL): its" in lost
    meta = read_run_meta(results)
    assert meta.ended and meta.validity is not None and lost in meta.validity["reasons"]
    assert len(read_results(results).sessions) < 200  # the other worker was drained


def test_ray_actors_run_the_same_fleet(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "out"
    argv = ["run", "--ray", "--sessions", "40", "--concurrency", "20", "--out", str(out)]
    cmd = [sys.executable, "-m", "orchestrator", *argv, *QUICK, *SERVER_QUICK]
    done = subprocess.run(
        cmd, timeout=180.0, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert done.returncode == 0, done.stderr
    # --quiet (in QUICK): none of Ray's own notices (``2026-... WARNING file.py:85 -- Token
    # authentication is enabled ...``) on stderr
    assert not re.search(r"\b(INFO|WARNING)\b \S+:\d+ -- ", done.stderr), done.stderr
    results = read_results(out / "results.jsonl")
    assert sorted(s.session_id for s in results.sessions) == [f"s{i:06d}" for i in range(40)]
    (end,) = [r for r in _records(out / "results.jsonl") if r["kind"] == "run_end"]
    assert len(end["workers"]) >= 1
    assert all("Ray actor on" in w["name"] for w in end["workers"])
    assert sum(w["sessions"] for w in end["workers"]) == 40


class _Lines:
    """A worker's output, in memory."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, line: bytes) -> None:
        self.lines.append(line)

    def messages(self, kind: str) -> list[dict[str, object]]:
        return [m for m in map(orjson.loads, self.lines) if m.get("fleet") == kind]


async def test_a_go_after_the_epoch_makes_the_due_starts_late_not_shifted() -> None:
    from orchestrator.fleet.wire import Command
    from orchestrator.fleet.worker import run_worker

    out = _Lines()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(MockServer(ServerConfig(port=0, latency=FAST)).serve)
            job = _job(port, "--rate", "20", "--duration", "1")
            send, receive = trio.open_memory_channel[Command](8)
            # the go arrives 0.5 s after its epoch: the first ~10 starts are due already
            send.send_nowait(Command("go", time.time() - 0.5))
            with send:
                await run_worker(WorkOrder(job=job, worker=0, workers=1), out, receive)
            nursery.cancel_scope.cancel()
    assert out.messages("ready")
    (end,) = out.messages("end")
    sessions = [m for m in map(orjson.loads, out.lines) if m.get("kind") == "session"]
    planned = sorted(float(s["planned_start_s"]) for s in sessions)  # type: ignore[arg-type]
    assert planned and planned[0] < 0.05  # the plan kept its epoch: not shifted to the go
    late_ms = [float(s.get("late_start_ms") or 0) for s in sessions]  # type: ignore[arg-type]
    # a session records its lateness when it starts, a little after the worker judged it
    # late (> 50 ms), so under load one just over 50 ms may not have been counted
    assert sum(ms > 100 for ms in late_ms) <= end["late_starts"] <= sum(ms > 50 for ms in late_ms)
    assert end["late_starts"] >= 8


async def test_a_cancelled_fleet_keeps_the_records_of_its_cancelled_sessions(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results.jsonl"
    # cancelled while worker 1's third session lingers 2 s after its answer: both workers
    # have sessions running however late the cancel arrives under load
    sink = _Watched(results, kind="turn", count=3)
    links = [ProcessWorker(0), ProcessWorker(1)]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(MockServer(ServerConfig(port=0, latency=FAST)).serve)
            orders = _two_worker_orders(port, linger_ms=2000)
            fleet = Fleet(links, sink, grace_s=5.0, quiet=True)
            with trio.CancelScope() as run_scope:

                async def cancel_the_run() -> None:
                    await sink.seen.wait()
                    run_scope.cancel()

                nursery.start_soon(cancel_the_run)
                await fleet.run(orders)
            nursery.cancel_scope.cancel()
    sink.close()
    assert run_scope.cancelled_caught
    records = _records(results)
    cancelled = [r for r in records if r["kind"] == "session" and r["status"] == "cancelled"]
    assert {r["worker"] for r in cancelled} == {0, 1}  # both workers' running sessions
    meta = read_run_meta(results)
    assert meta.ended and records[-1]["kind"] == "run_end"
    assert records[-1]["interrupted"] is True
    assert fleet.deaths == []  # each ended by itself after its input ended
