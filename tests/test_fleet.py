"""The fleet layer without processes: shares of the plan, the line protocol, shipping a
job by content, merging the workers' figures."""

from __future__ import annotations

import argparse
import logging
import math
import random
import signal
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import orjson
import pytest
import trio

from orchestrator.audio.voices.cache import VoiceCache
from orchestrator.cli.run_fleet import workers_wanted
from orchestrator.fleet.coordinator import (
    SILENCE_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Fleet,
    FleetError,
    FleetResults,
)
from orchestrator.fleet.job import JobError, WorkerJob, WorkOrder, dumps_order, loads_order
from orchestrator.fleet.local import describe_exit
from orchestrator.fleet.merge import (
    merge_monitor,
    merge_snapshots,
    snapshot_from_dict,
    worker_validity,
)
from orchestrator.fleet.ray_workers import RayWorker, ray_cluster
from orchestrator.fleet.wire import (
    Command,
    QueueWriter,
    StreamSink,
    WireError,
    command_line,
    error_message,
    is_record,
    message,
    parse_command,
    parse_message,
)
from orchestrator.fleet.worker import _only_broken_pipes
from orchestrator.metrics import SessionResult, read_results
from orchestrator.protocol import Dialect
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import (
    ClosedModel,
    OpenModel,
    PlanError,
    RestartPolicy,
    read_run_meta,
)
from orchestrator.supervisor.plan import (
    ClosedShare,
    OpenShare,
    fleet_size,
    run_index,
    share_model,
)
from orchestrator.supervisor.snapshot import SupervisorSnapshot
from orchestrator.supervisor.validity import ValidityLimits
from orchestrator.transport import Target

SPEC = SessionSpec(target=Target(url="ws://127.0.0.1/v1/realtime", dialect=Dialect.GA))

# ----------------------------------------------------------------------------- shares


@pytest.mark.parametrize(
    "model",
    [
        OpenModel(rate=10, duration_s=6),
        OpenModel(rate=5, duration_s=10, rate_to=40, ramp_s=4),
        OpenModel(rate=20, duration_s=5, rate_to=2, poisson=True, seed=7),
        OpenModel(rate=50, duration_s=10, sessions=101),
    ],
)
@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_open_shares_deal_the_whole_plan_round_robin(model: OpenModel, workers: int) -> None:
    whole = [(s.index, s.at) for s in model.starts()]
    dealt: list[tuple[int, float]] = []
    for w in range(workers):
        share = share_model(model, w, workers)
        assert isinstance(share, OpenShare)
        starts = list(share.starts())
        assert [s.index for s in starts] == list(range(len(starts)))
        dealt += [(run_index(s.index, w, workers), s.at) for s in starts]
        np.testing.assert_array_equal(share.arrival_times(), [s.at for s in starts])
    assert sorted(dealt) == whole  # same starts, same planned times, nothing twice


def test_open_share_splits_max_concurrency() -> None:
    model = OpenModel(rate=10, duration_s=1, max_concurrency=5)
    assert [share_model(model, w, 2).max_concurrency for w in range(2)] == [3, 2]
    assert fleet_size(model, 8) == 5


def test_closed_shares_keep_the_ramp_and_split_sessions() -> None:
    model = ClosedModel(concurrency=5, ramp_up_s=1.0, sessions=11)
    whole = sorted(s.at for s in model.plan().initial_starts())
    firsts: list[float] = []
    sessions = 0
    for w in range(2):
        share = share_model(model, w, 2)
        assert isinstance(share, ClosedShare)
        firsts += [s.at for s in share.plan().initial_starts()]
        sessions += share.sessions or 0
    assert sorted(firsts) == whole == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert sessions == 11
    assert [share_model(model, w, 2).concurrency for w in range(2)] == [3, 2]


def test_session_indices_of_closed_shares_are_the_whole_runs() -> None:
    model = ClosedModel(concurrency=4, sessions=10)
    indices = sorted(
        run_index(j, w, 3) for w in range(3) for j in range(share_model(model, w, 3).sessions or 0)
    )
    assert indices == list(range(10))


