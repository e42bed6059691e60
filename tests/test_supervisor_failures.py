"""Fleet failures with the circuit breaker on: every way a session can fail or be cut short
must hand its breaker grant back, so a run never stalls with a HALF_OPEN probe slot taken.

Each test runs a whole workload on the autojump MockClock against the embedded mock server
over ``trio.testing.memory_stream_pair()``, under a ``trio.fail_after`` guard on the fake
clock (a leaked grant leaves every task blocked, so the clock jumps straight to the guard),
and then checks the breaker's books: no grant outstanding, no probe slot taken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from orchestrator.mockserver import Distribution, LatencyModel, MockServer, ServerConfig
from orchestrator.protocol import Dialect
from orchestrator.scenario import voice_session_config
from orchestrator.session import ReconnectPolicy
from orchestrator.session.actor import Session
from orchestrator.session.link import Link
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import (
    Backoff,
    BreakerState,
    CircuitBreaker,
    ClosedModel,
    ListSink,
    OpenModel,
    RestartIntensity,
    RestartPolicy,
    RestartType,
    Supervisor,
    Workload,
    open_supervisor,
)
from orchestrator.transport import ConnectFailed, Secret, Target, connect_stream

URL = "ws://127.0.0.1/v1/realtime?model=gpt-realtime"
FAST = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:300"),
    response_words=Distribution.parse("fixed:3"),
    realtime_factor=0.0,
    transcription_ms=Distribution.parse("fixed:50"),
)
GUARD_S = 5000.0  # fake seconds; a stalled run hits it at once under autojump

#: How each kind of session ends (its spec's ``label``):
#: driver — the driver raises; actor_init / actor_link — the actor itself raises
#: (AttributeError, as a broken actor would) before it exists / before it connects;
#: refused — every connect is refused (ConnectFailed, reconnects exhausted);
#: http401 — the handshake is rejected; hang — the connect never completes and the
#: session is cancelled while connecting; cancel_active — cancelled mid-conversation;
#: ok — completes.
FAILING = ("driver", "actor_init", "actor_link", "refused", "http401")
CANCELLED = ("hang", "cancel_active")


@pytest.fixture
def broken_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the actor raise AttributeError for sessions labelled actor_init/actor_link."""
    init = Session.__init__
    link_loop = Link._loop

    def patched_init(self: Session, spec: SessionSpec) -> None:
        if spec.label == "actor_init":
            raise AttributeError("'Session' object has no attribute 'broken'")
        init(self, spec)

    async def patched_link_loop(self: Link, started: Callable[[], None]) -> Any:
        if self._spec.label == "actor_link":
            await trio.lowlevel.checkpoint()
            raise AttributeError("'Session' object has no attribute 'broken'")
        return await link_loop(self, started)

    monkeypatch.setattr(Session, "__init__", patched_init)
    monkeypatch.setattr(Link, "_loop", patched_link_loop)


@asynccontextmanager
async def fleet(modes: tuple[str, ...]) -> AsyncIterator[Callable[[int], SessionSpec]]:
    """Yields a spec factory: session ``index`` fails the ``modes[index % len]`` way."""
    good = MockServer(ServerConfig(port=0, latency=FAST))
    locked = MockServer(ServerConfig(port=0, latency=FAST, api_key="sk-right"))
    async with trio.open_nursery() as servers:

        def connect(server: MockServer, target: Target) -> Callable[[], Any]:
            @asynccontextmanager
            async def factory() -> AsyncIterator[Any]:
                client, far = trio.testing.memory_stream_pair()
                servers.start_soon(server.serve_stream, far)
                async with connect_stream(client, target) as conn:
                    yield conn

            return factory

        @asynccontextmanager
        async def refused() -> AsyncIterator[Any]:
            await trio.sleep(0.01)
            raise ConnectFailed(f"{URL}: [Errno 111] Connection refused", recoverable=True)
            yield  # pragma: no cover

        @asynccontextmanager
        async def hang() -> AsyncIterator[Any]:
            await trio.sleep_forever()
            yield  # pragma: no cover

        plain = Target(url=URL, dialect=Dialect.GA)
        wrong_key = Target(url=URL, dialect=Dialect.GA, api_key=Secret("sk-wrong-0123456789"))

        def spec_for(index: int) -> SessionSpec:
            mode = modes[index % len(modes)]
            factory = {
                "refused": refused,
                "hang": hang,
                "http401": connect(locked, wrong_key),
            }.get(mode) or connect(good, plain)
            return SessionSpec(
                connect=factory,
                config=voice_session_config(),
                session_id=f"s{index:06d}",
                label=mode,
                reconnect=ReconnectPolicy(max_attempts=1, initial_delay=0.1),
            )

        yield spec_for
        servers.cancel_scope.cancel()


async def driver(session: Session) -> None:
    if session.spec.label == "driver":
        raise RuntimeError(f"script bug in {session.spec.session_id}")
    await trio.sleep(1.0)  # ok / cancel_active: a short conversation


