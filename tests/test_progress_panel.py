"""The live panel's fixes: failures counted once, no rates from less than a second of data,
connection counters when the snapshot has them, and ``finished`` (not ``running``) once the
run is over."""

from __future__ import annotations

import io

import attrs
import trio
import trio.testing
from rich.console import Console

from orchestrator.cli.progress import FailureRate, Progress, format_line, render_table
from orchestrator.supervisor import SupervisorSnapshot


def _text(table: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_a_failure_is_counted_once_per_session() -> None:
    # one failed session whose failed turn failed it: one failure, not two
    rate = FailureRate()
    assert rate.update(SupervisorSnapshot(t_s=0.5, failed=1, turns_failed=1)) is None  # < 1 s
    snap = SupervisorSnapshot(t_s=2.0, failed=1, turns_failed=1, errors_per_s=1.0)
    assert rate.update(snap) == 0.5  # 1 failed session in the run's 2 s
    line = format_line(snap, 0.5)
    assert "failed sessions 0.5/s, failed turns 1" in line
    assert "errors" not in line  # the summed (double) count is gone
    text = _text(render_table(snap, failed_per_s=0.5))
    assert "0.5 failed sessions/s (1 in all), 1 failed turns" in text


def test_the_failure_rate_is_over_the_last_ten_seconds() -> None:
    rate = FailureRate()
    for t in range(1, 31):  # 2 failures/s for 20 s, then none
        rate.update(SupervisorSnapshot(t_s=float(t), failed=2 * min(t, 20)))
    assert rate.update(SupervisorSnapshot(t_s=31.0, failed=40)) == 0.0
    rate = FailureRate()
    for t in range(1, 21):
        last = rate.update(SupervisorSnapshot(t_s=float(t), failed=2 * t))
    assert last == 2.0


def test_no_rate_before_one_second_of_data() -> None:
    # ten sessions started at once, 0.1 s into the run: not "100 starts/s"
    early = SupervisorSnapshot(t_s=0.1, started=10, start_rate=100.0, finish_rate=10.0)
    assert "| - starts/s |" in format_line(early)
    assert "- starts/s, - ends/s" in _text(render_table(early))
    later = attrs.evolve(early, t_s=1.0, start_rate=10.0, finish_rate=1.0)
    assert "| 10.0 starts/s |" in format_line(later)
    assert "10.0 starts/s, 1.0 ends/s" in _text(render_table(later))


def test_connection_counters_are_shown_when_the_snapshot_has_them() -> None:
    snap = SupervisorSnapshot(
        t_s=5.0, started=10, attempts=13, connect_attempts=16, refused=4,
        refused_by_status={"503": 1, "429": 3}, reconnects=2,
    )  # fmt: skip
    text = _text(render_table(snap))
    assert "16 attempts, 4 refused (429: 3, 503: 1), 2 reconnected" in text
    assert "(13 attempts)" in text  # restarts made more attempts than sessions
    line = format_line(snap)
    assert "connections: 16 attempts, 4 refused (429: 3, 503: 1), 2 reconnected" in line
    assert "(13 attempts)" in line
    assert "attempts)" not in format_line(attrs.evolve(snap, attempts=10))


def test_the_table_says_running_or_draining_while_the_run_goes_on() -> None:
    snap = SupervisorSnapshot(t_s=3.0, completed=2, planned_total=2)
    assert "running" in _text(render_table(snap))
    assert "draining" in _text(render_table(attrs.evolve(snap, draining=True)))


async def _run_progress(snap: SupervisorSnapshot, rich: bool) -> str:
    stream = io.StringIO()
    progress = Progress(lambda: snap, stream=stream, rich=rich, interval_s=0.5)
    with trio.move_on_after(1.2):
        await progress.run()
    return stream.getvalue()


async def test_the_panel_says_finished_after_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    snap = SupervisorSnapshot(t_s=3.0, completed=2, planned_total=2)
    drawn = await _run_progress(snap, rich=True)
    final = drawn.rsplit("orchestrator run —", 1)[1]
    assert final.startswith(" finished — 3.0 s")
    interrupted = await _run_progress(attrs.evolve(snap, draining=True), rich=True)
    assert interrupted.rsplit("orchestrator run —", 1)[1].startswith(" interrupted")


async def test_the_last_plain_line_says_finished(autojump_clock: trio.testing.MockClock) -> None:
    lines = (await _run_progress(SupervisorSnapshot(t_s=3.0), rich=False)).splitlines()
    assert len(lines) == 1 and lines[0].startswith("[    3.0s] finished | done 0")