def test_fleet_size_and_bad_shares() -> None:
    assert fleet_size(ClosedModel(concurrency=3), 16) == 3
    assert fleet_size(ClosedModel(concurrency=30, sessions=2), 16) == 2
    assert fleet_size(OpenModel(rate=1, duration_s=1), 4) == 4
    with pytest.raises(PlanError, match="cannot be split over 4 workers"):
        share_model(ClosedModel(concurrency=3), 0, 4)
    with pytest.raises(PlanError, match=r"worker must be in \[0, 2\)"):
        share_model(ClosedModel(concurrency=3), 2, 2)


# ----------------------------------------------------------------------------- wire


def test_commands_round_trip_and_bad_lines_are_named() -> None:
    for command in (Command("go", 1765000000.125), Command("drain", 30.0), Command("cancel")):
        assert parse_command(command_line(command).strip()) == command
    with pytest.raises(WireError, match="'stop now'"):
        parse_command(b"stop now")
    with pytest.raises(WireError, match="not a worker message"):
        parse_message(b'{"kind":"turn"}')


def test_stream_sink_tags_every_record_with_its_worker() -> None:
    out = QueueWriter()
    sink = StreamSink(out, worker=3)
    sink.session(
        SessionResult(session_id="s000003", status="completed", planned_start_s=0.0, t_end_s=1.0)
    )
    sink.event("start_dropped", {"session_id": "s000007", "reason": "too_late"})
    lines = out.take(0.0).splitlines()
    assert all(is_record(line) for line in lines)
    assert [orjson.loads(line)["worker"] for line in lines] == [3, 3]
    (session,) = read_results(lines).sessions  # still a results.jsonl line
    assert session.session_id == "s000003"
    assert not is_record(message("status", snapshot={}))
    assert out.take(0.0) == b""


def test_an_error_message_names_the_first_error_of_a_group() -> None:
    group = ExceptionGroup("nursery", [ValueError("bad spec")])
    assert parse_message(error_message(group).strip())["error"] == "ValueError: bad spec"


def test_describe_exit() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exit code 3"


# ----------------------------------------------------------------------------- job


def test_a_job_ships_by_content_with_the_voice_clips_it_holds(tmp_path: Path) -> None:
    cache = VoiceCache(str(tmp_path))
    clip = np.arange(10, dtype=np.int16)
    cache._memo["k"] = clip
    # the cache stands for any object of the job's graph that holds one (a conversation)
    job = WorkerJob(
        model=ClosedModel(concurrency=2), spec=dict, driver=cache, restart=RestartPolicy()
    )  # type: ignore[arg-type]
    back = loads_order(dumps_order(WorkOrder(job=job, worker=1, workers=2)))
    assert (back.worker, back.workers, back.job.model) == (1, 2, job.model)
    shipped = back.job.driver
    assert isinstance(shipped, VoiceCache) and shipped is not cache
    np.testing.assert_array_equal(shipped._memo["k"], clip)
    assert not shipped._memo["k"].flags.writeable
    with pytest.raises(JobError, match="not a work order"):
        loads_order(b"junk")


# ----------------------------------------------------------------------------- merge


