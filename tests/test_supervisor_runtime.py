"""Supervisor runtime: load shapes at planned times, isolation, restarts, drain, sink order.

Everything runs on the autojump MockClock with the embedded mock server joined over
``trio.testing.memory_stream_pair()``, so planned/actual start times are exact.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from orchestrator.metrics import read_results, summarize
from orchestrator.mockserver import (
    Distribution,
    FaultConfig,
    LatencyModel,
    MockServer,
    ServerConfig,
)
from orchestrator.protocol import Dialect
from orchestrator.scenario import BuiltinConversation, voice_session_config
from orchestrator.session.actor import Session
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import (
    Backoff,
    CircuitBreaker,
    ClosedModel,
    JsonlSink,
    ListSink,
    OpenModel,
    RestartIntensity,
    RestartPolicy,
    RestartType,
    Workload,
    open_supervisor,
    read_run_meta,
)
from orchestrator.transport import Target, connect_stream

URL = "ws://127.0.0.1/v1/realtime?model=gpt-realtime"
FAST = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:300"),
    response_words=Distribution.parse("fixed:3"),
    realtime_factor=0.0,
    transcription_ms=Distribution.parse("fixed:50"),
)


def memory_connect(server: MockServer, nursery: trio.Nursery) -> Callable[[], Any]:
    """A ``SessionSpec.connect`` factory: one mock-server connection per call over a
    memory stream pair. The server side runs in ``nursery`` (as a real server's
    connections run in the server's own nursery), so the client never waits for the
    server's close handshake timers."""
    target = Target(url=URL, dialect=Dialect.GA)

    @asynccontextmanager
    async def factory() -> AsyncIterator[Any]:
        client, far = trio.testing.memory_stream_pair()
        nursery.start_soon(server.serve_stream, far)
        async with connect_stream(client, target) as conn:
            yield conn

    return factory


@asynccontextmanager
async def mock_server(**config: Any) -> AsyncIterator[Callable[..., SessionSpec]]:
    """Yields ``make_spec(**spec_kwargs)`` building voice specs connected to one mock
    server, whose clock (the origin of its scheduled faults) starts now."""
    config.setdefault("latency", FAST)
    server = MockServer(ServerConfig(port=0, **config), started_at=trio.current_time())
    async with trio.open_nursery() as nursery:

        def make_spec(**kw: Any) -> SessionSpec:
            connect = memory_connect(server, nursery)
            return SessionSpec(connect=connect, config=voice_session_config(), **kw)

        yield make_spec
        nursery.cancel_scope.cancel()


@pytest.fixture
async def voice_spec() -> AsyncIterator[Callable[..., SessionSpec]]:
    async with mock_server() as make_spec:
        yield make_spec


async def test_open_model_starts_every_arrival_at_its_planned_time(
    autojump_clock: trio.testing.MockClock,
    voice_spec: Callable[..., SessionSpec],
) -> None:
    sink = ListSink()
    model = OpenModel(rate=20, duration_s=10)
    async with open_supervisor(sink=sink, timeline_interval_s=None) as sup:
        t0 = sup.t0
        stats = await sup.run_workload(Workload(model=model, spec=voice_spec()))
    assert (stats.planned, stats.started, stats.late, stats.dropped) == (200, 200, 0, 0)
    assert len(sink.sessions) == 200
    assert {s.status for s in sink.sessions} == {"completed"}
    by_id = {s.session_id: s for s in sink.sessions}
    for i in range(200):
        s = by_id[f"s{i:06d}"]
        assert s.planned_start_s == pytest.approx(i * 0.05, abs=1e-9)
        assert s.late_start_ms == pytest.approx(0.0, abs=1e-6)
        assert s.connect_ms is not None and s.session_ready_ms is not None
    assert t0 == sup.t0
    snap = sup.snapshot()
    assert (snap.started, snap.completed, snap.running, snap.pending) == (200, 200, 0, 0)


async def _stall_run(faults: FaultConfig) -> dict[str, Any]:
    sink = ListSink()
    conversation = BuiltinConversation(speech_ms=600, lead_ms=100, tail_ms=100)
    async with (
        mock_server(faults=faults) as voice_spec,
        open_supervisor(sink=sink, timeline_interval_s=None) as sup,
    ):
        spec = voice_spec()
        await sup.run_workload(
            Workload(model=OpenModel(rate=10, duration_s=4), spec=spec, driver=conversation)
        )
    assert len(sink.sessions) == 40
    return {
        "statuses": {s.status for s in sink.sessions},
        "ready": summarize(s.session_ready_ms for s in sink.sessions),
        "ttfb": summarize(t.ttfb_ms for t in sink.turns),
        "v2v": summarize(t.voice_to_voice_ms for t in sink.turns),
        "late": [s.late_start_ms for s in sink.sessions],
    }


async def test_server_stall_shows_in_p99_not_in_start_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calm = await _stall_run(FaultConfig())
    # the server itself freezes for 2 s, 2 s into the run (its clock starts with the run)
    stalled = await _stall_run(FaultConfig(freeze_at_s=2.0, freeze_ms=2000.0))
    assert calm["statuses"] == stalled["statuses"] == {"completed"}
    # Without the stall: ready in a few ms, ttfb = the server's fixed 300 ms.
    assert calm["ready"].p99 < 50
    assert calm["ttfb"].p99 == pytest.approx(300, abs=5)
    # Arrivals keep their planned times while the server is frozen (no coordinated
    # omission): the 2 s stall lands in session_ready_ms and ttfb_ms instead.
    assert max(abs(x) for x in stalled["late"]) < 1e-6
    assert stalled["ready"].p99 > 1800
    assert stalled["ready"].max <= 2000 + 50
    assert stalled["ttfb"].p99 > 1500
    assert stalled["v2v"].p99 > calm["v2v"].p99 + 1500


async def test_driver_failure_is_data_and_isolated(
    autojump_clock: trio.testing.MockClock,
    voice_spec: Callable[..., SessionSpec],
) -> None:
    sink = ListSink()

    async def driver(session: Session) -> None:
        if session.spec.session_id == "bad":
            raise RuntimeError("script bug")
        await trio.sleep(1.0)

    async with open_supervisor(sink=sink, restart=RestartPolicy(RestartType.TEMPORARY)) as sup:
        handles = [await sup.start(voice_spec(session_id=sid), driver) for sid in ("a", "bad", "c")]
    results = {h.session_id: h.result for h in handles}
    assert results["bad"] is not None and results["bad"].status == "failed"
    assert results["bad"].reason == "RuntimeError: script bug"
    assert results["a"].status == results["c"].status == "completed"  # type: ignore[union-attr]
    assert sup.snapshot().failed == 1 and sup.snapshot().completed == 2


async def test_transient_restarts_with_backoff_until_intensity(
    autojump_clock: trio.testing.MockClock,
    voice_spec: Callable[..., SessionSpec],
) -> None:
    sink = ListSink()
    policy = RestartPolicy(
        RestartType.TRANSIENT,
        intensity=RestartIntensity(3, 60.0),
        backoff=Backoff(initial_s=1.0, max_s=30.0, multiplier=2.0, jitter="none"),
    )

    async def driver(session: Session) -> None:
        await trio.sleep(0.5)
        raise RuntimeError(f"attempt {session.spec.attempt} fails")

    async with open_supervisor(sink=sink, restart=policy, timeline_interval_s=None) as sup:
        handle = await sup.start(voice_spec(session_id="flaky"), driver)
        await handle.wait()
    attempts = [(r.attempt, r.status) for r in handle.results]
    assert attempts == [(0, "failed"), (1, "failed"), (2, "failed"), (3, "failed")]
    # Each restart is planned at the end of its backoff (1, 2, 4 s after the previous
    # attempt ended), and its connect/ready latencies count from there.
    gaps = [
        b.planned_start_s - a.t_end_s
        for a, b in zip(handle.results, handle.results[1:], strict=False)
    ]
    assert gaps == pytest.approx([1.0, 2.0, 4.0], abs=1e-6)
    assert all(r.late_start_ms == pytest.approx(0.0, abs=1e-6) for r in handle.results)
    assert handle.gave_up is not None and "intensity" in handle.gave_up
    assert sup.restarts == 3 and sup.gave_up == 1


async def test_closed_model_keeps_concurrency_and_ramps(
    autojump_clock: trio.testing.MockClock,
    voice_spec: Callable[..., SessionSpec],
) -> None:
    sink = ListSink()
    peak = 0

    async def driver(session: Session) -> None:
        nonlocal peak
        peak = max(peak, sup.running)
        await trio.sleep(1.0)

    model = ClosedModel(concurrency=3, ramp_up_s=0.3, sessions=7)
    async with open_supervisor(sink=sink, timeline_interval_s=None) as sup:
        await sup.run_workload(Workload(model=model, spec=voice_spec(), driver=driver))
    assert len(sink.sessions) == 7 and peak == 3
    first = sorted(s.planned_start_s for s in sink.sessions)[:3]
    assert first == pytest.approx([0.0, 0.1, 0.2], abs=1e-9)
    # each later start is planned exactly when its slot's previous session ended
    ends = sorted(round(s.t_end_s, 6) for s in sink.sessions)
    later = sorted(round(s.planned_start_s, 6) for s in sink.sessions)[3:]
    assert all(p in ends for p in later)


async def test_max_concurrency_drops_arrivals(
    autojump_clock: trio.testing.MockClock, voice_spec: Callable[..., SessionSpec]
) -> None:
    sink = ListSink()

    async def driver(session: Session) -> None:
        await trio.sleep(1.0)

    model = OpenModel(rate=10, duration_s=1, max_concurrency=4)
    async with open_supervisor(sink=sink, timeline_interval_s=None) as sup:
        stats = await sup.run_workload(Workload(model=model, spec=voice_spec(), driver=driver))
    assert (stats.planned, stats.started, stats.dropped) == (10, 4, 6)
    dropped = [e for e in sink.events if e["kind"] == "start_dropped"]
    assert len(dropped) == 6 and {e["reason"] for e in dropped} == {"max_concurrency"}


async def test_drain_lets_running_finish_within_grace_then_cancels(
    autojump_clock: trio.testing.MockClock,
    voice_spec: Callable[..., SessionSpec],
) -> None:
    sink = ListSink()

    async def driver(session: Session) -> None:
        await trio.sleep(float(session.spec.label or 0))

    async with open_supervisor(sink=sink, timeline_interval_s=None) as sup:
        quick = await sup.start(voice_spec(session_id="quick", label="1"), driver)
        slow = await sup.start(voice_spec(session_id="slow", label="100"), driver)
        later = await sup.start(voice_spec(session_id="later"), driver, planned_start=sup.t0 + 50)
        await trio.sleep(0.5)
        t = trio.current_time()
        await sup.drain(grace_s=2.0)
        assert trio.current_time() - t == pytest.approx(2.0, abs=1e-6)
        with pytest.raises(RuntimeError, match="draining"):
            sup.start_nowait(voice_spec(), driver)
    assert quick.result is not None and quick.result.status == "completed"
    assert slow.result is not None and slow.result.status == "cancelled"
    assert later.result is None and later.dropped == "drained"
    assert [e["reason"] for e in sink.events if e["kind"] == "start_dropped"] == ["drained"]


async def test_results_are_on_disk_when_the_session_ends(
    autojump_clock: trio.testing.MockClock, voice_spec: Callable[..., SessionSpec], tmp_path: Any
) -> None:
    path = tmp_path / "results.jsonl"
    seen_on_disk: list[int] = []

    def on_turn(record: Any) -> None:
        # the supervisor wrote (and flushed) the turn before calling the user's hook
        seen_on_disk.append(len(read_results(path).turns))

    with JsonlSink(path) as sink:
        async with open_supervisor(sink=sink, run_info={"name": "t"}, config={"model": "m"}) as sup:
            conversation = BuiltinConversation(speech_ms=500, lead_ms=100, tail_ms=100)
            handle = await sup.start(voice_spec(on_turn=on_turn), conversation)
            await handle.wait()
            on_disk = read_results(path)
            assert [s.session_id for s in on_disk.sessions] == [handle.session_id]
            assert len(on_disk.turns) == 1
    assert seen_on_disk == [1]
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert lines[0]["kind"] == "run" and lines[-1]["kind"] == "run_end"
    meta = read_run_meta(path)
    assert meta.ended and meta.validity == {"valid": True, "reasons": []}
    assert meta.monitor is not None and meta.monitor["pacer_frames"] > 0


async def test_cancelled_supervisor_records_cancelled_sessions(
    autojump_clock: trio.testing.MockClock,
    voice_spec: Callable[..., SessionSpec],
) -> None:
    sink = ListSink()

    async def driver(session: Session) -> None:
        await trio.sleep_forever()

    with trio.move_on_after(3.0):
        async with open_supervisor(sink=sink, timeline_interval_s=None) as sup:
            for _ in range(3):
                await sup.start(voice_spec(), driver)
            await trio.sleep_forever()
    assert [s.status for s in sink.sessions] == ["cancelled"] * 3
    assert all(math.isclose(s.t_end_s, 3.0, abs_tol=1e-6) for s in sink.sessions)


async def test_breaker_pauses_new_connections_while_target_fails(
    autojump_clock: trio.testing.MockClock,
    voice_spec: Callable[..., SessionSpec],
) -> None:
    sink = ListSink()
    breaker = CircuitBreaker(failure_threshold=0.5, window_s=10.0, min_samples=4, cooldown_s=5.0)

    async def driver(session: Session) -> None:
        raise RuntimeError("target broken")

    model = OpenModel(rate=10, duration_s=2)
    async with open_supervisor(
        sink=sink, breaker=breaker, restart=RestartPolicy(RestartType.TEMPORARY)
    ) as sup:
        await sup.run_workload(Workload(model=model, spec=voice_spec(), driver=driver))
    assert breaker.trips >= 1
    # after the trip, starts waited for the cooldown: their lateness is recorded, not hidden
    late = [s.late_start_ms for s in sink.sessions if s.late_start_ms and s.late_start_ms > 1000]
    assert late and sup.late_starts == len(late)
    assert len(sink.sessions) == 20
