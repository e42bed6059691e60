"""Fleet-wide circuit breaker: trip, cooldown, half-open probes, close; trio waiting."""

from __future__ import annotations

import pytest
import trio

from orchestrator.supervisor.breaker import BreakerState, CircuitBreaker


def make(**kwargs: object) -> CircuitBreaker:
    params: dict = {
        "failure_threshold": 0.5,
        "window_s": 10.0,
        "min_samples": 4,
        "cooldown_s": 5.0,
        "half_open_probes": 1,
        "close_after": 1,
    }
    params.update(kwargs)
    return CircuitBreaker(**params)


def test_does_not_trip_below_min_samples_or_at_threshold() -> None:
    b = make()
    for t in (0.0, 0.1, 0.2):
        b.record(False, t)
    assert b.state is BreakerState.CLOSED  # 3 failures < min_samples 4
    b2 = make()
    for t, ok in ((0, False), (1, True), (2, False), (3, True)):
        b2.record(ok, t)
    assert b2.state is BreakerState.CLOSED  # 2/4 = 0.5 is not > 0.5
    assert b2.window_counts(3.0) == (4, 2)
    b2.record(False, 4.0)  # 3/5 > 0.5
    assert b2.state is BreakerState.OPEN
    assert b2.trips == 1


def test_window_slides_on_the_given_clock() -> None:
    b = make()
    b.record(False, 0.0)
    b.record(False, 1.0)
    b.record(False, 2.0)
    # At 11.0 the first two failures (t <= 1.0) are out of the 10 s window.
    b.record(True, 11.0)
    assert b.window_counts(11.0) == (2, 1)
    b.record(False, 11.5)
    assert b.state is BreakerState.CLOSED  # 2/3 fails but only 3 samples
    b.record(True, 11.6)
    assert b.state is BreakerState.CLOSED  # 2/4
    b.record(False, 11.7)
    assert b.state is BreakerState.OPEN  # 3/5


def tripped(at: float = 0.0, **kwargs: object) -> CircuitBreaker:
    b = make(**kwargs)
    for i in range(4):
        b.record(False, at + i * 0.001)
    assert b.state is BreakerState.OPEN
    return b


def test_open_refuses_until_cooldown_then_half_open_probe() -> None:
    b = tripped()
    assert b.reopen_at == pytest.approx(5.003)
    assert not b.allow(1.0)
    assert not b.allow(5.0)
    b.record(True, 4.0)  # outcome of a pre-trip session while OPEN: ignored
    assert b.poll(4.5) is BreakerState.OPEN
    assert b.allow(5.003)  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow(5.1)  # only one probe in flight
    b.record(True, 6.0)
    assert b.state is BreakerState.CLOSED
    assert b.window_counts(6.0) == (0, 0)  # closing starts a fresh window
    assert b.allow(6.0) and b.allow(6.0)


def test_failed_probe_reopens_for_another_cooldown() -> None:
    b = tripped()
    assert b.allow(6.0)
    b.record(False, 7.0)
    assert b.state is BreakerState.OPEN
    assert b.trips == 2
    assert not b.allow(11.9)
    assert b.reopen_at == 12.0
    assert b.allow(12.0)