def test_merged_status_adds_counts_and_keeps_the_worst_lag() -> None:
    a = SupervisorSnapshot(
        t_s=3.0, active=4, started=10, completed=6, loop_lag_p99_ms=2.0, pacer_p99_ms=9.0,
        cpu_percent=40.0, breaker="closed", planned_total=20, loop_lag_samples=40,
        pacer_samples=300,
    )  # fmt: skip
    b = SupervisorSnapshot(
        t_s=3.1, active=1, started=9, completed=8, loop_lag_p99_ms=30.0, pacer_p99_ms=None,
        cpu_percent=50.0, breaker="open", planned_total=20, draining=True, last_error="boom",
        loop_lag_samples=30, pacer_samples=None,
    )  # fmt: skip
    merged = merge_snapshots([a, snapshot_from_dict(b.to_dict())])
    assert (merged.active, merged.started, merged.completed) == (5, 19, 14)
    assert (merged.loop_lag_p99_ms, merged.pacer_p99_ms) == (30.0, 9.0)
    assert (merged.cpu_percent, merged.breaker, merged.draining) == (90.0, "open", True)
    assert (merged.planned_total, merged.last_error, merged.t_s) == (40, "boom", 3.1)
    # the samples behind the live p99s: the fewest worker's, not a pooled count
    assert (merged.loop_lag_samples, merged.pacer_samples) == (30, 300)


def test_merged_monitor_and_validity_name_the_worker() -> None:
    figures = merge_monitor(
        [{"pacer_p99_ms": 3.0, "pacer_frames": 10}, {"pacer_p99_ms": 7.0, "pacer_frames": 5}]
    )
    assert figures == {"pacer_p99_ms": 7.0, "pacer_frames": 15}
    bad = worker_validity("worker 1 (pid 7)", {"valid": False, "reasons": ["lag 90 ms"]}, None)
    assert bad == {"valid": False, "reasons": ["worker 1 (pid 7): lag 90 ms"]}
    dead = worker_validity("worker 0 (pid 6)", None, "worker 0 (pid 6) died (exit code 1)")
    assert dead == {"valid": False, "reasons": ["worker 0 (pid 6) died (exit code 1)"]}
    assert worker_validity("w", {"valid": True, "reasons": []}, None)["valid"]


# ----------------------------------------------------------------------------- coordinator


class ScriptedLink:
    """A worker that says ``ready`` (or fails), and on ``go`` writes ``records`` then
    ``end`` (or, ``dies``, just stops); it ends at once on ``drain``/``cancel``. With
    ``heartbeat_s``, it sends a ``status`` message whenever it had nothing to send for
    that long once it went (as a live worker does)."""

    def __init__(
        self,
        index: int,
        *,
        records: int = 0,
        dies: bool = False,
        error: str = "",
        wedged: bool = False,
        heartbeat_s: float | None = None,
        ready_after_s: float = 0.0,
        lingers: bool = False,
    ) -> None:
        self.index, self.records, self.dies, self.error = index, records, dies, error
        self.lingers = lingers  # after its ``end``, its output stays open until stopped
        self.wedged = wedged  # ignores every command and the end of its input
        self.heartbeat_s = heartbeat_s
        self.ready_after_s = ready_after_s
        self.went = False
        self.commands: list[bytes] = []
        self.ended = False
        self.closed_input = False
        self.closed = False
        self._send, self._receive = trio.open_memory_channel[bytes](64)

    @property
    def name(self) -> str:
        return f"worker {self.index} (scripted)"

    async def open(self, order: bytes) -> None:
        if self.error:
            self._send.send_nowait(message("error", error=self.error))
            self._end()
        else:
            await trio.sleep(self.ready_after_s)
            self._send.send_nowait(message("ready"))

    async def receive_some(self) -> bytes:
        silence = math.inf if self.heartbeat_s is None or not self.went else self.heartbeat_s
        with trio.move_on_after(silence):
            try:
                return await self._receive.receive()
            except trio.EndOfChannel:
                return b""
        return message("status", snapshot={"t_s": trio.current_time()})

    async def send(self, data: bytes) -> None:
        self.commands.append(data)
        if self.ended or (self.wedged and not data.startswith(b"go")):
            return
        if data.startswith(b"go"):
            self.went = True
            for i in range(self.records):
                line = b'{"worker":%d,"kind":"session","session_id":"s%06d","status":"completed",'
                line += b'"planned_start_s":0.0,"t_end_s":1.0}\n'
                self._send.send_nowait(line % (self.index, i * 2 + self.index))
            if self.dies:
                self._end()
            return  # runs until told to drain or cancel
        self._send.send_nowait(message("end", validity={"valid": True, "reasons": []}))
        if not self.lingers:
            self._end()

    def _end(self) -> None:
        self.ended = True
        self._send.close()

    async def close_input(self) -> None:
        """As a real worker: its sessions are cancelled (one record) and it ends."""
        self.closed_input = True
        if self.ended or self.wedged or self.lingers:
            return
        line = b'{"worker":%d,"kind":"session","session_id":"c%06d","status":"cancelled",'
        line += b'"planned_start_s":0.0,"t_end_s":1.0}\n'
        self._send.send_nowait(line % (self.index, self.index))
        self._send.send_nowait(message("end", interrupted=True))
        self._end()

    async def close(self) -> str:
        self.closed = True
        if not self.ended:
            self._end()  # stopped (a process: SIGTERM/SIGKILL)
            return "killed by SIGKILL"
        return "exit code 0" if not self.dies else "killed by SIGKILL"


