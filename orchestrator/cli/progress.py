"""Live progress of a run: a rich panel on a terminal, plain periodic lines otherwise.

The display only renders :class:`~orchestrator.supervisor.snapshot.SupervisorSnapshot`
values it polls; it never touches sessions. On a TTY it redraws a small table every
``interval_s`` (rich ``Live`` with its own refresh thread turned off, so all drawing happens
on the trio thread); when output is a pipe or file (CI logs) it prints one line every
``plain_interval_s``. Output goes to stderr, leaving stdout to the final summary.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO

import trio
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from orchestrator.metrics.text import truncate
from orchestrator.supervisor.snapshot import SupervisorSnapshot

__all__ = ["Progress", "format_line", "render_table"]


#: Longest "last error" shown (the full reasons are in summary.json).
LAST_ERROR_WIDTH = 100

#: Rolling latencies on the panel: ``ttfa`` (first audible sample as played) right under
#: ``ttfb`` (first audio byte), so leading silence shows as the gap between the two.
_PANEL_METRICS: tuple[tuple[str, str], ...] = (
    ("voice_to_voice_ms", "voice→voice"),
    ("ttfb_ms", "ttfb"),
    ("ttfa_ms", "ttfa (audible)"),
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pcts(snap: SupervisorSnapshot, metric: str) -> tuple[str, str]:
    m = snap.metrics.get(metric)
    if m is None:
        return "-", "-"
    return _ms(m.p50), _ms(m.p95)


def format_line(snap: SupervisorSnapshot) -> str:
    """One plain progress line (for logs)."""
    total = "" if snap.planned_total is None else f"/{snap.planned_total}"
    v50, v95 = _pcts(snap, "voice_to_voice_ms")
    t50, t95 = _pcts(snap, "ttfb_ms")
    a50, a95 = _pcts(snap, "ttfa_ms")
    parts = [
        f"[{snap.t_s:7.1f}s]",
        f"done {snap.done}{total} ({snap.completed} ok, {snap.failed} failed,"
        f" {snap.cancelled} cancelled)",
        f"active {snap.active} connecting {snap.connecting} pending {snap.pending}"
        + (f" restarting {snap.restarting}" if snap.restarting else ""),
        f"{snap.start_rate:.1f} starts/s",
        f"v2v p50 {v50} p95 {v95} ms",
        f"ttfb p50 {t50} p95 {t95} ms",
        f"ttfa p50 {a50} p95 {a95} ms",
        f"errors {snap.errors_per_s:.2f}/s",
        f"loop lag p99 {_ms(snap.loop_lag_p99_ms)} ms",
    ]
    if snap.late_starts or snap.dropped_starts:
        parts.append(f"late {snap.late_starts} dropped {snap.dropped_starts}")
    if snap.breaker != "closed":
        parts.append(f"breaker {snap.breaker.upper()}")
    if snap.draining:
        parts.append("DRAINING")
    if snap.last_error:
        parts.append(f"last error: {truncate(snap.last_error, LAST_ERROR_WIDTH)}")
    return " | ".join(parts)


def render_table(snap: SupervisorSnapshot, title: str = "orchestrator run") -> Table:
    """The rich table shown on a terminal."""
    total = "" if snap.planned_total is None else f" / {snap.planned_total}"
    state = "draining" if snap.draining else "running"
    table = Table(title=f"{title} — {state} — {snap.t_s:.1f} s", show_header=False, expand=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row(
        "sessions",
        f"{snap.done}{total} done: [green]{snap.completed} completed[/green], "
        f"[red]{snap.failed} failed[/red], {snap.cancelled} cancelled",
    )
    table.add_row(
        "now",
        f"{snap.active} active, {snap.connecting} connecting, {snap.pending} pending, "
        f"{snap.restarting} restarting",
    )
    table.add_row(
        "rate",
        f"{snap.start_rate:.1f} starts/s, {snap.finish_rate:.1f} ends/s "
        f"(late {snap.late_starts}, dropped {snap.dropped_starts})",
    )
    for metric, label in _PANEL_METRICS:
        m = snap.metrics.get(metric)
        if m is None or not m.count:
            table.add_row(label, "-")
        else:
            table.add_row(label, f"p50 {_ms(m.p50)} ms   p95 {_ms(m.p95)} ms   p99 {_ms(m.p99)} ms")
    errors = f"{snap.errors_per_s:.2f}/s ({snap.turns_failed} failed turns)"
    if snap.last_error:
        errors += f" — last: {escape(truncate(snap.last_error, LAST_ERROR_WIDTH))}"
    table.add_row("errors", errors)
    gen = f"loop lag p99 {_ms(snap.loop_lag_p99_ms)} ms, pacer p99 {_ms(snap.pacer_p99_ms)} ms"
    if snap.cpu_percent is not None:
        gen += f", CPU {snap.cpu_percent:.0f}%"
    table.add_row("generator", gen)
    if snap.breaker != "closed":
        table.add_row("breaker", f"[yellow]{snap.breaker}[/yellow]: new connections paused")
    return table


class Progress:
    """Polls ``source`` and shows it. ``rich`` decides the mode: ``None`` = rich when
    ``stream`` is a terminal. Start with ``nursery.start_soon(progress.run)``; cancel the
    task to stop (the last state stays on screen)."""

    def __init__(
        self,
        source: Callable[[], SupervisorSnapshot],
        *,
        stream: IO[str] | None = None,
        rich: bool | None = None,
        interval_s: float = 0.5,
        plain_interval_s: float = 5.0,
        title: str = "orchestrator run",
    ) -> None:
        self.source = source
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.rich = bool(isatty and isatty()) if rich is None else rich
        self.interval_s = interval_s
        self.plain_interval_s = plain_interval_s
        self.title = title

    def print_line(self) -> None:
        """Print one plain status line now."""
        print(format_line(self.source()), file=self.stream, flush=True)

    async def run(self) -> None:
        """Show progress until cancelled.

        Cancellation: raises ``Cancelled``; on a terminal the final table is drawn once
        more and left on screen; in plain mode a last line is printed.
        """
        if not self.rich:
            try:
                while True:
                    await trio.sleep(self.plain_interval_s)
                    self.print_line()
            finally:
                self.print_line()
        console = Console(file=self.stream)
        with Live(
            render_table(self.source(), self.title),
            console=console,
            auto_refresh=False,
            transient=False,
        ) as live:
            try:
                while True:
                    await trio.sleep(self.interval_s)
                    live.update(render_table(self.source(), self.title), refresh=True)
            finally:
                live.update(render_table(self.source(), self.title), refresh=True)