def test_several_probes_and_successes_needed_to_close() -> None:
    b = tripped(half_open_probes=2, close_after=3)
    assert b.allow(5.1) and b.allow(5.1)
    assert not b.allow(5.1)
    b.record(True, 5.5)
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow(5.6)  # the freed slot
    b.record(True, 5.7)
    b.release(5.7)  # the third grant never connected
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow(5.8)
    b.record(True, 6.0)
    assert b.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"failure_threshold": 1.0}, "failure_threshold"),
        ({"window_s": 0}, "window_s"),
        ({"cooldown_s": -1}, "cooldown_s"),
        ({"min_samples": 0}, "min_samples"),
        ({"half_open_probes": 0}, "half_open_probes"),
        ({"close_after": 1.5}, "close_after"),
    ],
)
def test_rejects_bad_parameters(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        make(**kwargs)


async def test_wait_until_allowed_sleeps_through_cooldown(autojump_clock: trio.abc.Clock) -> None:
    b = tripped(at=0.0, cooldown_s=5.0)
    await trio.sleep(1.0)
    await b.wait_until_allowed()
    assert trio.current_time() == pytest.approx(5.003)
    assert b.state is BreakerState.HALF_OPEN


async def test_waiters_are_released_one_probe_at_a_time(autojump_clock: trio.abc.Clock) -> None:
    """Three tasks wait while OPEN; at the cooldown one probes; it succeeds 2 s later and
    the other two go through immediately; exact fake times."""
    b = tripped(at=0.0, cooldown_s=5.0)
    admitted: list[tuple[str, float]] = []

    async def connect(name: str, probe_ok: bool) -> None:
        await b.wait_until_allowed()
        admitted.append((name, trio.current_time()))
        await trio.sleep(2.0)
        b.record(probe_ok, trio.current_time())

    async with trio.open_nursery() as nursery:
        for name in ("a", "b", "c"):
            nursery.start_soon(connect, name, True)
    times = sorted(t for _, t in admitted)
    assert times == [pytest.approx(5.003), pytest.approx(7.003), pytest.approx(7.003)]
    assert b.state is BreakerState.CLOSED


async def test_failed_probe_makes_waiters_wait_another_cooldown(
    autojump_clock: trio.abc.Clock,
) -> None:
    b = tripped(at=0.0, cooldown_s=5.0)
    admitted: list[float] = []
    outcomes = iter([False, True, True])

    async def connect() -> None:
        await b.wait_until_allowed()
        admitted.append(trio.current_time())
        await trio.sleep(1.0)
        b.record(next(outcomes), trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(connect)
    # probe at 5.003 fails at 6.003 -> open until 11.003 -> probe succeeds at 12.003 -> close.
    assert admitted == [pytest.approx(5.003), pytest.approx(11.003), pytest.approx(12.003)]
    assert b.trips == 2


async def test_cancelled_waiter_takes_no_probe_slot(autojump_clock: trio.abc.Clock) -> None:
    b = tripped(at=0.0, cooldown_s=5.0)
    with trio.move_on_after(2.0) as scope:
        await b.wait_until_allowed()
    assert scope.cancelled_caught
    assert trio.current_time() == 2.0
    # Had the cancelled waiter taken the probe, this would be refused at the cooldown.
    await b.wait_until_allowed()
    assert trio.current_time() == pytest.approx(5.003)


async def test_wait_returns_immediately_when_closed(autojump_clock: trio.abc.Clock) -> None:
    b = make()
    await b.wait_until_allowed()
    assert trio.current_time() == 0.0
    assert b.state is BreakerState.CLOSED


# -- grant tokens: every grant settles exactly once; only real probes free probe slots


def test_grant_of_an_earlier_period_does_not_free_a_probe_slot() -> None:
    b = make()
    early = b.try_acquire(0.0)  # admitted while CLOSED
    assert early is not None and early.probe_period is None
    for i in range(4):
        b.record(False, 0.1 + i * 0.001)  # trip
    probe = b.try_acquire(5.2)
    assert probe is not None and b.probes_in_flight == 1
    early.release(5.3)  # an attempt admitted before the trip never happened
    assert b.probes_in_flight == 1  # it held no slot: it gives none back
    assert b.try_acquire(5.3) is None  # so no second probe gets through
    probe.release(5.4)
    assert b.probes_in_flight == 0 and b.outstanding == 0
    assert b.try_acquire(5.4) is not None


def test_grant_settles_once() -> None:
    b = make()
    grant = b.try_acquire(0.0)
    assert grant is not None and b.outstanding == 1
    grant.record(True, 1.0)
    assert b.outstanding == 0
    with pytest.raises(RuntimeError, match="settled twice"):
        grant.release(1.0)
    with pytest.raises(RuntimeError, match="settled twice"):
        grant.record(False, 1.0)
    assert b.outstanding == 0 and b.window_counts(1.0) == (1, 0)


async def test_admit_releases_on_cancel_and_on_error(autojump_clock: trio.abc.Clock) -> None:
    b = tripped(at=0.0, cooldown_s=5.0)
    with trio.move_on_after(6.0):  # the probe is granted at 5.003, then cancelled
        async with b.admit():
            assert b.probes_in_flight == 1
            await trio.sleep_forever()
    assert b.state is BreakerState.HALF_OPEN and b.probes_in_flight == 0 and b.outstanding == 0
    with pytest.raises(KeyError):
        async with b.admit():
            raise KeyError("attempt crashed")
    assert b.probes_in_flight == 0 and b.outstanding == 0
    async with b.admit() as grant:  # a recorded outcome is not released on top
        grant.record(True, trio.current_time())
    assert b.state is BreakerState.CLOSED and b.outstanding == 0
    assert trio.current_time() == pytest.approx(6.0)


async def test_admit_waiter_gets_the_slot_a_cancelled_probe_released(
    autojump_clock: trio.abc.Clock,
) -> None:
    b = tripped(at=0.0, cooldown_s=5.0)
    admitted: list[float] = []

    async def waiter() -> None:
        async with b.admit() as grant:
            admitted.append(trio.current_time())
            grant.record(False, trio.current_time())

    async with trio.open_nursery() as nursery:
        with trio.move_on_at(8.0):
            async with b.admit():  # the probe, cancelled at 8.0 without an outcome
                nursery.start_soon(waiter)
                await trio.sleep_forever()
    assert admitted == [pytest.approx(8.0)]  # at once, not a cooldown later
    assert b.state is BreakerState.OPEN and b.trips == 2 and b.outstanding == 0