async def test_a_worker_that_cannot_start_is_named(tmp_path: Path) -> None:
    sink = FleetResults(tmp_path / "results.jsonl")
    fleet = Fleet([ScriptedLink(0), ScriptedLink(1, error="JobError: bad job")], sink, quiet=True)
    failed = pytest.RaisesExc(FleetError, match=r"^worker 1 \(scripted\) could not start: JobError")
    with trio.fail_after(5), pytest.RaisesGroup(failed, flatten_subgroups=True):
        await fleet.run([b"", b""])


async def test_a_dead_worker_drains_the_others_and_invalidates_the_run(tmp_path: Path) -> None:
    sink = FleetResults(tmp_path / "results.jsonl")
    alive, dead = ScriptedLink(0, records=1), ScriptedLink(1, records=2, dies=True)
    fleet = Fleet([alive, dead], sink, grace_s=7.0, quiet=True, timeline_interval_s=None)
    with trio.fail_after(5):
        await fleet.run([b"", b""])
    sink.close()
    assert fleet.deaths == [
        "worker 1 (scripted) died (killed by SIGKILL): its 2 finished sessions are kept, "
        "the rest of its share did not run"
    ]
    assert b"drain 7.0\n" in alive.commands  # the living worker was drained
    meta = read_run_meta(tmp_path / "results.jsonl")
    assert meta.ended and meta.validity == {"valid": False, "reasons": fleet.deaths}
    kept = read_results(tmp_path / "results.jsonl").sessions
    assert sorted(s.session_id for s in kept) == ["s000000", "s000001", "s000003"]


async def test_a_cancelled_run_keeps_the_records_of_the_cancelled_sessions(tmp_path: Path) -> None:
    sink = FleetResults(tmp_path / "results.jsonl")
    links = [ScriptedLink(0, records=1), ScriptedLink(1, records=1)]
    fleet = Fleet(links, sink, quiet=True, timeline_interval_s=None)
    with trio.move_on_after(0.5) as scope:
        await fleet.run([b"", b""])
    sink.close()
    assert scope.cancelled_caught
    assert all(link.closed_input and link.closed for link in links)
    meta = read_run_meta(tmp_path / "results.jsonl")
    assert meta.ended  # run_end written although the run was cancelled
    end = [orjson.loads(x) for x in (tmp_path / "results.jsonl").read_bytes().splitlines()][-1]
    assert end["kind"] == "run_end" and end["interrupted"] is True
    kept = read_results(tmp_path / "results.jsonl").sessions
    # the records the workers wrote after their input ended reached the file
    assert sorted(s.session_id for s in kept) == ["c000000", "c000001", "s000000", "s000001"]
    assert fleet.deaths == []


