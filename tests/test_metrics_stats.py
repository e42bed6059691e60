"""Exact summaries vs numpy; rolling window on a fake clock."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.metrics.records import SessionResult, TurnRecord
from orchestrator.metrics.stats import (
    SMALL_SAMPLE,
    LiveStats,
    RollingWindow,
    percentile,
    summarize,
)


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_summarize_known_data() -> None:
    s = summarize(range(1, 101))
    assert s.count == 100
    assert s.mean == 50.5 and s.min == 1.0 and s.max == 100.0
    # linear interpolation between closest ranks: rank = q/100 * (n-1)
    assert s.p50 == pytest.approx(50.5)
    assert s.p90 == pytest.approx(90.1)
    assert s.p95 == pytest.approx(95.05)
    assert s.p99 == pytest.approx(99.01)


def test_summarize_matches_numpy_on_random_data() -> None:
    rng = np.random.default_rng(7)
    data = rng.lognormal(6.0, 0.5, 1234)
    s = summarize(data.tolist())
    for name, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert getattr(s, name) == pytest.approx(float(np.percentile(data, q)), rel=1e-12)
    assert s.mean == pytest.approx(float(data.mean()))


def test_summarize_ignores_none_and_non_finite_and_handles_empty() -> None:
    s = summarize([None, 3.0, float("nan"), 1.0, float("inf")])
    assert s.count == 2 and s.min == 1.0 and s.max == 3.0 and s.p50 == 2.0
    empty = summarize([])
    assert empty.count == 0
    assert empty.to_dict() == {
        "count": 0, "mean": None, "min": None, "p50": None,
        "p90": None, "p95": None, "p99": None, "max": None,
    }  # fmt: skip
    assert summarize([None]).count == 0


def test_percentile_any_q_and_range_check() -> None:
    assert percentile([1, 2, 3, 4], 99.9) == pytest.approx(float(np.percentile([1, 2, 3, 4], 99.9)))
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0], 101)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64)),
        max_size=SMALL_SAMPLE + 40,
    ),
    st.floats(min_value=0.0, max_value=100.0),
)
def test_percentile_is_numpys_bit_for_bit_small_and_large(values: list, q: float) -> None:
    """Small samples are sorted in Python (fast), larger ones go to NumPy: either way the
    value is exactly ``numpy.percentile`` of the finite values (None and NaN/inf ignored)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    want = float(np.percentile(np.array(finite), q)) if finite else None

    def same(a: float | None, b: float | None) -> bool:  # NaN: the span overflowed, both ways
        return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))

    got = percentile(values, q)
    assert same(got, want)
    assert same(percentile(np.array(finite, dtype=np.float64), q), want)


def test_summary_dict_round_trip() -> None:
    from orchestrator.metrics.stats import MetricSummary

    s = summarize([1.0, 2.0, 10.0])
    assert MetricSummary.from_dict(s.to_dict()) == s


def test_rolling_window_expiry_on_fake_clock() -> None:
    clock = FakeClock(0.5)
    w = RollingWindow(10.0, slot_s=1.0, clock=clock)
    w.add(100.0)  # slot 0
    clock.t = 4.2
    w.add(200.0)  # slot 4
    clock.t = 9.99
    assert w.count() == 2
    assert w.summary().max == 200.0 and w.summary().min == 100.0
    clock.t = 10.0  # slot 0 leaves the window: 10 slots = slots 1..10
    assert w.count() == 1
    assert w.summary().min == 200.0
    clock.t = 14.0
    assert w.count() == 0
    assert w.summary().count == 0 and w.percentiles([50]) == [None]


def test_rolling_window_reuses_ring_rows_and_drops_stale_adds() -> None:
    clock = FakeClock(0.0)
    w = RollingWindow(5.0, slot_s=1.0, clock=clock)
    w.add(1.0, t=0.1)
    w.add(2.0, t=5.1)  # same ring row as slot 0, newer epoch: row is reset
    clock.t = 5.5
    assert w.count() == 1 and w.summary().mean == 2.0
    w.add(3.0, t=0.2)  # older than the row's epoch: already outside the window
    assert w.count() == 1
    w.add(float("nan"))
    assert w.count() == 1


def test_rolling_window_percentiles_are_within_bucket_error() -> None:
    rng = np.random.default_rng(3)
    data = rng.lognormal(6.0, 0.6, 5000)
    clock = FakeClock(0.0)
    w = RollingWindow(60.0, clock=clock)
    for i, v in enumerate(data):
        clock.t = i * 0.01  # 50 s of samples
        w.add(float(v))
    got = w.percentiles([50, 90, 95, 99])
    for q, g in zip([50, 90, 95, 99], got, strict=True):
        exact = float(np.percentile(data, q))
        assert g is not None
        # growth 1.02 -> bucket half-width ~1%, plus rank-interpolation slack
        assert abs(g - exact) / exact < 0.02, (q, g, exact)
    s = w.summary()
    assert s.count == 5000
    assert s.min == pytest.approx(float(data.min()))
    assert s.max == pytest.approx(float(data.max()))
    assert s.mean == pytest.approx(float(data.mean()))


def test_rolling_window_single_value_is_exact_and_memory_is_fixed() -> None:
    clock = FakeClock(0.0)
    w = RollingWindow(10.0, clock=clock)
    nbytes = w._counts.nbytes
    w.add(123.4)
    assert w.percentiles([0, 50, 100]) == [123.4, 123.4, 123.4]
    for i in range(20_000):
        clock.t = i * 0.003
        w.add(float(i % 997) + 0.5)
    assert w._counts.nbytes == nbytes
    assert w.count() < 20_000  # older samples expired


def test_rolling_window_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        RollingWindow(0)
    with pytest.raises(ValueError):
        RollingWindow(5.0, slot_s=10.0)
    with pytest.raises(ValueError):
        RollingWindow(5.0, growth=1.0)


def test_live_stats() -> None:
    clock = FakeClock(100.0)
    live = LiveStats(window_s=30.0, clock=clock)
    for i in range(10):
        live.observe_turn(
            TurnRecord(
                session_id="s", turn_index=i, t_start_s=0, t_end_s=1,
                ttfb_ms=100.0 + i, voice_to_voice_ms=None,
                response_status="failed" if i == 0 else "completed",
            )
        )  # fmt: skip
    live.observe_session(
        SessionResult(
            session_id="s", status="failed", planned_start_s=0, t_end_s=1, connect_ms=50.0
        )
    )
    snap = live.snapshot()
    assert snap["ttfb_ms"].count == 10
    assert snap["ttfb_ms"].max == 109.0
    assert snap["voice_to_voice_ms"].count == 0
    assert snap["connect_ms"].count == 1
    assert live.turns == 10 and live.turns_failed == 1
    assert live.sessions_by_status == {"failed": 1}
    assert math.isclose(live.errors_per_s(), 2 / 30)
    clock.t = 131.0
    assert live.snapshot()["ttfb_ms"].count == 0
    assert live.errors_per_s() == 0.0
