"""The live validity verdict (``Supervisor.validity(live=True)``, the ``run_valid`` gauge)
judges a figure only once it has enough samples for a p99; the end-of-run verdict judges
every sample, as before."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing

from orchestrator.aio.prometheus import SupervisorMetrics
from orchestrator.fleet.coordinator import Fleet, FleetResults
from orchestrator.fleet.merge import snapshot_from_dict
from orchestrator.supervisor import ListSink, open_supervisor
from orchestrator.supervisor.snapshot import SupervisorSnapshot
from orchestrator.supervisor.validity import MIN_LIVE_SAMPLES, ValidityLimits, judge

LATE = 80.0  # ms, over the default 50 ms limits


def test_few_samples_are_not_judged() -> None:
    limits = ValidityLimits()
    few = limits.judge_live(LATE, MIN_LIVE_SAMPLES - 1, LATE, 3)
    assert few == {"valid": True, "reasons": [], "judged": False}
    lag_only = limits.judge_live(LATE, MIN_LIVE_SAMPLES, LATE, 3)
    assert lag_only["judged"] is True and lag_only["valid"] is False
    assert [r.split(" p99")[0] for r in lag_only["reasons"]] == ["event-loop lag"]
    both = limits.judge_live(LATE, 5000, LATE, 5000)
    assert both["reasons"] == judge(LATE, LATE, limits).reasons


def test_unknown_counts_are_judged_and_unmeasured_figures_are_not() -> None:
    limits = ValidityLimits()
    unknown = limits.judge_live(LATE, None, None, None)
    assert unknown["judged"] is True and unknown["valid"] is False
    nothing = limits.judge_live(None, 500, math.nan, 500)
    assert nothing == {"valid": True, "reasons": [], "judged": False}
    assert ValidityLimits(min_live_samples=0).judge_live(LATE, 0, None, 0)["judged"] is True


def test_min_live_samples_must_be_a_count() -> None:
    with pytest.raises(ValueError, match="min_live_samples"):
        ValidityLimits(min_live_samples=-1)


def _run_end(sink: ListSink) -> dict[str, Any]:
    (end,) = [e for e in sink.events if e["kind"] == "run_end"]
    return end


async def _stall(clock: trio.testing.MockClock, at: float, seconds: float) -> None:
    """Block the event loop from ``at`` for ``seconds`` (a synchronous jump is what a
    blocking call looks like to the scheduler)."""
    await trio.sleep_until(at)
    clock.jump(seconds)


async def test_a_start_up_stall_is_not_judged_live_but_ends_invalid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 350 ms stall at start-up: live, a p99 over ~10 loop-lag samples is that stall,
    so it is not judged (the gauge keeps 1); a run that ends then is invalid, as before."""
    sink = ListSink()
    metrics = SupervisorMetrics()
    async with open_supervisor(sink=sink, run_info={}, timeline_interval_s=None) as sup:
        metrics.bind(sup)
        await _stall(autojump_clock, 0.45, 0.35)
        await trio.sleep_until(1.05)
        assert sup.validity(live=True) == {"valid": True, "reasons": [], "judged": False}
        end_now = sup.validity()
        assert end_now["valid"] is False and set(end_now) == {"valid", "reasons"}
        metrics.refresh()
        assert metrics.registry.get_sample_value("orchestrator_run_valid") == 1.0
    end = _run_end(sink)["validity"]
    assert end["valid"] is False and set(end) == {"valid", "reasons"}
    assert "event-loop lag p99 300.0 ms" in end["reasons"][0]


async def test_enough_healthy_samples_are_judged_valid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The same stall, then 30 s on time: ~300 samples, the stall is under 1% of them."""
    sink = ListSink()
    async with open_supervisor(sink=sink, run_info={}, timeline_interval_s=None) as sup:
        await _stall(autojump_clock, 0.45, 0.35)
        await trio.sleep_until(30.05)
        assert sup.validity(live=True) == {"valid": True, "reasons": [], "judged": True}
    assert _run_end(sink)["validity"] == {"valid": True, "reasons": []}


async def test_enough_late_samples_are_judged_invalid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 200 ms stall every second for 20 s: judged live, invalid, the gauge reads 0."""
    sink = ListSink()
    metrics = SupervisorMetrics()
    async with open_supervisor(sink=sink, run_info={}, timeline_interval_s=None) as sup:
        metrics.bind(sup)
        for second in range(1, 21):
            await _stall(autojump_clock, second + 0.05, 0.2)
        live = sup.validity(live=True)
        assert live["judged"] is True and live["valid"] is False
        assert live["reasons"] == sup.validity()["reasons"]  # enough samples: same verdict
        metrics.refresh()
        assert metrics.registry.get_sample_value("orchestrator_run_valid") == 0.0
    assert _run_end(sink)["validity"]["valid"] is False


def test_a_fleet_without_status_is_not_judged_live(tmp_path: Path) -> None:
    sink = FleetResults(tmp_path / "results.jsonl")
    fleet = Fleet([], sink, quiet=True)
    assert fleet.validity() == {"valid": True, "reasons": []}
    assert fleet.validity(live=True) == {"valid": True, "reasons": [], "judged": False}
    sink.close()


def test_a_fleet_judges_a_worker_live_only_over_enough_samples(tmp_path: Path) -> None:
    """A worker's status carries its sample counts: a late start-up over a few samples
    is not judged live (the gauge's verdict), but is without ``live``."""
    sink = FleetResults(tmp_path / "results.jsonl")
    fleet = Fleet([_Named("worker 0")], sink, quiet=True)
    (worker,) = fleet._workers
    late = {"loop_lag_p99_ms": 500.0, "pacer_p99_ms": 500.0}
    # as a worker's status message carries it
    snap = SupervisorSnapshot(t_s=1.0, loop_lag_samples=5, pacer_samples=5, **late)
    worker.status = snapshot_from_dict(orjson.loads(orjson.dumps(snap.to_dict())))
    assert fleet.validity(live=True) == {"valid": True, "reasons": [], "judged": False}
    assert not fleet.validity()["valid"]
    worker.status = SupervisorSnapshot(t_s=9.0, loop_lag_samples=100, pacer_samples=5, **late)
    live = fleet.validity(live=True)
    assert live["judged"] and not live["valid"]
    assert len(live["reasons"]) == 1 and live["reasons"][0].startswith("worker 0: event-loop lag")
    # a lost worker is a verdict whatever its figures
    worker.status, worker.died = None, "worker 0 died (exit code 1)"
    assert fleet.validity(live=True) == {
        "valid": False,
        "reasons": ["worker 0 died (exit code 1)"],
        "judged": True,
    }
    sink.close()


@attrs.frozen
class _Named:
    """A worker link as the fleet's verdict sees it: a name."""

    name: str
