"""``orchestrator.aio``: the supervisor driven from plain ``asyncio.run`` (no pytest-trio).

Every test is a synchronous test function that calls ``asyncio.run``; the trio side runs
as a guest run on that loop. The embedded server runs inside the guest run on 127.0.0.1,
port 0 (nothing else is contacted). Each test is guarded by ``asyncio.timeout``: a hang is
a failure, never a stuck suite. Nothing waits on sleeps: the tests synchronise on futures
that the trio-side drivers resolve (the guest run shares the host's thread).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from orchestrator.aio import AioSupervisor, AioSupervisorClosed, open_aio_supervisor
from orchestrator.mockserver import Distribution, LatencyModel, MockServer, ServerConfig
from orchestrator.scenario import BuiltinConversation, voice_session_config
from orchestrator.session.actor import Session
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import ClosedModel, ListSink, SupervisorDraining, Workload
from orchestrator.transport import build_target

ROOT = Path(__file__).resolve().parent.parent
GUARD_S = 30.0
FAST = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:40"),
    response_words=Distribution.parse("fixed:3"),
    realtime_factor=0.0,
    transcription_ms=Distribution.parse("fixed:10"),
)
SHORT = BuiltinConversation(speech_ms=300, lead_ms=50, tail_ms=250)


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    async def guarded() -> Any:
        async with asyncio.timeout(GUARD_S):
            return await main()

    return asyncio.run(guarded())


async def embedded_spec(sup: AioSupervisor, **kw: Any) -> SessionSpec:
    port = await sup.start_service(MockServer(ServerConfig(port=0, latency=FAST)).serve)
    target = build_target(provider="custom", url=f"ws://127.0.0.1:{port}/v1", model="gpt-realtime")
    kw.setdefault("max_duration", 20.0)
    return SessionSpec(target=target, config=voice_session_config(), **kw)


def blocking_driver(active: asyncio.Future[str]) -> Callable[[Session], Awaitable[None]]:
    """A trio driver that reports (to asyncio) that it runs, then waits forever."""

    async def drive(session: Session) -> None:
        if not active.done():
            active.set_result("active")
        await trio.sleep_forever()

    return drive


def test_sessions_and_workload_results_as_the_trio_api_gives_them() -> None:
    sink = ListSink()

    async def main() -> None:
        async with open_aio_supervisor(sink=sink, timeline_interval_s=None) as sup:
            spec = await embedded_spec(sup)
            handles = [await sup.start(spec, SHORT) for _ in range(3)]
            results = await asyncio.gather(*(h.wait() for h in handles))
            assert [r.status for r in results] == ["completed"] * 3
            assert all(h.done and h.state == "done" for h in handles)
            assert [h.result for h in handles] == results
            stats = await sup.run_workload(
                Workload(model=ClosedModel(concurrency=2, sessions=4), spec=spec, driver=SHORT)
            )
            assert (stats.planned, stats.started, stats.dropped) == (4, 4, 0)
            snap = sup.snapshot()
            assert (snap.completed, snap.failed, snap.running) == (7, 0, 0)
            assert snap.metrics["voice_to_voice_ms"].count == 7

    run(main)
    assert len(sink.sessions) == 7
    assert {s.status for s in sink.sessions} == {"completed"}


def test_driver_failure_is_a_failed_result_and_drain_refuses_new_starts() -> None:
    async def main() -> None:
        async with open_aio_supervisor(timeline_interval_s=None) as sup:
            spec = await embedded_spec(sup)

            async def broken(session: Session) -> None:
                raise ValueError("driver bug")

            handle = await sup.start(spec, broken)
            result = await handle.wait()
            assert result is not None and result.status == "failed"
            assert "ValueError: driver bug" in (result.reason or "")
            await sup.drain(1.0)
            with pytest.raises(SupervisorDraining):
                await sup.start(spec, SHORT)

    run(main)


def test_cancelling_the_awaiting_asyncio_task_cancels_only_the_wait() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with open_aio_supervisor(timeline_interval_s=None) as sup:
            spec = await embedded_spec(sup)
            active: asyncio.Future[str] = loop.create_future()
            handle = await sup.start(spec, blocking_driver(active))
            await active
            waiter = asyncio.ensure_future(handle.wait())
            await asyncio.sleep(0)  # let the waiter reach the trio side
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert handle.state == "active"  # cancelling the wait left the session alone
            handle.cancel()
            result = await handle.wait()
            assert result is not None and result.status == "cancelled"

    run(main)


def test_cancelling_a_drain_from_asyncio_cancels_the_trio_side() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with open_aio_supervisor(timeline_interval_s=None) as sup:
            spec = await embedded_spec(sup)
            active: asyncio.Future[str] = loop.create_future()
            handle = await sup.start(spec, blocking_driver(active))
            await active
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await sup.drain(grace_s=3600.0)  # would wait an hour
            assert handle.state == "active"  # the drain stopped waiting, nothing cancelled
            assert sup.snapshot().draining
            sup.cancel()
            result = await handle.wait()
            assert result is not None and result.status == "cancelled"

    run(main)


def test_leaving_the_block_by_an_error_cancels_sessions_and_releases_awaiters() -> None:
    sink = ListSink()
    outcomes: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(KeyError):
            async with open_aio_supervisor(sink=sink, timeline_interval_s=None) as sup:
                spec = await embedded_spec(sup)
                active: asyncio.Future[str] = loop.create_future()
                handle = await sup.start(spec, blocking_driver(active))
                await active

                async def wait_for_it() -> None:
                    try:
                        outcomes["wait"] = await handle.wait()
                    except BaseException as exc:
                        outcomes["wait"] = exc

                async def workload() -> None:
                    try:
                        outcomes["workload"] = await sup.run_workload(
                            Workload(
                                model=ClosedModel(concurrency=1, duration_s=3600.0),
                                spec=spec,
                                driver=blocking_driver(loop.create_future()),
                            )
                        )
                    except BaseException as exc:
                        outcomes["workload"] = exc

                tasks = [asyncio.ensure_future(wait_for_it()), asyncio.ensure_future(workload())]
                await asyncio.sleep(0)
                raise KeyError("host failure")
        await asyncio.gather(*tasks)
        assert sup.closed
        with pytest.raises(AioSupervisorClosed):
            await sup.start(spec, SHORT)

    run(main)
    # the session's own wait resolves (cancelled result) or is released as closed
    wait = outcomes["wait"]
    assert isinstance(wait, AioSupervisorClosed) or wait.status == "cancelled"
    # the workload either saw the supervisor stop (as in trio: stopped early) or was
    # released as closed; either way its awaiter did not hang
    workload = outcomes["workload"]
    assert isinstance(workload, AioSupervisorClosed) or workload.stopped_early
    assert sink.sessions and {s.status for s in sink.sessions} == {"cancelled"}


def test_cancelling_the_host_task_ends_the_guest_run() -> None:
    sink = ListSink()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        active: asyncio.Future[str] = loop.create_future()

        async def host() -> None:
            async with open_aio_supervisor(sink=sink, timeline_interval_s=None) as sup:
                spec = await embedded_spec(sup)
                await sup.start(spec, blocking_driver(active))
                await asyncio.Event().wait()  # until cancelled

        task = asyncio.ensure_future(host())
        await active
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # a new guest run can start on the same loop: the old one has finished
        async with open_aio_supervisor(timeline_interval_s=None) as again:
            assert again.snapshot().running == 0

    run(main)
    assert [s.status for s in sink.sessions] == ["cancelled"]


def test_cancelling_the_host_while_the_supervisor_starts_does_not_hang() -> None:
    entered: list[bool] = []

    async def main() -> None:
        async def host() -> None:
            async with open_aio_supervisor(timeline_interval_s=None):
                entered.append(True)

        task = asyncio.ensure_future(host())
        await asyncio.sleep(0)  # the host is now waiting for the guest run to be ready
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    assert entered == []


def test_a_failing_service_fails_the_block() -> None:
    async def main() -> None:
        async def service(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started(1)
            await trio.lowlevel.checkpoint()
            raise OSError("service broke")

        with pytest.RaisesGroup(
            pytest.RaisesExc(OSError, match="service broke"), flatten_subgroups=True
        ):
            async with open_aio_supervisor(timeline_interval_s=None) as sup:
                assert await sup.start_service(service) == 1
                await asyncio.Event().wait()

    run(main)


def test_asyncio_embed_example_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "asyncio_embed.py"), "--sessions", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["s000000", "s000001"]
    assert all(": completed" in line for line in lines[:2])
    assert lines[-1] == "completed 2, failed 0, cancelled 0"