async def canceller(sup: Supervisor) -> None:
    """Cancel every hang/cancel_active session once it has been connecting/active 0.5 s
    (as a user or a per-session deadline would)."""
    seen: dict[str, float] = {}
    while True:
        await trio.sleep(0.25)
        now = trio.current_time()
        for handle in list(sup.handles.values()):
            if handle.spec.label not in CANCELLED or handle.state not in ("connecting", "active"):
                continue
            key = f"{handle.session_id}/{handle.attempt}"
            if now - seen.setdefault(key, now) >= 0.5:
                handle.cancel()


def breaker() -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=0.5, window_s=10.0, min_samples=4, cooldown_s=5.0)


RESTART = RestartPolicy(
    RestartType.TRANSIENT,
    intensity=RestartIntensity(2, 60.0),
    backoff=Backoff(initial_s=0.5, max_s=4.0, jitter="none"),
)


async def run_fleet(
    modes: tuple[str, ...], model: ClosedModel | OpenModel, **supervisor: Any
) -> tuple[Supervisor, CircuitBreaker, ListSink, Any]:
    sink = ListSink()
    brk = breaker()
    async with fleet(modes) as spec_for:
        with trio.fail_after(GUARD_S):
            async with open_supervisor(
                sink=sink,
                breaker=brk,
                restart=RESTART,
                monitor=False,
                timeline_interval_s=None,
                **supervisor,
            ) as sup:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(canceller, sup)
                    stats = await sup.run_workload(
                        Workload(model=model, spec=spec_for, driver=driver)
                    )
                    nursery.cancel_scope.cancel()
    return sup, brk, sink, stats


def assert_books_balanced(sup: Supervisor, brk: CircuitBreaker) -> None:
    assert brk.outstanding == 0, "a breaker grant was never recorded or released"
    assert brk.probes_in_flight == 0, "a HALF_OPEN probe slot is still taken"
    snap = sup.snapshot()
    assert (snap.pending, snap.connecting, snap.active, snap.restarting) == (0, 0, 0, 0)
    assert not sup.handles


@pytest.mark.parametrize("mode", FAILING + CANCELLED)
async def test_every_failure_kind_returns_its_breaker_grants(
    autojump_clock: trio.testing.MockClock, broken_actor: None, mode: str
) -> None:
    sup, brk, sink, stats = await run_fleet((mode,), ClosedModel(concurrency=6, sessions=18))
    assert_books_balanced(sup, brk)
    assert stats.planned == 18 and stats.dropped == 0
    ids = {r.session_id for r in sink.sessions}
    assert len(ids) == 18  # every slot got its next start after each kind of end
    if mode in FAILING:
        assert {r.status for r in sink.sessions} == {"failed"}
        assert brk.trips >= 1
        # transient: every session was restarted (at least the 2 of the intensity, more
        # when they spread beyond its 60 s window behind the breaker), then gave up
        assert sup.gave_up == 18 and sup.restarts >= 36
        assert len(sink.sessions) == 18 + sup.restarts
    else:
        assert {r.status for r in sink.sessions} == {"cancelled"}
        assert brk.trips == 0 and brk.state is BreakerState.CLOSED


async def test_mixed_failures_and_cancelled_probes_never_stall_the_fleet(
    autojump_clock: trio.testing.MockClock, broken_actor: None
) -> None:
    """Every kind of end at once: the breaker trips, goes HALF_OPEN, and some probes are
    sessions cancelled while connecting or mid-conversation. A cancelled probe must give
    its slot back (it used to keep it: the breaker stayed HALF_OPEN with no probe
    running, and no session ever started again)."""
    modes = ("driver", "hang", "actor_init", "cancel_active", "actor_link", "refused", "http401")
    sup, brk, sink, stats = await run_fleet(modes, ClosedModel(concurrency=7, sessions=70))
    assert_books_balanced(sup, brk)
    assert brk.trips >= 2
    assert stats.planned == 70 and len({r.session_id for r in sink.sessions}) == 70
    by_mode: dict[str, set[str]] = {}
    for r in sink.sessions:
        by_mode.setdefault(r.label or "", set()).add(r.status)
    assert by_mode.pop("hang") == by_mode.pop("cancel_active") == {"cancelled"}
    assert all(statuses == {"failed"} for statuses in by_mode.values())
    reasons = {r.label: r.reason for r in sink.sessions if r.status == "failed"}
    assert reasons["driver"] is not None and reasons["driver"].startswith("RuntimeError: script")
    assert reasons["actor_init"] == "AttributeError: 'Session' object has no attribute 'broken'"
    assert reasons["actor_link"] == "AttributeError: 'Session' object has no attribute 'broken'"


