"""Live progress: plain lines for logs, a rich table on terminals (rendered to a string)."""

from __future__ import annotations

import io

import attrs
import trio
import trio.testing
from rich.console import Console

from orchestrator.cli.progress import Progress, format_line, render_table
from orchestrator.supervisor import MetricPercentiles, SupervisorSnapshot

SNAP = SupervisorSnapshot(
    t_s=12.34,
    pending=1,
    connecting=2,
    active=25,
    started=70,
    completed=40,
    failed=3,
    cancelled=0,
    late_starts=2,
    dropped_starts=1,
    start_rate=4.95,
    errors_per_s=0.1,
    metrics={
        "voice_to_voice_ms": MetricPercentiles(count=43, p50=812.4, p95=990.0, p99=1200.0),
        "ttfb_ms": MetricPercentiles(count=43, p50=351.0, p95=420.0, p99=500.0),
    },
    loop_lag_p99_ms=3.0,
    breaker="open",
    planned_total=100,
    last_error="server_error: boom",
)


def test_plain_line_has_the_key_numbers() -> None:
    line = format_line(SNAP, 0.5)
    for part in (
        "[   12.3s]",
        "done 43/100 (40 ok, 3 failed, 0 cancelled)",
        "active 25 connecting 2 pending 1",
        "5.0 starts/s",
        "v2v p50 812 p95 990 ms",
        "ttfb p50 351 p95 420 ms",
        "failed sessions 0.5/s, failed turns 0",
        "late 2 dropped 1",
        "breaker OPEN",
    ):
        assert part in line
    empty = format_line(SupervisorSnapshot(t_s=0.0))
    assert "v2v p50 - p95 - ms" in empty and "breaker" not in empty


def test_plain_line_shows_the_last_failure_reason_truncated() -> None:
    assert format_line(SNAP).endswith(" | last error: server_error: boom")
    long = attrs.evolve(SNAP, last_error="HandshakeRejected: HTTP 401 [body] " + "y" * 300)
    line = format_line(long)
    tail = line.split(" | last error: ", 1)[1]
    assert tail.startswith("HandshakeRejected: HTTP 401 [body] yyy") and tail.endswith("…")
    assert len(tail) == 100
    assert "last error" not in format_line(attrs.evolve(SNAP, last_error=None))
    console = Console(file=io.StringIO(), width=400, color_system=None)
    console.print(render_table(long))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "last: HandshakeRejected: HTTP 401 [body] yyy" in text  # markup-like text kept


def test_rich_table_renders() -> None:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(render_table(SNAP))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "43 / 100 done" in text and "40 completed" in text and "3 failed" in text
    assert "p50 812 ms" in text and "p95 420 ms" in text
    assert "server_error: boom" in text and "new connections paused" in text


async def test_plain_mode_prints_periodically_and_on_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = io.StringIO()
    progress = Progress(lambda: SNAP, stream=stream, plain_interval_s=5.0)
    assert not progress.rich  # a StringIO is not a terminal
    with trio.move_on_after(12.0):
        await progress.run()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # at 5 s, 10 s and the final line when stopped
    assert all("done 43/100" in line for line in lines)
