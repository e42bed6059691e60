"""Pacer tests: all on the autojump MockClock, so wake times are exact."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from orchestrator.session.pacer import Pacer, SleepPacer, Ticker


@asynccontextmanager
async def running_ticker(resolution: float = 0.010) -> AsyncIterator[Ticker]:
    """A started :class:`Ticker`; its task is cancelled when the block exits."""
    async with trio.open_nursery() as nursery:
        ticker: Ticker = await nursery.start(Ticker(resolution).run)
        yield ticker
        nursery.cancel_scope.cancel()


async def test_sleep_pacer_wakes_exactly_at_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pacer: Pacer = SleepPacer()
    t0 = trio.current_time()
    for n in range(1, 4):
        assert await pacer.wait_until(t0 + n * 0.1) == t0 + n * 0.1
    assert pacer.align(1.2345) == 1.2345


async def test_ticker_lone_waiter_wakes_at_its_own_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_ticker() as ticker:
        assert await ticker.wait_until(1.234) == 1.234
        assert await ticker.wait_until(1.5) == 1.5
        assert (ticker.ticks, ticker.wakes) == (2, 2)


async def test_bucket_mates_wake_together_at_latest_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    woke: dict[str, float] = {}

    async with running_ticker(resolution=0.010) as ticker:

        async def waiter(name: str, deadline: float) -> None:
            woke[name] = await ticker.wait_until(deadline)

        async with trio.open_nursery() as waiters:
            waiters.start_soon(waiter, "a", 0.101)
            waiters.start_soon(waiter, "b", 0.105)
            waiters.start_soon(waiter, "c", 0.112)  # next bucket
            waiters.start_soon(waiter, "d", 0.3)

    assert woke == {"a": 0.105, "b": 0.105, "c": 0.112, "d": 0.3}
    assert (ticker.ticks, ticker.wakes) == (3, 4)


async def test_wake_order_follows_deadlines_not_arrival(
    autojump_clock: trio.testing.MockClock,
) -> None:
    order: list[float] = []

    async with running_ticker(resolution=0.001) as ticker:

        async def waiter(deadline: float) -> None:
            await ticker.wait_until(deadline)
            order.append(deadline)

        async with trio.open_nursery() as waiters:
            for deadline in (0.9, 0.2, 0.5, 0.05, 0.7):
                waiters.start_soon(waiter, deadline)
                await trio.testing.wait_all_tasks_blocked()
    assert order == [0.05, 0.2, 0.5, 0.7, 0.9]


async def test_earlier_deadline_added_while_ticker_sleeps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_ticker() as ticker, trio.open_nursery() as nursery:
        late: list[float] = []

        async def late_waiter() -> None:
            late.append(await ticker.wait_until(5.0))

        nursery.start_soon(late_waiter)
        await trio.testing.wait_all_tasks_blocked()
        # The ticker now sleeps towards 5.0; an earlier deadline must pull it forward.
        assert await ticker.wait_until(1.0) == 1.0
        assert late == []
        await trio.sleep_until(5.5)
        assert late == [5.0]


async def test_aligned_timelines_have_zero_lateness(autojump_clock: trio.testing.MockClock) -> None:
    # trio's real clock starts at a large random offset; float noise at that magnitude
    # must not split one grid instant across two buckets.
    autojump_clock.jump(168707.70498528992)
    lateness: list[float] = []
    async with running_ticker(resolution=0.010) as ticker:

        async def session(start_delay: float) -> None:
            await trio.sleep(start_delay)
            t0 = ticker.align(trio.current_time())
            for n in range(20):
                planned = t0 + n * 0.1
                lateness.append(await ticker.wait_until(planned) - planned)

        async with trio.open_nursery() as sessions:
            for i in range(10):
                sessions.start_soon(session, 0.0137 * i)
    assert len(lateness) == 200
    assert max(abs(x) for x in lateness) < 1e-9


async def test_random_deadlines_never_early_and_at_most_one_resolution_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rng = random.Random(1234)
    resolution = 0.010
    results: list[tuple[float, float]] = []
    async with running_ticker(resolution=resolution) as ticker:

        async def session(phase: float) -> None:
            t0 = trio.current_time() + phase
            for n in range(30):
                planned = t0 + n * 0.1
                results.append((planned, await ticker.wait_until(planned)))

        async with trio.open_nursery() as sessions:
            for _ in range(50):
                sessions.start_soon(session, rng.uniform(0, 0.1))
    assert len(results) == 1500
    assert all(planned <= actual <= planned + resolution for planned, actual in results)
    # 50 sessions in 10 buckets per 100 ms: buckets are shared, so far fewer wake-ups.
    assert ticker.wakes == 1500
    assert ticker.ticks <= 30 * 11


async def test_cancelled_waiter_is_removed_and_ticker_does_not_wake_for_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_ticker() as ticker:
        with trio.move_on_after(0.5) as scope:
            await ticker.wait_until(1.0)
        assert scope.cancelled_caught
        assert trio.current_time() == 0.5
        # The bucket was emptied: the ticker must not wake at 1.0 for nobody.
        assert await ticker.wait_until(2.0) == 2.0
        assert (ticker.ticks, ticker.wakes) == (1, 1)


async def test_cancelling_one_bucket_mate_keeps_the_other(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_ticker() as ticker, trio.open_nursery() as nursery:
        woke: list[float] = []

        async def stayer() -> None:
            woke.append(await ticker.wait_until(0.103))

        leaver_scope = trio.CancelScope()
        left: list[bool] = []

        async def leaver() -> None:
            with leaver_scope:
                await ticker.wait_until(0.107)
            left.append(leaver_scope.cancelled_caught)

        nursery.start_soon(stayer)
        nursery.start_soon(leaver)
        await trio.testing.wait_all_tasks_blocked()
        leaver_scope.cancel()
        await trio.sleep(1)
        assert left == [True]
        # Bucket wake time stays at the latest deadline ever added (0.107): never early.
        assert woke == [0.107]
        assert ticker.wakes == 1


async def test_past_deadline_returns_immediately(autojump_clock: trio.testing.MockClock) -> None:
    async with running_ticker() as ticker:
        await trio.sleep(1)
        assert await ticker.wait_until(0.5) == 1.0
        assert ticker.ticks == 0


async def test_wait_on_ticker_not_running_raises() -> None:
    with pytest.raises(trio.ClosedResourceError):
        await Ticker().wait_until(1.0)


async def test_stopped_ticker_releases_waiters_with_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[BaseException] = []
    async with trio.open_nursery() as outer:
        ticker_scope = trio.CancelScope()
        ticker = Ticker()

        async def run_ticker(task_status: trio.TaskStatus[Ticker]) -> None:
            with ticker_scope:
                await ticker.run(task_status=task_status)

        await outer.start(run_ticker)

        async def waiter() -> None:
            try:
                await ticker.wait_until(10.0)
            except trio.ClosedResourceError as exc:
                errors.append(exc)

        outer.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        ticker_scope.cancel()
    assert len(errors) == 1
    assert trio.current_time() < 10.0
    with pytest.raises(trio.ClosedResourceError):
        await ticker.wait_until(20.0)
    with pytest.raises(RuntimeError, match="already started"):
        await ticker.run()


def test_resolution_validated() -> None:
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="resolution"):
            Ticker(bad)


def test_align_rounds_up_to_the_grid() -> None:
    ticker = Ticker(0.010)
    assert ticker.align(1.0) == pytest.approx(1.0)
    assert ticker.align(1.0001) == pytest.approx(1.01)
    assert ticker.align(0.3) == pytest.approx(0.3)  # 0.3 / 0.01 = 29.999999999999996