async def test_cancelled_half_open_probe_frees_the_slot_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The exact leak: trip the breaker, let the HALF_OPEN probe be a session that hangs
    while connecting, cancel it; the next session must probe right away."""
    sink = ListSink()
    brk = breaker()
    async with fleet(("driver",)) as failing, fleet(("hang",)) as hanging:
        with trio.fail_after(GUARD_S):
            async with open_supervisor(
                sink=sink,
                breaker=brk,
                restart=RestartPolicy(RestartType.TEMPORARY),
                monitor=False,
                timeline_interval_s=None,
            ) as sup:
                for i in range(4):
                    await sup.start(failing(i), driver)
                await sup.wait_idle()
                assert brk.state is BreakerState.OPEN
                reopen_at = brk.reopen_at
                assert reopen_at is not None
                probe = await sup.start(hanging(10), driver)
                # planned after the cooldown: it finds the probe slot taken and waits
                follower = await sup.start(failing(11), driver, planned_start=reopen_at + 1.0)
                await trio.sleep_until(reopen_at + 2.0)
                await trio.testing.wait_all_tasks_blocked()
                assert probe.state == "connecting" and brk.probes_in_flight == 1
                assert follower.state == "pending"
                t_cancel = trio.current_time()
                probe.cancel()
                await follower.wait()
    assert probe.result is not None and probe.result.status == "cancelled"
    assert follower.result is not None and follower.result.status == "failed"
    # the follower was admitted the moment the probe was cancelled, not a cooldown later
    assert follower.result.late_start_ms == pytest.approx(
        (t_cancel - sup.t0 - follower.result.planned_start_s) * 1000.0, abs=1e-3
    )
    assert brk.outstanding == 0 and brk.probes_in_flight == 0


async def test_starts_dropped_while_waiting_for_the_breaker_return_their_grants(
    autojump_clock: trio.testing.MockClock, broken_actor: None
) -> None:
    """Open model: arrivals queue behind the OPEN breaker and are dropped as too late
    once admitted (the drop path must release the grant it was just given)."""
    sup, brk, sink, stats = await run_fleet(
        ("driver",),
        OpenModel(rate=4, duration_s=6),
        drop_after_ms=1000.0,
    )
    assert_books_balanced(sup, brk)
    assert brk.trips >= 1
    assert stats.dropped > 0 and stats.planned == 24
    dropped = [e for e in sink.events if e["kind"] == "start_dropped"]
    assert len(dropped) == stats.dropped
    assert stats.planned == stats.dropped + len({r.session_id for r in sink.sessions})


async def test_an_attempt_is_bounded_even_when_its_driver_never_returns(
    autojump_clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing a session that never finishes, or a driver that never returns: the
    attempt still ends ``max_duration + driver_grace`` after its planned start."""

    async def close_forever(self: Session) -> None:
        await trio.sleep_forever()

    async def stuck(session: Session) -> None:
        await trio.sleep_forever()

    monkeypatch.setattr(Session, "close", close_forever)
    async with fleet(("ok",)) as spec_for, open_supervisor(timeline_interval_s=None) as sup:
        handles = []
        for driver in (None, stuck):
            spec = attrs.evolve(spec_for(0), max_duration=30.0, driver_grace=1.0)
            handles.append(await sup.start(spec, driver, restart=RestartType.TEMPORARY))
        started = trio.current_time()
        with trio.fail_after(120):
            for handle in handles:
                await handle.wait()
        assert trio.current_time() - started == pytest.approx(31.0)
    for handle in handles:
        result = handle.result
        assert result is not None and result.status == "failed"
        assert result.failure is not None and result.failure.type == "MaxDurationExceeded"


async def test_a_wss_workload_builds_its_tls_context_before_its_clock_starts(
    autojump_clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading the CA store takes 15-65 ms of CPU: a ``wss`` workload awaits it (off the
    loop) before its plan's clock starts, so no start is late for it; a start on the
    supervisor itself never builds it on the loop (the connection does, in a thread)."""
    import orchestrator.supervisor.workload as workload_module
    import orchestrator.transport as transport
    import orchestrator.transport.connection as connection_module

    events: list[tuple[str, float]] = []

    async def slow_tls() -> None:
        events.append(("tls", trio.current_time()))
        await trio.sleep(1.0)  # far over --late-after-ms: starts after t0 only if t0 follows

    def on_the_loop() -> None:
        raise AssertionError("the TLS context was built on the event loop")

    monkeypatch.setattr(workload_module, "prepare_ssl_context", slow_tls)
    monkeypatch.setattr(connection_module, "default_ssl_context", on_the_loop)

    @asynccontextmanager
    async def refused(target: Target) -> AsyncIterator[Any]:
        events.append(("connect", trio.current_time()))
        raise ConnectFailed("refused", recoverable=False)
        yield  # pragma: no cover

    monkeypatch.setattr(transport, "open_connection", refused)
    wss = Target(url="wss://127.0.0.1/v1/realtime?model=gpt-realtime", dialect=Dialect.GA)
    with trio.fail_after(60):
        async with open_supervisor(timeline_interval_s=None) as sup:
            handle = await sup.start(SessionSpec(target=wss), restart=RestartType.TEMPORARY)
            await handle.wait()
            assert [e for e, _ in events] == ["connect"]  # no TLS build at a plain start
            events.clear()
            model = ClosedModel(concurrency=2, sessions=2)
            spec = SessionSpec(target=wss)
            load = Workload(model=model, spec=spec, restart=RestartType.TEMPORARY)
            stats = await sup.run_workload(load)
    assert [e for e, _ in events] == ["tls", "connect", "connect"]
    assert events[1][1] == events[0][1] + 1.0  # the clock started once the context was built
    assert stats.started == 2 and sup.late_starts == 0
