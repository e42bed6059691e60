"""Self-monitoring: loop-lag detection on MockClock, lag math, CPU sampling, validity."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from orchestrator.supervisor.monitor import CpuSampler, LagHistogram, LagRecorder, LoopMonitor
from orchestrator.supervisor.snapshot import RateCounter
from orchestrator.supervisor.validity import Validity, ValidityLimits, judge

# ------------------------------------------------------------------------ pure lag math


def test_histogram_exact_small_values_and_conservative_percentiles() -> None:
    h = LagHistogram()
    assert h.percentile_ms(99) is None and h.max_ms is None
    for _ in range(98):
        h.record(0.0)
    h.record(0.010)
    h.record(0.250)
    assert h.count == 100
    assert h.percentile_ms(50) == 0.0
    assert h.percentile_ms(99) == pytest.approx(10.0, rel=0.008)
    assert h.percentile_ms(99) >= 10.0  # never under-stated
    assert h.percentile_ms(100) == pytest.approx(250.0)  # capped at the exact max
    assert h.max_ms == pytest.approx(250.0)
    h.record(-1.0)  # negative lag (clock noise) counts as zero
    assert h.count == 101 and h.percentile_ms(1) == 0.0


def test_histogram_relative_error_is_bounded() -> None:
    for seconds in (0.000127, 0.0013, 0.0371, 0.5, 3.7, 1234.5):
        h = LagHistogram()
        h.record(seconds)
        h.record(1e6)  # a larger max so the cap does not hide the bucket edge
        p = h.percentile_ms(50)
        assert p is not None
        assert seconds * 1e3 <= p <= seconds * 1e3 * 1.008 + 1e-3


def test_recorder_backfills_ticks_swallowed_by_a_stall() -> None:
    r = LagRecorder(interval_s=0.1, recent_s=5.0)
    # On time: next tick is planned + interval.
    assert r.observe(0.1, 0.1) == pytest.approx(0.2)
    # Tick planned at 0.2 runs at 0.55: ticks at 0.3, 0.4, 0.5 were swallowed.
    nxt = r.observe(0.2, 0.55)
    assert nxt == pytest.approx(0.6)
    h = r.histogram
    assert h.count == 5  # 0, 0.35, and backfilled 0.25, 0.15, 0.05
    assert h.max_ms == pytest.approx(350.0)
    assert h.percentile_ms(20) == 0.0
    assert h.percentile_ms(40) == pytest.approx(50.0, rel=0.008)
    assert h.percentile_ms(60) == pytest.approx(150.0, rel=0.008)
    assert r.recent_max_ms(0.55) == pytest.approx(350.0)
    assert r.recent_max_ms(5.6) == 0.0  # the stall left the 5 s window
    r.observe(0.6, 0.62)
    assert r.recent_max_ms(5.6) == pytest.approx(20.0)


def test_recorder_backfill_is_capped() -> None:
    r = LagRecorder(interval_s=0.1, max_backfill=10)
    nxt = r.observe(0.1, 1000.0)
    assert nxt > 1000.0 and nxt <= 1000.1 + 1e-9
    assert r.histogram.count == 11
    assert r.histogram.max_ms == pytest.approx(999_900.0)


# ---------------------------------------------------------------- the monitor task (trio)


async def test_monitor_ticks_on_absolute_deadlines_without_lag(
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitor = LoopMonitor(interval_s=0.1, cpu=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        await trio.sleep(1.05)
        nursery.cancel_scope.cancel()
    snap = monitor.snapshot()
    assert snap.samples == 10  # ticks at 0.1 .. 1.0
    assert snap.lag_p50_ms == 0.0 and snap.lag_p99_ms == 0.0 and snap.lag_max_ms == 0.0
    assert snap.lag_recent_max_ms == 0.0
    assert snap.cpu_percent is None


async def test_monitor_detects_a_task_that_blocks_the_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A task hogs the loop for 350 ms without yielding (``MockClock.jump`` advances time
    synchronously, exactly what a blocking call looks like to the scheduler)."""
    wakeups: list[float] = []

    class SpyRecorder(LagRecorder):
        def observe(self, planned: float, actual: float) -> float:
            wakeups.append(actual)
            return super().observe(planned, actual)

    monitor = LoopMonitor(interval_s=0.1, recent_s=2.0, cpu=None)
    monitor.recorder = SpyRecorder(interval_s=0.1, recent_s=2.0)

    async def hog() -> None:
        await trio.sleep_until(0.45)
        autojump_clock.jump(0.35)  # blocks the loop from 0.45 to 0.80

    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        nursery.start_soon(hog)
        await trio.sleep_until(1.05)
        snap_after_stall = monitor.snapshot()
        nursery.cancel_scope.cancel()

    # The tick planned at 0.5 ran at 0.8 (300 ms late); those planned at 0.6, 0.7 and 0.8
    # were swallowed and are recorded 200, 100 and 0 ms late; then back on time at 0.9, 1.0.
    assert wakeups == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.8, 0.9, 1.0])
    snap = monitor.snapshot()
    assert snap.samples == 10
    assert snap.lag_max_ms == pytest.approx(300.0)
    assert snap.lag_p99_ms == pytest.approx(300.0)
    assert snap.lag_p50_ms == 0.0
    assert snap_after_stall.lag_recent_max_ms == pytest.approx(300.0)
    assert monitor.snapshot(now=2.9).lag_recent_max_ms == 0.0
    valid, reasons = judge(snap.lag_p99_ms, None)
    assert not valid and "event-loop lag p99 300.0 ms > limit 50 ms" in reasons[0]


