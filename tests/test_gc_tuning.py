"""GC tuning of ``orchestrator run``: the full-collection policy (pure), the collector task
on trio's MockClock, pause timing through ``gc.callbacks``, and the tuned settings still
freeing cyclic garbage that young collections never reach.

Fake clock for everything timed; the collections themselves are real ``gc`` calls.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import trio
import trio.testing

from orchestrator.cli import main
from orchestrator.supervisor import read_run_meta
from orchestrator.supervisor.gc_regime import (
    GC_THRESHOLDS,
    FullCollectionPolicy,
    FullCollector,
    tuned_gc,
)
from orchestrator.supervisor.monitor import GcPauses, LoopMonitor

# ------------------------------------------------------------------------ policy (pure)


def test_policy_waits_for_enough_finished_sessions() -> None:
    p = FullCollectionPolicy(min_interval_s=2, max_interval_s=30, min_finished=100, per_running=2)
    assert p.finished_needed(running=10) == 100  # the floor
    assert p.finished_needed(running=70) == 140  # twice the live sessions
    assert not p.due(10.0, finished=99, running=10)
    assert p.due(10.0, finished=100, running=10)
    assert not p.due(10.0, finished=139, running=70)
    assert p.due(10.0, finished=140, running=70)


def test_policy_bounds_how_often_and_how_rarely() -> None:
    p = FullCollectionPolicy(min_interval_s=2, max_interval_s=30, min_finished=10, per_running=1)
    p.record(100.0, finished=50)
    assert not p.due(101.9, finished=10_000, running=0)  # never sooner than min_interval_s
    assert p.due(102.0, finished=60, running=0)
    assert not p.due(129.9, finished=50, running=0)  # nothing finished ...
    assert p.due(130.0, finished=50, running=0)  # ... still collected every max_interval_s
    p.record(130.0, finished=50)
    assert not p.due(131.0, finished=1_000, running=0)
    assert not p.due(140.0, finished=59, running=0)  # counts from the last collection


def test_policy_keeps_the_time_in_pauses_below_max_duty() -> None:
    p = FullCollectionPolicy(
        min_interval_s=2, max_interval_s=30, min_finished=10, per_running=1, max_duty=0.01
    )
    p.record(100.0, finished=0, pause_s=0.080)  # 80 ms: not again within 8 s
    assert p.min_gap_s() == pytest.approx(8.0)
    assert not p.due(107.9, finished=1_000, running=10)
    assert p.due(108.0, finished=1_000, running=10)
    p.record(108.0, finished=0, pause_s=0.040)
    p.record(116.0, finished=0, pause_s=2.0)  # one outlier: the median of 3 is 80 ms
    assert p.typical_pause_s() == pytest.approx(0.080)
    assert not p.due(123.9, finished=1_000, running=10)
    assert p.due(124.0, finished=1_000, running=10)
    p.record(124.0, finished=0, pause_s=1.0)  # long pauses: 100 s, capped at max_interval_s
    assert p.min_gap_s() == 30.0
    assert not p.due(153.9, finished=1_000, running=10)
    assert p.due(154.0, finished=0, running=10)
    for t in (200.0, 210.0, 220.0):  # short pauses again: min_interval_s holds
        p.record(t, finished=0, pause_s=0.001)
    assert p.min_gap_s() == 2.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_interval_s": -1.0},
        {"max_interval_s": float("inf")},
        {"min_interval_s": 5.0, "max_interval_s": 1.0},
        {"per_running": float("nan")},
        {"min_finished": 0},
        {"max_duty": 0.0},
    ],
)
def test_policy_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="FullCollectionPolicy"):
        FullCollectionPolicy(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ collector task


async def test_collector_collects_when_due_on_fake_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    counts = {"finished": 0, "running": 5}
    collected_at: list[float] = []
    t0 = trio.current_time()
    pauses = iter([0.001, 0.060, 0.060])
    real = [0.0]  # the pause timer's "real" time: each collection adds its pause

    def collect() -> int:
        collected_at.append(trio.current_time() - t0)
        real[0] += next(pauses)
        return 0

    collector = FullCollector(
        progress=lambda: (counts["finished"], counts["running"]),
        policy=FullCollectionPolicy(
            min_interval_s=2, max_interval_s=10, min_finished=20, per_running=1, max_duty=0.01
        ),
        check_s=0.5,
        collect=collect,
        timer=lambda: real[0],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        await trio.sleep(1.25)
        counts["finished"] = 50  # enough, but only 1.25 s after the start
        await trio.sleep(1.0)  # the check at 2.0 s collects (a 1 ms pause)
        assert collected_at == [2.0]
        await trio.sleep(11.0)  # nothing finishes: the next one 10 s later (a 60 ms pause)
        assert collected_at == [2.0, 12.0]
        counts["finished"] = 500  # due, but only 60 ms / 1% = 6 s after the last one
        await trio.sleep(5.75)
        assert collected_at == [2.0, 12.0, 18.0]
        nursery.cancel_scope.cancel()
    assert collector.collections == 3
    assert collector.policy.typical_pause_s() == pytest.approx(0.060)


# ------------------------------------------------------------------------ pause timing


def test_gc_pauses_times_real_collections_and_uninstalls() -> None:
    pauses = GcPauses()
    with pauses.installed():
        assert pauses._on_gc in gc.callbacks
        gc.collect(0)
        gc.collect(2)
    assert pauses._on_gc not in gc.callbacks
    figures = pauses.figures()
    assert figures["gc_collections"] == 2 and figures["gc_full_collections"] == 1
    assert figures["gc_pause_max_ms"] is not None and figures["gc_pause_max_ms"] >= 0
    assert figures["gc_pause_total_ms"] >= figures["gc_full_pause_max_ms"] >= 0
    gc.collect(0)  # not installed: not counted
    assert pauses.figures()["gc_collections"] == 2


def test_gc_pauses_uninstall_even_when_the_block_fails() -> None:
    pauses = GcPauses()
    with pytest.raises(RuntimeError), pauses.installed():
        raise RuntimeError("boom")
    assert pauses._on_gc not in gc.callbacks


async def test_loop_monitor_reports_gc_pauses(autojump_clock: trio.testing.MockClock) -> None:
    monitor = LoopMonitor(interval_s=0.1, cpu=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        gc.collect(2)
        await trio.sleep(0.35)
        snap = monitor.snapshot()
        nursery.cancel_scope.cancel()
    assert snap.gc_full_collections >= 1 and snap.gc_collections >= snap.gc_full_collections
    assert snap.gc_full_pause_max_ms is not None
    assert monitor.gc_pauses is not None and monitor.gc_pauses._on_gc not in gc.callbacks


# ------------------------------------------------------------------------ tuned settings


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _old_cycle() -> weakref.ref[_Node]:
    """A two-object cycle promoted to the oldest generation while alive, then dropped."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gc.collect(1)  # survivors of generations 0 and 1 move to generation 2
    return weakref.ref(a)


