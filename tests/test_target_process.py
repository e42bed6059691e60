"""The embedded target in its own process(es): ``run``'s child ``orchestrator serve``.

Rules: loopback only, port 0; a ``fail_after`` guard on every test that runs trio; few
real subprocesses (one test starts two server processes sharing one port, one runs a
short ``run`` end to end).
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import trio

from orchestrator.cli import build_parser, main
from orchestrator.cli.run_setup import UsageError, prepare
from orchestrator.cli.serve import config_from_args
from orchestrator.cli.target_process import (
    CONNECTIONS_PER_PROCESS,
    SERVER_PREFIX,
    EmbeddedTarget,
    TargetError,
    argv_for_run,
    child_argv,
    groundtruth_paths,
    judge_groundtruth,
    serve_target,
)
from orchestrator.mockserver.groundtruth import GroundTruthSink, send_lateness
from orchestrator.supervisor.validity import ValidityLimits, judge_target, merge_validity


def run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def _child_config(args: argparse.Namespace, setup_config: object, gt: Path) -> object:
    argv = child_argv(
        args, setup_config, prefix=SERVER_PREFIX, port=0, reuse_port=False, groundtruth=gt
    )  # type: ignore[arg-type]
    assert argv[1:4] == ["-m", "orchestrator", "serve"]
    return config_from_args(build_parser().parse_args(argv[3:]))


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--seed", "7", "--server-ttfb-ms", "fixed:120", "--server-words", "uniform:3:5"],
        ["--server-stall-ms", "300", "--server-freeze", "2:500", "--server-freeze", "7:250",
         "--server-tool-rule", "weather=>get_weather:{\"city\": \"Oslo\"}",
         "--server-no-tool-name-matching", "--server-ping-interval-s", "5",
         "--server-greeting", "Hello there", "--server-spoken-transcript", "one",
         "--server-drop-rate", "0.1", "--server-session-max-s", "30", "--model", "gpt-x"],
    ],
)  # fmt: skip
def test_the_child_gets_the_config_run_would_serve_in_process(
    extra: list[str], tmp_path: Path
) -> None:
    args = run_args("--out", str(tmp_path / "run"), *extra)
    setup = prepare(args, env={})
    assert setup.server_config is not None and setup.target is not None
    gt = setup.target.groundtruth[0]
    assert gt == tmp_path / "run" / "groundtruth.jsonl"
    child = _child_config(args, setup.server_config, gt)
    assert child == attrs.evolve(setup.server_config, port=0)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"


@pytest.mark.parametrize("name", ["weather_voice.toml", "greeting.toml"])
def test_scenario_hints_reach_the_child(name: str, tmp_path: Path) -> None:
    """Every [server] hint (tool rules; the greeting) reaches the server process."""
    args = run_args(str(EXAMPLES / name), "--out", str(tmp_path / "run"))
    setup = prepare(args, env={})
    assert setup.server_config is not None
    assert setup.server_config.tool_rules or setup.server_config.greeting
    child = _child_config(args, setup.server_config, tmp_path / "gt.jsonl")
    assert child == attrs.evolve(
        setup.server_config, port=0, groundtruth_path=tmp_path / "gt.jsonl"
    )


def test_process_options_are_checked(tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "r")]
    with pytest.raises(UsageError, match="--server-in-process and --server-processes"):
        prepare(run_args(*out, "--server-in-process", "--server-processes", "2"), env={})
    with pytest.raises(UsageError, match="--server-processes"):
        prepare(run_args(*out, "--url", "ws://127.0.0.1:9/v1", "--server-processes", "2"), env={})
    setup = prepare(run_args(*out, "--server-processes", "3"), env={})
    assert setup.target is not None and setup.target.processes == 3
    assert [p.name for p in setup.target.groundtruth] == [
        "groundtruth.jsonl", "groundtruth.1.jsonl", "groundtruth.2.jsonl"
    ]  # fmt: skip
    inproc = prepare(run_args(*out, "--server-in-process"), env={}).target
    assert inproc is not None and inproc.in_process and "in-process" in inproc.name
    assert prepare(run_args("--url", "ws://127.0.0.1:9/v1"), env={}).target is None


def test_groundtruth_paths() -> None:
    assert groundtruth_paths(Path("a/gt.jsonl"), 2) == [Path("a/gt.jsonl"), Path("a/gt.1.jsonl")]


# --------------------------------------------------------------------------- lateness


def _record(anchor: float, late_s: float, kind: str = "answer") -> dict[str, object]:
    first = anchor + 0.3
    return {
        "kind": kind,
        "anchor_time": anchor,
        "created": {"intended": anchor + 0.005, "actual": anchor + 0.005},
        "first_delta": {"intended": first, "actual": first + late_s},
        "done": {"intended": anchor + 2.0, "actual": anchor + 2.0 + late_s / 2},
    }


def test_sink_stamps_send_lateness_and_excuses_a_freeze(tmp_path: Path) -> None:
    path = tmp_path / "gt.jsonl"
    # a freeze from 10.0 to 10.5: a frame planned inside it is due at 10.5
    sink = GroundTruthSink(path, held_until=lambda t: 10.5 if 10.0 <= t < 10.5 else None)
    sink.write(_record(1.0, 0.040))
    frozen = _record(9.8, 0.0)
    frozen["first_delta"] = {"intended": 10.1, "actual": 10.502}
    sink.write(frozen)
    sink.close()
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert [r["send_late_ms"] for r in lines] == [40.0, 2.0]


def test_send_lateness_figures() -> None:
    records = [_record(float(i), 0.001 * i) for i in range(100)]
    records.append(_record(200.0, 0.0, kind="greeting"))
    figures = send_lateness(records)
    assert figures["responses"] == 101
    assert figures["send_late_p99_ms"] == pytest.approx(98.0)
    assert figures["send_late_max_ms"] == pytest.approx(99.0)
    assert figures["ttfb_intended_p99_ms"] == pytest.approx(300.0)
    assert figures["ttfb_actual_p99_ms"] == pytest.approx(398.0)
    assert send_lateness([])["send_late_p99_ms"] is None


def test_judge_target_names_the_target() -> None:
    limits = ValidityLimits(target_send_p99_ms=50.0)
    assert judge_target(50.0, "x", limits).valid
    assert judge_target(None, "x", limits).valid
    verdict = judge_target(182.0, "embedded server (in-process)", limits)
    assert not verdict.valid
    assert verdict.reasons[0].startswith("embedded server (in-process): send lateness p99 182.0")
    merged = merge_validity({"valid": True, "reasons": []}, verdict, None)
    assert merged == {"valid": False, "reasons": verdict.reasons}
    with pytest.raises(ValueError, match="target_send_p99_ms"):
        ValidityLimits(target_send_p99_ms=-1)


def test_judge_groundtruth_reads_only_this_runs_records(tmp_path: Path) -> None:
    path = tmp_path / "gt.jsonl"
    path.write_bytes(orjson.dumps({**_record(0.0, 0.5), "send_late_ms": 500.0}) + b"\n")
    target = EmbeddedTarget(in_process=False, processes=1, groundtruth=[path])
    target.note_offsets()
    sink = GroundTruthSink(path)
    sink.write(_record(1.0, 0.002))
    sink.close()
    with open(path, "ab") as f:
        f.write(b'{"cut off')  # a process killed mid-write
    verdict, figures = judge_groundtruth(target, ValidityLimits())
    assert verdict.valid and figures["responses"] == 1 and figures["mode"] == "process"
    target.offsets = []
    verdict, _ = judge_groundtruth(target, ValidityLimits())
    assert not verdict.valid and "embedded server (own process)" in verdict.reasons[0]


# --------------------------------------------------------------------------- processes


async def test_two_server_processes_share_a_port_and_stop(tmp_path: Path) -> None:
    args = run_args("--out", str(tmp_path / "run"), "--server-processes", "2")
    setup = prepare(args, env={})
    assert setup.server_config is not None and setup.target is not None
    paths = setup.target.groundtruth

    def argv_for(index: int, port: int, reuse: bool) -> list[str]:
        return child_argv(
            args, setup.server_config, prefix=SERVER_PREFIX, port=port, reuse_port=reuse,
            groundtruth=paths[index],
        )  # type: ignore[arg-type]  # fmt: skip

    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            target = await nursery.start(serve_target, argv_for, 2)
            assert target.port > 0 and len(set(target.pids)) == 2
            await target.mark_start()
            for _ in range(4):  # both processes accept on the shared port
                stream = await trio.open_tcp_stream("127.0.0.1", target.port)
                await stream.aclose()
            nursery.cancel_scope.cancel()
    # stopped by the end of their stdin (exit 0), not by a signal
    assert [p.returncode for p in target.processes] == [0, 0]


async def test_a_child_that_dies_before_ready_is_an_error() -> None:
    def argv_for(index: int, port: int, reuse: bool) -> list[str]:
        return [os.sys.executable, "-c", "import sys; sys.exit(3)"]  # type: ignore[attr-defined]

    with trio.fail_after(30):
        with pytest.RaisesGroup(pytest.RaisesExc(TargetError, match="code 3 before"),
                                allow_unwrapped=True, flatten_subgroups=True):  # fmt: skip
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_target, argv_for, 1)


async def test_a_child_that_dies_during_the_run_is_an_error() -> None:
    code = "print('ready port=1 pid=1', flush=True); import sys; sys.stdin.readline()"

    def argv_for(index: int, port: int, reuse: bool) -> list[str]:
        return [os.sys.executable, "-c", code]  # type: ignore[attr-defined]

    with trio.fail_after(30):
        with pytest.RaisesGroup(pytest.RaisesExc(TargetError, match="exited during the run"),
                                allow_unwrapped=True, flatten_subgroups=True):  # fmt: skip
            async with trio.open_nursery() as nursery:
                target = await nursery.start(serve_target, argv_for, 1)
                target.processes[0].send_signal(signal.SIGKILL)
                await trio.sleep_forever()


def test_a_default_run_serves_from_its_own_process(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["run", "--sessions", "2", "--concurrency", "2", "--out", str(out), "--quiet",
            "--speech-ms", "300", "--lead-ms", "0", "--tail-ms", "300",
            "--server-ttfb-ms", "fixed:50", "--server-words", "fixed:2",
            "--server-realtime-factor", "0"]  # fmt: skip
    assert main(argv) == 0
    summary = orjson.loads((out / "summary.json").read_bytes())
    target = summary["run"]["target"]
    assert target["mode"] == "process" and target["responses"] == 2
    assert target["ttfb_intended_p99_ms"] == pytest.approx(50.0)
    assert summary["validity"]["valid"] is True
    # the limit is the run's: 0 ms makes any lateness invalid, naming the target
    assert main([*argv, "--overwrite", "--target-lateness-limit-ms", "0"]) == 0
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["run"]["target"]["responses"] == 2  # this run's records only
    if summary["run"]["target"]["send_late_p99_ms"] > 0:
        assert summary["validity"]["valid"] is False
        assert "embedded server (own process)" in summary["validity"]["reasons"][0]


def _children(pid: int) -> list[int]:
    """The child processes of ``pid``, forked by any of its threads (Linux ``/proc``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue  # the thread ended
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_server_process_never_outlives_the_run(sig: signal.Signals, tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "orchestrator", "run", "--sessions", "200", "--concurrency",
           "2", "--grace-s", "1", "--out", str(out), "--quiet", "--speech-ms", "300",
           "--server-ttfb-ms", "fixed:50", "--server-realtime-factor", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        results = out / "results.jsonl"
        while b'"kind":"turn"' not in (results.read_bytes() if results.exists() else b""):
            assert time.monotonic() < deadline, "no turn within 60 s"
            assert proc.poll() is None
            time.sleep(0.05)  # polling for evidence that the run is going
        (server,) = _children(proc.pid)
        assert _alive(server)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _alive(server):
            assert time.monotonic() < deadline, f"server {server} outlived the run ({sig.name})"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
        summary = orjson.loads((out / "summary.json").read_bytes())
        assert summary["run"]["target"]["mode"] == "process"


async def test_warm_up_answers_one_turn_and_writes_no_ground_truth(tmp_path: Path) -> None:
    from orchestrator.cli.serve import warm_up
    from orchestrator.mockserver import ServerConfig

    gt = tmp_path / "gt.jsonl"
    with trio.fail_after(15):
        await warm_up(ServerConfig(port=0, groundtruth_path=gt, greeting="hi"))
    assert not gt.exists()


def test_serve_runs_under_the_gc_regime_of_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` freezes its start-up heap and tunes the collector while it serves (a full
    collection of that heap held every frame due during its 40-65 ms pause), and puts the
    thresholds back afterwards."""
    import gc

    from orchestrator.supervisor.gc_regime import GC_THRESHOLDS

    before = gc.get_threshold()
    seen: dict[str, object] = {}
    real_run = trio.run
    collecting: list[trio.Event] = []

    class Collector:  # records what the server's full collector would count
        def __init__(self, progress: Any) -> None:
            self.progress = progress

        async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            seen["progress"] = self.progress()
            task_status.started()
            collecting[0].set()

    async def serve_briefly(main_fn: Any) -> None:
        collecting.append(trio.Event())
        with trio.fail_after(10):  # serve until the collector started, then stop
            async with trio.open_nursery() as nursery:
                nursery.start_soon(main_fn)
                await collecting[0].wait()
                nursery.cancel_scope.cancel()

    def fake_run(main_fn: Any) -> None:
        seen["threshold"] = gc.get_threshold()
        seen["frozen"] = gc.get_freeze_count()
        real_run(serve_briefly, main_fn)

    from orchestrator.mockserver import MockServer as RealMockServer

    def mock_server(*args: Any, **kwargs: Any) -> RealMockServer:
        seen["server"] = server = RealMockServer(*args, **kwargs)
        return server

    monkeypatch.setattr("orchestrator.cli.serve.trio.run", fake_run)
    monkeypatch.setattr("orchestrator.cli.serve.FullCollector", Collector)
    monkeypatch.setattr("orchestrator.cli.serve.MockServer", mock_server)
    argv = ["serve", "--host", "127.0.0.1", "--port", "0", "--no-hearing", "--log-level", "ERROR"]
    assert main(argv) == 0
    assert seen["threshold"] == GC_THRESHOLDS
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 0
    assert seen["progress"] == (0, 0)  # (connections ended, connections open)
    # nobody reads a server process's ground truth in memory: it keeps none (flat memory)
    server = seen["server"]
    assert isinstance(server, RealMockServer) and server.groundtruth.keep == 0
    assert gc.get_threshold() == before


@pytest.mark.parametrize(
    ("argv", "cpus", "want"),
    [
        (["--concurrency", "50"], 16, 1),
        (["--concurrency", "250"], 16, 5),
        (["--concurrency", "250"], 2, 1),  # never more than the cores beside the generator's
        (["--concurrency", "2000"], 8, 7),
        (["--concurrency", "400", "--sessions", "60"], 16, 2),  # never more than it starts
        (["--rate", "20", "--duration", "5", "--max-concurrency", "300"], 16, 6),
        (["--rate", "20", "--duration", "5"], 16, 1),  # uncapped: the peak is unknown
    ],
)
def test_the_embedded_target_gets_a_server_process_per_50_sessions(
    argv: list[str], cpus: int, want: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orchestrator.cli.run_setup.usable_cpus", lambda: cpus)
    monkeypatch.setattr("orchestrator.cli.run_setup.sys.platform", "linux")
    setup = prepare(run_args(*argv, "--out", str(tmp_path / "out")))
    assert setup.target is not None and setup.target.processes == want
    assert len(setup.target.groundtruth) == want
    assert setup.config["server"]["process"] == want


def test_server_processes_and_in_process_override_the_sizing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orchestrator.cli.run_setup.usable_cpus", lambda: 16)
    out = str(tmp_path / "out")
    setup = prepare(run_args("--concurrency", "400", "--server-processes", "1", "--out", out))
    assert setup.target is not None and setup.target.processes == 1
    setup = prepare(run_args("--concurrency", "400", "--server-in-process", "--out", out))
    assert setup.target is not None and setup.target.in_process and setup.target.processes == 1


def test_each_server_process_of_a_run_numbers_its_connections_apart(tmp_path: Path) -> None:
    """Server processes key their random streams by connection index: numbered from 0 in
    each, connection k of every process would draw the same latencies and faults. The seed
    stays the run's (tool results depend on it alone)."""
    args = run_args("--server-processes", "3", "--seed", "7", "--out", str(tmp_path / "o"))
    setup = prepare(args)
    argv_for = argv_for_run(setup, args)
    argvs = [argv_for(i, 0, True) for i in range(3)]
    assert [a[a.index("--seed") + 1] for a in argvs] == ["7", "7", "7"]
    firsts = [int(a[a.index("--first-connection") + 1]) for a in argvs]
    assert firsts == [0, CONNECTIONS_PER_PROCESS, 2 * CONNECTIONS_PER_PROCESS]


async def test_a_server_numbers_its_connections_from_its_first(tmp_path: Path) -> None:
    from orchestrator.mockserver import MockServer, ServerConfig
    from orchestrator.transport import Target, connect_stream

    server = MockServer(ServerConfig(port=0), first_connection=CONNECTIONS_PER_PROCESS)
    target = Target(url="ws://127.0.0.1/v1/realtime?model=gpt-realtime")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            client, srv = trio.testing.memory_stream_pair()
            nursery.start_soon(server.serve_stream, srv)
            async with connect_stream(client, target) as conn:
                await conn.receive()  # session.created: the connection is being served
                assert server._next_index == CONNECTIONS_PER_PROCESS + 1


@pytest.mark.parametrize(
    ("workers", "concurrency", "cpus", "want"),
    [
        (2, 30, 2, 1),
        (4, 1200, 4, 2),  # workers fill the machine: one per two of them still
        (16, 1200, 16, 8),  # --workers auto
        (4, 400, 16, 8),  # spare cores: by the load
    ],
)
def test_a_fleet_gets_server_processes_by_load_and_at_least_one_per_two_workers(
    workers: int,
    concurrency: int,
    cpus: int,
    want: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.cli import run_fleet

    monkeypatch.setattr("orchestrator.cli.run_setup.sys.platform", "linux")
    monkeypatch.setattr(run_fleet, "usable_cpus", lambda: cpus)
    args = run_args("--concurrency", str(concurrency), "--out", str(tmp_path / "o"))
    setup = prepare(args)
    run_fleet._scale_target(setup, args, workers)
    assert setup.target is not None and setup.target.processes == want
    assert len(setup.target.groundtruth) == want