async def test_monitor_with_an_injected_clock(autojump_clock: trio.testing.MockClock) -> None:
    """The monitor measures on the clock it is given: a clock that loses 40 ms per tick
    behind trio's makes every tick 40 ms late."""
    stall = [0.0]

    def clock() -> float:
        return trio.current_time() + stall[0]

    monitor = LoopMonitor(interval_s=0.1, clock=clock, cpu=None)

    async def drift() -> None:
        # Right after each tick, jump the monitor's clock 40 ms: the next wake-up (trio time
        # computed from the remaining time on the monitor clock) is then 40 ms late.
        for _ in range(5):
            await trio.sleep(0.1)
            stall[0] += 0.04

    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        await trio.sleep(0.01)
        nursery.start_soon(drift)
        await trio.sleep(0.6)
        nursery.cancel_scope.cancel()
    snap = monitor.snapshot()
    assert snap.samples >= 5
    assert snap.lag_max_ms == pytest.approx(40.0)
    assert 0.0 < snap.lag_p50_ms <= 40.0 * 1.008  # type: ignore[operator]


async def test_cancelled_monitor_keeps_consistent_figures(
    autojump_clock: trio.testing.MockClock,
) -> None:
    monitor = LoopMonitor(interval_s=0.25, cpu=None)
    with trio.move_on_after(1.1):
        await monitor.run()
    assert trio.current_time() == pytest.approx(1.1)
    assert monitor.snapshot().samples == 4


async def test_monitor_samples_cpu_each_tick(autojump_clock: trio.testing.MockClock) -> None:
    # Wall time follows the fake clock; the process burns 25% of a core.
    sampler = CpuSampler(cpu_clock=lambda: 0.25 * trio.current_time(), wall_clock=trio.current_time)
    monitor = LoopMonitor(interval_s=0.1, cpu=sampler)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        await trio.sleep(0.55)
        nursery.cancel_scope.cancel()
    snap = monitor.snapshot()
    assert snap.cpu_percent == pytest.approx(25.0)
    assert snap.cpu_percent_max == pytest.approx(25.0)
    assert snap.cpu_percent_mean == pytest.approx(25.0)


def test_cpu_sampler_percent_of_one_core() -> None:
    cpu = iter([1.0, 1.05, 1.35, 1.35])
    wall = iter([10.0, 10.1, 10.4, 10.4])
    s = CpuSampler(cpu_clock=lambda: next(cpu), wall_clock=lambda: next(wall))
    assert s.sample() is None
    assert s.sample() == pytest.approx(50.0)
    assert s.sample() == pytest.approx(100.0)
    assert s.sample() is None  # no wall time passed
    assert s.max_percent == pytest.approx(100.0)
    assert s.mean_percent == pytest.approx(87.5)


def test_cpu_sampler_real_clocks_measure_busy_work() -> None:
    s = CpuSampler()
    s.sample()
    x = 0
    for i in range(200_000):
        x += i * i
    pct = s.sample()
    assert pct is not None and pct > 0


# -------------------------------------------------------------------------------- judge


def test_judge_validity() -> None:
    assert judge(3.0, 12.0) == Validity(True, [])
    assert judge(None, None).valid
    assert judge(float("nan"), 50.0).valid  # not measured; exactly at the limit is fine
    valid, reasons = judge(51.0, 80.0)
    assert not valid and len(reasons) == 2
    assert "event-loop lag p99 51.0 ms > limit 50 ms" in reasons[0]
    assert "audio pacer lateness p99 80.0 ms > limit 50 ms" in reasons[1]
    assert "bottleneck" in reasons[0]
    strict = ValidityLimits(loop_lag_p99_ms=5, pacer_p99_ms=10)
    assert judge(6.0, 9.0, strict) == (False, [judge(6.0, 9.0, strict).reasons[0]])
    assert judge(5.0, 10.0, strict).valid
    with pytest.raises(ValueError, match="ValidityLimits.pacer_p99_ms"):
        ValidityLimits(pacer_p99_ms=-1)


def test_live_figures_keep_fixed_memory_over_a_long_run() -> None:
    """Two simulated hours of monitor ticks and session starts (10/s): the lag recorder's
    recent-max window and the start-rate counter keep only their windows, whatever the
    run's length, and the figures they report stay exact."""
    recorder = LagRecorder(interval_s=0.1, recent_s=5.0)
    starts = RateCounter(window_s=10.0)
    sizes: list[tuple[int, int]] = []
    planned = 0.1
    for i in range(72_000):
        lag = 0.040 if i % 1000 == 500 else 0.002 * (i % 3)  # jittery, now and then a stall
        actual = planned + lag
        starts.add(actual)
        planned = recorder.observe(planned, actual)
        if i in (7_199, 71_999):  # after 12 minutes and after 2 hours
            sizes.append((len(recorder._recent), len(starts._times)))
    assert sizes[0] == sizes[1]  # same memory after 2 h as after 12 min
    assert sizes[1][0] <= 50 and sizes[1][1] <= 101  # one window (5 s, 10 s) of ticks at most
    assert recorder.histogram.count == 72_000
    assert recorder.histogram.max_ms == pytest.approx(40.0)
    assert recorder.histogram.percentile_ms(99) == pytest.approx(4.0, rel=0.01)
    assert recorder.recent_max_ms(actual) == pytest.approx(4.0)  # the stall was > 5 s ago
    assert starts.rate(actual) == pytest.approx(10.0, rel=0.01)