def test_tuned_gc_sets_and_restores_the_process_settings() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), tuned_gc():
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # objects alive before the run are frozen
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def test_tuned_gc_still_frees_old_garbage(autojump_clock: trio.testing.MockClock) -> None:
    counts = {"finished": 0}
    with tuned_gc():
        ref = _old_cycle()
        for _ in range(20):  # young and middle collections do not reach it ...
            gc.collect(1)
        assert ref() is not None
        collector = FullCollector(
            progress=lambda: (counts["finished"], 10),
            policy=FullCollectionPolicy(min_interval_s=2, max_interval_s=30, min_finished=100),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(collector.run)
            counts["finished"] = 100  # ... the collector's full collection does (at 2 s)
            await trio.sleep(2.25)
            nursery.cancel_scope.cancel()
    assert collector.collections == 1
    assert ref() is None


def test_run_reports_gc_pauses_and_restores_settings(tmp_path: Path) -> None:
    before = gc.get_threshold()
    out = tmp_path / "out"
    argv = ["run", "--sessions", "2", "--concurrency", "2", "--out", str(out), "--quiet",
            "--speech-ms", "200", "--lead-ms", "50", "--tail-ms", "50", "--realtime-factor",
            "4", "--server-realtime-factor", "0", "--server-ttfb-ms", "20"]  # fmt: skip
    assert main(argv) == 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    monitor = read_run_meta(out / "results.jsonl").monitor
    assert monitor is not None
    for key in ("gc_collections", "gc_full_collections", "gc_pause_total_ms", "gc_collected"):
        assert isinstance(monitor[key], int | float), key
    assert monitor["gc_collections"] >= monitor["gc_full_collections"] >= 0
