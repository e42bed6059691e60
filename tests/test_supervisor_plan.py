"""Load-shape planners: exact arrival times, seeded Poisson, closed-model slots, lateness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.supervisor.plan import (
    ClosedModel,
    OpenModel,
    PlanError,
    PlannedStart,
    StartDecision,
    classify_start,
    decide_start,
)

# ----------------------------------------------------------------------------- open model


def test_constant_rate_gives_exactly_rate_times_duration_starts() -> None:
    times = OpenModel(rate=20, duration_s=10).arrival_times()
    assert times.size == 200
    assert times[0] == 0.0
    assert times[1] == pytest.approx(0.05, abs=1e-12)
    assert times[-1] == pytest.approx(9.95, abs=1e-12)
    np.testing.assert_allclose(times, np.arange(200) * 0.05, rtol=0, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=500),
    duration=st.integers(min_value=1, max_value=60),
)
def test_integer_rate_times_duration_is_the_exact_count(rate: int, duration: int) -> None:
    times = OpenModel(rate=rate, duration_s=duration).arrival_times()
    assert times.size == rate * duration
    assert times[-1] < duration
    assert np.all(np.diff(times) > 0)


def test_fractional_expected_count_rounds_up_to_include_the_arrival_at_zero() -> None:
    # Lambda(1.0) = 2.5: arrivals at n = 0, 1, 2 -> 0, 0.4, 0.8
    times = OpenModel(rate=2.5, duration_s=1.0).arrival_times()
    np.testing.assert_allclose(times, [0.0, 0.4, 0.8])


def test_ramp_integration_is_exact() -> None:
    model = OpenModel(rate=10, duration_s=10, rate_to=30)
    times = model.arrival_times()
    # Lambda(t) = 10 t + t^2, Lambda(10) = 200.
    assert model.expected_arrivals() == pytest.approx(200.0)
    assert times.size == 200
    # The n-th arrival is exactly where Lambda reaches n.
    np.testing.assert_allclose(10 * times + times**2, np.arange(200), rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.cumulative(times), np.arange(200), rtol=0, atol=1e-9)
    # Density: arrivals in [a, b) = number of integers in [Lambda(a), Lambda(b)).
    assert np.count_nonzero(times < 4.5) == 66  # Lambda(4.5) = 65.25 -> n = 0..65
    assert np.count_nonzero((times >= 4.5) & (times < 9.5)) == 186 - 66  # Lambda(9.5) = 185.25
    # And the gaps shrink as the rate ramps: 1 / r(t) locally.
    gaps = np.diff(times)
    assert np.all(np.diff(gaps) < 0)
    mid = times[100]
    assert gaps[100] == pytest.approx(1 / model.rate_at(mid), rel=0.01)


def test_ramp_then_plateau_and_ramp_down() -> None:
    up = OpenModel(rate=0, duration_s=10, rate_to=20, ramp_s=5)
    # Lambda(5) = 50 on the ramp, then 20/s for 5 s = 100 more.
    times = up.arrival_times()
    assert times.size == 150
    assert times[0] == 0.0
    assert times[1] == pytest.approx(math.sqrt(2 * 5 / 20))  # 2 t^2 = 1 at k = 4
    plateau = times[times >= 5.0]
    np.testing.assert_allclose(np.diff(plateau), 0.05, atol=1e-9)
    assert up.rate_at(2.5) == 10.0 and up.rate_at(7) == 20.0 and up.rate_at(10) == 0.0

    down = OpenModel(rate=30, duration_s=10, rate_to=0)
    times = down.arrival_times()
    assert down.expected_arrivals() == pytest.approx(150.0)
    assert times.size == 150
    assert times[-1] < 10.0
    np.testing.assert_allclose(down.cumulative(times), np.arange(150), atol=1e-9)


def test_zero_rate_plans_nothing_and_sessions_caps() -> None:
    assert OpenModel(rate=0, duration_s=10).arrival_times().size == 0
    capped = OpenModel(rate=100, duration_s=100, sessions=5000)
    times = capped.arrival_times()
    assert times.size == 5000  # spans several internal chunks
    np.testing.assert_allclose(times, np.arange(5000) / 100, atol=1e-9)
    starts = list(capped.starts())
    assert len(starts) == 5000
    assert starts[4999] == PlannedStart(index=4999, at=times[4999], slot=None)


def test_poisson_is_seeded_and_has_the_planned_mean() -> None:
    model = OpenModel(rate=50, duration_s=400, poisson=True, seed=7)
    a = model.arrival_times()
    b = OpenModel(rate=50, duration_s=400, poisson=True, seed=7).arrival_times()
    c = OpenModel(rate=50, duration_s=400, poisson=True, seed=8).arrival_times()
    np.testing.assert_array_equal(a, b)
    assert a.size != c.size or not np.array_equal(a, c)
    # 20000 expected arrivals: count within 4 sigma, mean gap within 2%.
    assert abs(a.size - 20000) < 4 * math.sqrt(20000)
    assert np.diff(a).mean() == pytest.approx(1 / 50, rel=0.02)
    # Exponential gaps: coefficient of variation ~ 1 (deterministic would be 0).
    gaps = np.diff(a)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)
    assert a[0] > 0 and a[-1] < 400 and np.all(gaps >= 0)
    assert [s.at for s in model.starts()] == a.tolist()


def test_poisson_ramp_follows_the_rate_function() -> None:
    model = OpenModel(rate=10, duration_s=200, rate_to=90, poisson=True, seed=3)
    times = model.arrival_times()
    # Lambda(t) = 10 t + 0.2 t^2 = 1000, 3000, 6000, 10000 at t = 50, 100, 150, 200.
    counts, _ = np.histogram(times, bins=[0, 50, 100, 150, 200])
    for got, expected in zip(counts, [1000, 2000, 3000, 4000], strict=True):
        assert abs(got - expected) < 4 * math.sqrt(expected)
    # Time-rescaled arrivals are a unit-rate Poisson process: Exp(1) gaps.
    rescaled_gaps = np.diff(model.cumulative(times))
    assert rescaled_gaps.mean() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rate": -1, "duration_s": 1}, "OpenModel.rate"),
        ({"rate": 1, "duration_s": 0}, "OpenModel.duration_s"),
        ({"rate": 1, "duration_s": math.inf}, "OpenModel.duration_s"),
        ({"rate": 1, "duration_s": 1, "rate_to": -2}, "OpenModel.rate_to"),
        ({"rate": 1, "duration_s": 1, "ramp_s": 2}, "OpenModel.ramp_s needs rate_to"),
        ({"rate": 1, "duration_s": 1, "rate_to": 2, "ramp_s": 0}, "OpenModel.ramp_s"),
        ({"rate": 1, "duration_s": 1, "max_concurrency": 0}, "OpenModel.max_concurrency"),
        ({"rate": 1, "duration_s": 1, "sessions": 1.5}, "OpenModel.sessions"),
        ({"rate": 1, "duration_s": 1, "seed": -1}, "OpenModel.seed"),
    ],
)
def test_open_model_rejects_bad_parameters_by_name(kwargs: dict, needle: str) -> None:
    with pytest.raises(PlanError, match=needle):
        OpenModel(**kwargs)


# --------------------------------------------------------------------------- closed model


def test_closed_initial_starts_are_spread_linearly_over_the_ramp() -> None:
    plan = ClosedModel(concurrency=4, ramp_up_s=2.0).plan()
    starts = plan.initial_starts()
    assert [(s.index, s.slot, s.at) for s in starts] == [
        (0, 0, 0.0),
        (1, 1, 0.5),
        (2, 2, 1.0),
        (3, 3, 1.5),
    ]
    assert plan.active_slots == {0, 1, 2, 3}
    with pytest.raises(RuntimeError, match="already called"):
        plan.initial_starts()


def test_closed_without_ramp_starts_all_at_zero_and_restarts_at_end_time() -> None:
    plan = ClosedModel(concurrency=3).plan()
    assert [s.at for s in plan.initial_starts()] == [0.0, 0.0, 0.0]
    nxt = plan.next_start(1, ended_at=4.25)
    assert nxt == PlannedStart(index=3, at=4.25, slot=1)
    assert plan.planned == 4
    assert not plan.finished


def test_closed_sessions_total_is_respected() -> None:
    plan = ClosedModel(concurrency=3, sessions=5).plan()
    assert len(plan.initial_starts()) == 3
    assert plan.next_start(0, 1.0) == PlannedStart(3, 1.0, 0)
    assert plan.next_start(2, 1.5) == PlannedStart(4, 1.5, 2)
    assert plan.next_start(1, 2.0) is None  # the 6th would exceed sessions=5
    assert plan.active_slots == {0, 2}
    assert plan.next_start(0, 3.0) is None
    assert plan.next_start(2, 3.0) is None
    assert plan.finished and plan.planned == 5
    with pytest.raises(ValueError, match="slot 1 has no running session"):
        plan.next_start(1, 4.0)


def test_closed_fewer_sessions_than_slots() -> None:
    plan = ClosedModel(concurrency=10, ramp_up_s=10, sessions=2).plan()
    assert [(s.slot, s.at) for s in plan.initial_starts()] == [(0, 0.0), (1, 1.0)]
    with pytest.raises(ValueError, match="slot 5"):
        plan.next_start(5, 2.0)


def test_closed_duration_ends_planning() -> None:
    plan = ClosedModel(concurrency=4, ramp_up_s=8.0, duration_s=5.0).plan()
    # slots start at 0, 2, 4, 6: the last is at/after duration and never starts.
    assert [s.at for s in plan.initial_starts()] == [0.0, 2.0, 4.0]
    assert plan.next_start(0, 4.99) == PlannedStart(3, 4.99, 0)
    assert plan.next_start(0, 5.0) is None
    assert plan.next_start(1, 7.0) is None
    assert plan.next_start(2, 5.5) is None
    assert plan.finished


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"concurrency": 0}, "ClosedModel.concurrency"),
        ({"concurrency": 2, "ramp_up_s": -1}, "ClosedModel.ramp_up_s"),
        ({"concurrency": 2, "sessions": 0}, "ClosedModel.sessions"),
        ({"concurrency": 2, "duration_s": 0}, "ClosedModel.duration_s"),
        ({"concurrency": 2, "duration_s": math.nan}, "ClosedModel.duration_s"),
    ],
)
def test_closed_model_rejects_bad_parameters_by_name(kwargs: dict, needle: str) -> None:
    with pytest.raises(PlanError, match=needle):
        ClosedModel(**kwargs)


async def test_closed_plan_driven_on_the_mock_clock(autojump_clock: trio.abc.Clock) -> None:
    """A closed model with sessions of fixed length 3 s keeps exactly C running."""
    plan = ClosedModel(concurrency=2, ramp_up_s=1.0, duration_s=10.0).plan()
    started: list[tuple[float, int]] = []

    async def run_slot(start: PlannedStart) -> None:
        current: PlannedStart | None = start
        while current is not None:
            await trio.sleep_until(current.at)
            started.append((trio.current_time(), current.slot or 0))
            await trio.sleep(3.0)
            current = plan.next_start(current.slot or 0, trio.current_time())

    async with trio.open_nursery() as nursery:
        for s in plan.initial_starts():
            nursery.start_soon(run_slot, s)
    assert started == [
        (0.0, 0),
        (0.5, 1),
        (3.0, 0),
        (3.5, 1),
        (6.0, 0),
        (6.5, 1),
        (9.0, 0),
        (9.5, 1),
    ]
    assert trio.current_time() == 12.5
    assert plan.finished


# ---------------------------------------------------------------------------- lateness


def test_classify_start_thresholds() -> None:
    assert classify_start(1.0, 1.0, 10, 1000) == ("on_time", 0.0)
    status, late_ms = classify_start(1.0, 1.010, 10, 1000)
    assert status == "on_time" and late_ms == pytest.approx(10.0)
    status, late_ms = classify_start(1.0, 1.5, 10, 1000)
    assert (status, late_ms) == ("late", pytest.approx(500.0))
    assert classify_start(1.0, 2.5, 10, 1000).status == "dropped"
    assert classify_start(1.0, 100.0, 10, None).status == "late"  # no drop limit
    assert classify_start(1.0, 0.999, 10, None) == ("on_time", pytest.approx(-1.0))
    with pytest.raises(ValueError, match="drop_after_ms"):
        classify_start(0, 0, 10, 5)
    with pytest.raises(ValueError, match="late_after_ms"):
        classify_start(0, 0, -1, None)


def test_decide_start_drops_for_max_concurrency_even_when_on_time() -> None:
    d = decide_start(2.0, 2.0, running=5, max_concurrency=5, late_after_ms=10, drop_after_ms=None)
    assert d == StartDecision("dropped", 0.0, "max_concurrency")
    assert not d.started
    d = decide_start(2.0, 2.0, running=4, max_concurrency=5, late_after_ms=10, drop_after_ms=None)
    assert d == StartDecision("on_time", 0.0) and d.started
    d = decide_start(2.0, 4.0, running=0, max_concurrency=None, late_after_ms=10, drop_after_ms=1e3)
    assert d.status == "dropped" and d.reason == "too_late" and d.late_ms == pytest.approx(2000)
    d = decide_start(2.0, 2.1, running=0, max_concurrency=None, late_after_ms=10, drop_after_ms=1e3)
    assert d.status == "late" and d.reason is None and d.started