async def test_a_wedged_worker_is_stopped_after_cancel_and_grace(tmp_path: Path) -> None:
    sink = FleetResults(tmp_path / "results.jsonl")
    wedged = ScriptedLink(1, wedged=True)
    links = [ScriptedLink(0), wedged]
    fleet = Fleet(
        links, sink, grace_s=0.05, stop_timeout_s=0.05, quiet=True, timeline_interval_s=None
    )

    async def stop_twice() -> None:
        await trio.sleep(0.1)  # after the start
        fleet.cancel()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_twice)
            await fleet.run([b"", b""])
    sink.close()
    assert wedged.closed_input and wedged.closed
    assert fleet.deaths and fleet.deaths[0].startswith(
        "worker 1 (scripted) died (killed by SIGKILL)"
    )
    end = [orjson.loads(x) for x in (tmp_path / "results.jsonl").read_bytes().splitlines()][-1]
    assert end["kind"] == "run_end" and end["interrupted"] is True


async def test_a_hung_worker_ends_the_run_by_itself(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = FleetResults(tmp_path / "results.jsonl")
    live = ScriptedLink(0, records=1, heartbeat_s=0.5)
    hung = ScriptedLink(1, records=2, wedged=True)  # silent after its records, deaf
    fleet = Fleet([live, hung], sink, grace_s=7.0, timeline_interval_s=None)
    with trio.fail_after(SILENCE_TIMEOUT_S + STOP_TIMEOUT_S + 1):
        start = trio.current_time()
        await fleet.run([b"", b""])
    sink.close()
    # silent from the start for the silence timeout, then its stop timeout
    assert trio.current_time() - start == SILENCE_TIMEOUT_S + STOP_TIMEOUT_S
    lost = (
        "worker 1 (scripted) hung (no message for 60 s) and was stopped (killed by SIGKILL): "
        "its 2 finished sessions are kept, the rest of its share did not run"
    )
    assert fleet.deaths == [lost]  # the live worker's heartbeats kept it off the list
    said = "worker 1 (scripted) hung (no message for 60 s): stopping it; draining the other workers"
    err = capsys.readouterr().err
    assert err.index(said) < err.index(lost)  # said at once, then how it was stopped
    assert b"drain 7.0\n" in live.commands and live.ended  # drained, ended by itself
    assert hung.closed_input and hung.closed
    meta = read_run_meta(tmp_path / "results.jsonl")
    assert meta.ended and meta.validity == {"valid": False, "reasons": [lost]}
    kept = read_results(tmp_path / "results.jsonl").sessions
    assert sorted(s.session_id for s in kept) == ["s000000", "s000001", "s000003"]


@pytest.mark.parametrize("how", ["died", "hung"])
async def test_a_lost_worker_makes_the_run_draining_and_invalid_at_once(
    how: str,
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the live view (panel, ``run_valid``) and stderr show when the drain task
    starts, i.e. right after the loss was noticed: a hung worker is reported before the
    wait for it to stop."""
    sink = FleetResults(tmp_path / "results.jsonl")
    live = ScriptedLink(0, records=1, heartbeat_s=0.5)
    lost = ScriptedLink(1, records=2, dies=how == "died", wedged=how == "hung")
    fleet = Fleet([live, lost], sink, grace_s=7.0, timeline_interval_s=None)
    seen: list[tuple[float, bool, dict[str, object], str, bool]] = []
    drain = fleet.drain

    async def drain_seen(grace_s: float) -> None:
        now, validity = trio.current_time() - start, fleet.validity()
        seen.append(
            (now, fleet.snapshot().draining, validity, capsys.readouterr().err, lost.closed)
        )
        await drain(grace_s)

    monkeypatch.setattr(fleet, "drain", drain_seen)
    with trio.fail_after(SILENCE_TIMEOUT_S + STOP_TIMEOUT_S + 1):
        start = trio.current_time()
        await fleet.run([b"", b""])
    sink.close()
    ((at, draining, validity, err, closed),) = seen
    assert draining and validity["valid"] is False
    reasons = validity["reasons"]
    assert isinstance(reasons, list) and reasons[0].startswith(f"{lost.name} {how}")
    if how == "hung":
        assert at == SILENCE_TIMEOUT_S  # at detection, not after the stop timeout
        said = f"{lost.name} hung (no message for 60 s)"
        assert reasons == [said] and not closed  # said before it was stopped
        assert err == f"\n{said}: stopping it; draining the other workers\n"
    else:
        assert err.startswith(f"\n{lost.name} died (killed by SIGKILL)")
    assert fleet.deaths[0] in err + capsys.readouterr().err  # the final word, how it ended


async def test_a_worker_silent_after_its_end_is_not_hung(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Its work is done (``end`` came): a worker that then does not exit is stopped, not
    reported lost, and the run stays valid."""
    sink = FleetResults(tmp_path / "results.jsonl")
    lingering = ScriptedLink(0, records=1, lingers=True)
    fleet = Fleet([lingering], sink, quiet=True, timeline_interval_s=None)
    with trio.fail_after(SILENCE_TIMEOUT_S):  # stopped after its end's stop timeout
        async with trio.open_nursery() as nursery:
            started = trio.Event()

            async def on_start() -> None:
                started.set()

            nursery.start_soon(partial(fleet.run, [b""], on_start=on_start))
            await started.wait()
            await fleet.drain(1.0)
    sink.close()
    assert lingering.closed and fleet.deaths == []
    assert read_run_meta(tmp_path / "results.jsonl").validity == {"valid": True, "reasons": []}


async def test_a_worker_waiting_for_a_slow_starter_is_not_hung(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    sink = FleetResults(tmp_path / "results.jsonl")
    slow = 1.5 * SILENCE_TIMEOUT_S  # within the ready timeout
    links = [ScriptedLink(0), ScriptedLink(1, ready_after_s=slow)]
    fleet = Fleet(links, sink, quiet=True, timeline_interval_s=None)
    with trio.fail_after(3 * SILENCE_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fleet.run, [b"", b""])
            await trio.sleep(slow + 1)  # both went; worker 0 waited silently
            assert fleet.t0 is not None and fleet.deaths == []
            await fleet.drain(1.0)
    sink.close()
    assert fleet.deaths == [] and read_run_meta(tmp_path / "results.jsonl").validity == {
        "valid": True,
        "reasons": [],
    }


async def test_a_bound_exporter_counts_the_workers_records_and_the_fleets_validity(
    tmp_path: Path,
) -> None:
    from orchestrator.aio.prometheus import SupervisorMetrics

    sink = FleetResults(tmp_path / "results.jsonl")
    exporter = SupervisorMetrics(scenario="call")
    links = [ScriptedLink(0, records=1), ScriptedLink(1, records=2, dies=True)]
    fleet = Fleet(
        links, sink, quiet=True, timeline_interval_s=None, observers=[exporter],
        validity_limits=ValidityLimits(loop_lag_p99_ms=50.0),
    )  # fmt: skip
    exporter.bind(fleet)
    assert exporter.registry.get_sample_value("orchestrator_run_valid") == 1.0
    status = message("status", snapshot={"t_s": 1.0, "loop_lag_p99_ms": 80.0, "started": 3})
    fleet._take(fleet._workers[0], status.strip())
    assert fleet.validity()["reasons"] == [
        "worker 0 (scripted): event-loop lag p99 80.0 ms > limit 50 ms: the load generator "
        "was the bottleneck, latencies measured in this run are not trustworthy"
    ]
    dropped = b'{"worker":0,"kind":"start_dropped","session_id":"s000009","reason":"too_late"}'
    fleet._take(fleet._workers[0], dropped)
    with trio.fail_after(5):
        await fleet.run([b"", b""])
    sink.close()
    exporter.refresh()
    value = exporter.registry.get_sample_value
    completed = {"scenario": "call", "label": "", "status": "completed"}
    assert value("orchestrator_sessions_total", completed) == 3  # both workers' records
    assert value("orchestrator_dropped_starts_total", {"reason": "too_late"}) == 1
    assert value("orchestrator_session_starts_total") == 3  # the merged live status
    assert value("orchestrator_run_valid") == 0.0  # a worker died
    assert fleet.deaths[0] in fleet.validity()["reasons"]


async def test_the_fleet_panel_counts_failed_turns(tmp_path: Path) -> None:
    sink = FleetResults(tmp_path / "results.jsonl")
    link = ScriptedLink(0)
    fleet = Fleet([link], sink, quiet=True, timeline_interval_s=None)
    turn = b'{"worker":0,"kind":"turn","session_id":"s000000","turn_index":0,'
    turn += b'"t_start_s":0.0,"t_end_s":1.0,"status":"failed","ttfb_ms":12.0}'
    worker = fleet._workers[0]
    fleet._take(worker, turn)
    assert fleet.live.turns == 1 and fleet.live.turns_failed == 1  # a real TurnRecord
    assert fleet.live.windows["ttfb_ms"].count() == 1
    status = message("status", snapshot={"t_s": 1.0, "turns": 1, "turns_failed": 1,
                                         "errors_per_s": 0.5})  # fmt: skip
    fleet._take(worker, status.strip())
    snap = fleet.snapshot()
    assert snap.turns == 1 and snap.turns_failed == 1 and snap.errors_per_s == 0.5
    sink.close()


# ----------------------------------------------------------------------------- Ray (faked)


class FakeRayError(Exception):
    pass


class FakeGetTimeoutError(FakeRayError):
    pass


class FakeRef:
    """A Ray object ref that never resolves (an actor that is never placed, or wedged)."""


class FakeMethod:
    def remote(self, *args: object) -> FakeRef:
        return FakeRef()


class FakeActor:
    def __init__(self) -> None:
        self.start = self.poll = self.command = self.close = FakeMethod()


class FakeRay:
    """What :mod:`orchestrator.fleet.ray_workers` uses of ``ray``; ``get`` waits for its
    timeout (or the test's end), as for an actor that never answers."""

    exceptions = argparse.Namespace(RayError=FakeRayError, GetTimeoutError=FakeGetTimeoutError)

    def __init__(self, free_cpus: float = 2.0) -> None:
        self.free_cpus = free_cpus
        self.gets: list[float | None] = []
        self.killed: list[FakeActor] = []
        self.options: dict[str, object] = {}
        self.inits: list[dict[str, object]] = []
        self.release = threading.Event()

    def init(self, **kwargs: object) -> None:
        self.inits.append(kwargs)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(15))  # as Ray does

    def shutdown(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(15))

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 8.0}

    def available_resources(self) -> dict[str, float]:
        return {"CPU": self.free_cpus}

    def remote(self, **options: object) -> Callable[[type], object]:
        self.options = options
        return lambda cls: argparse.Namespace(remote=FakeActor)

    def get(self, ref: FakeRef, timeout: float | None = None) -> object:
        self.gets.append(timeout)
        self.release.wait(timeout)
        raise FakeGetTimeoutError(f"timed out after {timeout}")

    def kill(self, actor: FakeActor) -> None:
        self.killed.append(actor)


def test_ray_init_does_not_keep_its_sigterm_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    before = signal.getsignal(signal.SIGTERM)
    with ray_cluster(None, num_cpus=1) as ray:
        assert ray is fake
        assert signal.getsignal(signal.SIGTERM) is before  # restored right after init
    assert signal.getsignal(signal.SIGTERM) is before  # and after shutdown


@pytest.mark.parametrize(("quiet", "level"), [(False, logging.WARNING), (True, logging.ERROR)])
def test_ray_logs_only_its_errors_when_quiet(
    quiet: bool, level: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    with ray_cluster(None, num_cpus=1, quiet=quiet):
        pass
    (options,) = fake.inits
    assert options["logging_level"] == level
    assert "log_to_driver" not in options  # what the actors print is forwarded either way


async def test_an_actor_never_placed_times_out_and_is_killed() -> None:
    fake = FakeRay()
    link = RayWorker(0, fake, trio.CapacityLimiter(4), ready_timeout_s=0.1)
    try:
        with trio.fail_after(5), pytest.raises(FakeGetTimeoutError):
            await link.open(b"order")
        assert fake.gets == [0.1]  # ray.get is given the ready timeout
        with trio.fail_after(5):
            how = await link.close()
        assert how.startswith("never started")
        assert fake.killed == [link.actor]  # killed at once, no close call waited for
        assert fake.gets == [0.1]
    finally:
        fake.release.set()


async def test_a_ray_call_can_be_cancelled() -> None:
    fake = FakeRay()
    link = RayWorker(0, fake, trio.CapacityLimiter(4), ready_timeout_s=60.0)
    try:
        with trio.fail_after(5):
            with trio.move_on_after(0.1) as scope:
                await link.open(b"order")  # the thread is abandoned, not waited for
            assert scope.cancelled_caught
    finally:
        fake.release.set()


def test_ray_workers_are_capped_by_the_free_cpus(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeRay(free_cpus=2.0)
    assert workers_wanted(argparse.Namespace(workers=8, quiet=False), fake) == 2
    assert "2 free CPUs" in capsys.readouterr().err
    assert workers_wanted(argparse.Namespace(workers=1, quiet=True), fake) == 1
    assert workers_wanted(argparse.Namespace(workers=None, quiet=True), fake) == 8
    assert workers_wanted(argparse.Namespace(workers=None, quiet=True), None) == 1
    assert workers_wanted(argparse.Namespace(workers=3, quiet=True), None) == 3


def test_a_broken_pipe_in_a_group_is_not_a_crash() -> None:
    assert _only_broken_pipes(BrokenPipeError())
    assert _only_broken_pipes(ExceptionGroup("x", [BrokenPipeError(), BrokenPipeError()]))
    assert not _only_broken_pipes(ExceptionGroup("x", [BrokenPipeError(), ValueError()]))
    assert not _only_broken_pipes(ValueError())


async def test_each_worker_reseeds_its_restart_jitter() -> None:
    from orchestrator.fleet.worker import run_worker
    from orchestrator.supervisor.policy import Backoff, RestartPolicy

    draws = []
    for worker in (0, 1):
        restart = RestartPolicy(backoff=Backoff(rng=random.Random(7)))
        built: list[int] = []
        job = WorkerJob(
            model=ClosedModel(concurrency=2, sessions=4),
            spec=lambda i, built=built: built.append(i) or SPEC,  # type: ignore[misc]
            driver=None,
            restart=restart,
            seed=7,
        )
        out = ListLines()
        send, receive = trio.open_memory_channel[Command](1)
        send.close()  # no go: the worker ends without running
        with trio.fail_after(5):
            await run_worker(WorkOrder(job=job, worker=worker, workers=2), out, receive)
        assert built == [worker]  # the specs were built before "ready"
        assert [orjson.loads(x)["fleet"] for x in out.lines] == ["ready", "end"]
        draws.append(restart.backoff.rng.random())
    assert draws == [random.Random(7).random(), random.Random(8).random()]


class ListLines:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, line: bytes) -> None:
        self.lines.append(line)


def test_ray_actors_get_the_key_variable_only_when_it_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.cli.run_fleet import _links

    args = argparse.Namespace(url="wss://x/v1", api_key_env="MY_KEY", provider=None)
    monkeypatch.delenv("MY_KEY", raising=False)
    (link,) = _links(1, FakeRay(), args)
    assert isinstance(link, RayWorker) and link.runtime_env is None
    monkeypatch.setenv("MY_KEY", "sk-abc")
    (link,) = _links(1, FakeRay(), args)
    assert isinstance(link, RayWorker)
    assert link.runtime_env == {"env_vars": {"MY_KEY": "sk-abc"}}
    embedded = argparse.Namespace(url=None, api_key_env=None, provider=None)
    (link,) = _links(1, FakeRay(), embedded)
    assert isinstance(link, RayWorker) and link.runtime_env is None
