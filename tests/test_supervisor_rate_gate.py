"""``--respect-rate-limits``: the supervisor's start gate (:mod:`orchestrator.supervisor.
rate_gate`), and a supervisor on memory streams against a mock server whose token budget
bites: without the gate sessions are refused with ``rate_limit_exceeded``; with it none
are, and the held starts are counted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from mockserver_helpers import FAST
from session_helpers import voice_server

from orchestrator.metrics import build_summary
from orchestrator.mockserver import ServerConfig
from orchestrator.protocol import RateLimit
from orchestrator.scenario import BuiltinConversation
from orchestrator.session.actor import open_session
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import ClosedModel, ListSink, Workload, open_supervisor
from orchestrator.supervisor.rate_gate import RateGate
from orchestrator.transport import HandshakeRejected

BUDGET = 3000  # tokens per minute: a few sessions' worth


def _tokens(limit: int, remaining: int, reset: float) -> list[RateLimit]:
    return [RateLimit(name="tokens", limit=limit, remaining=remaining, reset_seconds=reset)]


def test_gate_holds_until_the_bucket_refills_past_the_low_water() -> None:
    gate = RateGate(low_fraction=0.2)
    assert gate.open_at(0.0) == float("-inf")
    gate.update(_tokens(600, 60, 54.0), 10.0)  # 540 short: refills at 10/s
    assert gate.open_at(10.0) == pytest.approx(16.0)  # 60 -> 120 (20 %) takes 6 s
    gate.turn_done(100)  # a turn finished after the update: 100 more to refill
    assert gate.open_at(10.0, running=2) == pytest.approx(10.0 + (120 + 200 - 60 + 100) / 10)
    gate.update(_tokens(600, 0, 90.0), 20.0)  # in debt: remaining 0, reset past a minute
    assert gate.spent_since == 0.0
    assert gate.open_at(20.0) == pytest.approx(20.0 + (120 + 300) / 10)


def test_gate_waits_for_try_again_after_a_refusal() -> None:
    gate = RateGate()
    gate.refused("Rate limit reached … Please try again in 6.946s. Visit …", 1.0)
    assert gate.open_at(1.0) == pytest.approx(7.946)
    gate.refused("… Please try again in 250ms.", 1.0)
    assert gate.open_at(1.0) == pytest.approx(7.946)
    assert gate.figures()["rate_limit_refusals"] == 2
    with pytest.raises(ValueError):
        RateGate(low_fraction=0.0)


async def test_gate_wait_counts_held_starts(autojump_clock: trio.testing.MockClock) -> None:
    gate = RateGate()
    assert not await gate.wait_open()
    gate.update(_tokens(600, 0, 60.0), trio.current_time())
    t0 = trio.current_time()
    assert await gate.wait_open()
    assert trio.current_time() - t0 == pytest.approx(12.0)
    assert gate.figures() == {"held_starts": 1, "held_s_total": 12.0, "rate_limit_refusals": 0}


def limited_server() -> AbstractAsyncContextManager[Callable[[], SessionSpec]]:
    config = ServerConfig(port=0, latency=FAST, rate_limit_tokens_per_min=BUDGET)
    return voice_server(config, max_duration=30)


async def _run(gate: RateGate | None) -> dict[str, Any]:
    sink = ListSink()
    conversation = BuiltinConversation(speech_ms=600, lead_ms=100, tail_ms=100)
    async with limited_server() as make_spec:
        async with open_supervisor(sink=sink, timeline_interval_s=None, rate_gate=gate) as sup:
            await sup.run_workload(
                Workload(
                    model=ClosedModel(concurrency=3, sessions=24),
                    spec=make_spec(),
                    driver=conversation,
                )
            )
            held = gate.held_starts if gate is not None else None
    return build_summary(sink.turns, sink.sessions, held_starts=held)


async def test_respecting_rate_limits_avoids_rate_limit_exceeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bitten = (await _run(None))["totals"]
    assert bitten["rate_limited_sessions"] > 0 and bitten["held_starts"] is None
    gate = RateGate()
    summary = await _run(gate)
    totals = summary["totals"]
    assert totals["sessions_total"] == 24 and totals["sessions_completed"] == 24
    assert totals["rate_limited_turns"] == 0 and totals["rate_limited_sessions"] == 0
    assert "rate_limit_exceeded" not in summary["turns"]["by_error_code"]
    assert totals["held_starts"] > 0 and gate.held_s_total > 0
    assert totals["late_starts"] == 0 and totals["dropped_starts"] == 0


async def test_sessions_record_the_rate_limit_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = ListSink()
    conversation = BuiltinConversation(speech_ms=600, lead_ms=100, tail_ms=100)
    async with limited_server() as make_spec:
        async with open_supervisor(
            sink=sink, timeline_interval_s=None, rate_gate=RateGate()
        ) as sup:
            await sup.run_workload(
                Workload(
                    model=ClosedModel(concurrency=1, sessions=2),
                    spec=make_spec(),
                    driver=conversation,
                )
            )
    for result in sink.sessions:
        assert result.rate_limits is not None and result.rate_limits["tokens_limit"] == BUDGET
        assert 0 <= result.rate_limits["tokens_remaining"] < BUDGET
        assert result.rate_limited == 0


async def test_a_429_handshake_is_retried_after_its_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    attempts: list[float] = []
    async with limited_server() as make_spec:
        spec = make_spec()
        inner = spec.connect
        assert inner is not None

        @asynccontextmanager
        async def connect() -> AsyncIterator[Any]:
            attempts.append(trio.current_time())
            if len(attempts) == 1:
                raise HandshakeRejected(429, headers=(("retry-after", "7"),))
            async with inner() as conn:
                yield conn

        async with open_session(attrs.evolve(spec, connect=connect)) as session:
            await session.create_response()
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 7.0


async def test_a_held_start_is_dropped_by_drain(autojump_clock: trio.testing.MockClock) -> None:
    """A start the gate holds (here for a minute) is released by drain at once: the
    session is dropped, nothing waits for the gate to open."""
    gate = RateGate()
    gate.update(_tokens(600, 0, 60.0), trio.current_time())  # empty: held ~12 s
    async with limited_server() as make_spec:
        async with open_supervisor(
            sink=ListSink(), timeline_interval_s=None, rate_gate=gate
        ) as sup:
            handle = await sup.start(make_spec(), BuiltinConversation())
            await trio.sleep(1)
            assert handle.state == "pending"
            t0 = trio.current_time()
            with trio.fail_after(1):
                await sup.drain(0)
            assert trio.current_time() - t0 < 1
    assert handle.result is None or handle.result.status != "completed"
    assert gate.held_starts == 0  # never opened
