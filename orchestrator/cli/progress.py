"""Live progress of a run: a rich panel on a terminal, plain periodic lines otherwise.

The display only renders :class:`~orchestrator.supervisor.snapshot.SupervisorSnapshot`
values it polls; it never touches sessions. On a TTY it redraws a small table every
``interval_s`` (rich ``Live`` with its own refresh thread turned off, so all drawing happens
on the trio thread); when output is a pipe or file (CI logs) it prints one line every
``plain_interval_s``. Output goes to stderr, leaving stdout to the final summary.

Rates (starts/s, ends/s, failed sessions/s) are per second over the last
:data:`RATE_WINDOW_S` seconds, or the run's age while it is younger, and are shown as
``-`` until :data:`MIN_RATE_SPAN_S` of data exist (ten sessions started at once make no
"100 starts/s" after 0.1 s). Errors are failed *sessions* per second, with the failed turns
as a count beside them (a failed turn usually fails its session too: adding them counted
one failure twice). Connection counters (attempts, refusals by HTTP status, reconnects)
are shown when the snapshot has them. The last drawing, when the task is cancelled at the
end of the run, says ``finished`` (``interrupted`` when the run was draining).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from typing import IO

import trio
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from orchestrator.metrics.text import truncate
from orchestrator.supervisor.snapshot import SupervisorSnapshot

__all__ = ["FailureRate", "Progress", "final_state", "format_line", "render_table"]


#: Longest "last error" shown (the full reasons are in summary.json).
LAST_ERROR_WIDTH = 100
#: Rates are over this many seconds (the supervisor's own rate window).
RATE_WINDOW_S = 10.0
#: No rate is shown before this much data (seconds of run).
MIN_RATE_SPAN_S = 1.0

#: Rolling latencies on the panel: ``ttfa`` (first audible sample as played) right under
#: ``ttfb`` (first audio byte), so leading silence shows as the gap between the two.
_PANEL_METRICS: tuple[tuple[str, str], ...] = (
    ("voice_to_voice_ms", "voice→voice"),
    ("ttfb_ms", "ttfb"),
    ("ttfa_ms", "ttfa (audible)"),
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _rate(value: float | None, snap: SupervisorSnapshot) -> str:
    """A rate for display: ``-`` before :data:`MIN_RATE_SPAN_S` of run."""
    return "-" if value is None or snap.t_s < MIN_RATE_SPAN_S else f"{value:.1f}"


def _pcts(snap: SupervisorSnapshot, metric: str) -> tuple[str, str]:
    m = snap.metrics.get(metric)
    if m is None:
        return "-", "-"
    return _ms(m.p50), _ms(m.p95)


class FailureRate:
    """Failed sessions per second from successive snapshots of one run: the growth of
    ``failed`` over the last :data:`RATE_WINDOW_S` seconds (from the run's start, where
    it is 0, while the run is younger); ``None`` before :data:`MIN_RATE_SPAN_S`."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque([(0.0, 0)])

    def update(self, snap: SupervisorSnapshot) -> float | None:
        """Add ``snap`` and return the rate at its time."""
        self._samples.append((snap.t_s, snap.failed))
        while len(self._samples) > 2 and self._samples[1][0] <= snap.t_s - RATE_WINDOW_S:
            self._samples.popleft()
        t0, failed0 = self._samples[0]
        span = snap.t_s - t0
        if snap.t_s < MIN_RATE_SPAN_S or span <= 0:
            return None
        return (snap.failed - failed0) / span


def _connections(snap: SupervisorSnapshot) -> str | None:
    """Connection attempts (TCP, TLS and handshake alike: the live status does not tell
    them apart; the summary does), refusals (by HTTP status) and successful reconnects,
    when the snapshot has them."""
    attempts = getattr(snap, "connect_attempts", None)
    if attempts is None:
        return None
    refused = getattr(snap, "refused", 0)
    by_status = getattr(snap, "refused_by_status", None) or {}
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(by_status.items()))
    text = f"{attempts} attempts, {refused} refused" + (f" ({statuses})" if statuses else "")
    return text + f", {getattr(snap, 'reconnects', 0)} reconnected"


def _attempts(snap: SupervisorSnapshot) -> str:
    """`` (N attempts)`` when restarts made more session attempts than sessions."""
    attempts = getattr(snap, "attempts", None)
    return f" ({attempts} attempts)" if attempts is not None and attempts > snap.started else ""


def final_state(snap: SupervisorSnapshot) -> str:
    """How the run ended, for the last drawing: ``interrupted`` when it was draining (a
    stop signal or an ``:abort`` threshold), else ``finished``."""
    return "interrupted" if snap.draining else "finished"


def format_line(
    snap: SupervisorSnapshot, failed_per_s: float | None = None, state: str | None = None
) -> str:
    """One plain progress line (for logs); ``state`` (the last line: ``finished``) follows
    the time."""
    total = "" if snap.planned_total is None else f"/{snap.planned_total}"
    v50, v95 = _pcts(snap, "voice_to_voice_ms")
    t50, t95 = _pcts(snap, "ttfb_ms")
    a50, a95 = _pcts(snap, "ttfa_ms")
    parts = [
        f"[{snap.t_s:7.1f}s]" + (f" {state}" if state else ""),
        f"done {snap.done}{total} ({snap.completed} ok, {snap.failed} failed,"
        f" {snap.cancelled} cancelled){_attempts(snap)}",
        f"active {snap.active} connecting {snap.connecting} pending {snap.pending}"
        + (f" restarting {snap.restarting}" if snap.restarting else ""),
        f"{_rate(snap.start_rate, snap)} starts/s",
        f"v2v p50 {v50} p95 {v95} ms",
        f"ttfb p50 {t50} p95 {t95} ms",
        f"ttfa p50 {a50} p95 {a95} ms",
        f"failed sessions {_rate(failed_per_s, snap)}/s, failed turns {snap.turns_failed}",
        f"loop lag p99 {_ms(snap.loop_lag_p99_ms)} ms",
    ]
    connections = _connections(snap)
    if connections is not None:
        parts.append(f"connections: {connections}")
    if snap.late_starts or snap.dropped_starts:
        parts.append(f"late {snap.late_starts} dropped {snap.dropped_starts}")
    if snap.breaker != "closed":
        parts.append(f"breaker {snap.breaker.upper()}")
    if snap.draining:
        parts.append("DRAINING")
    if snap.last_error:
        parts.append(f"last error: {truncate(snap.last_error, LAST_ERROR_WIDTH)}")
    return " | ".join(parts)


def render_table(
    snap: SupervisorSnapshot,
    title: str = "orchestrator run",
    *,
    failed_per_s: float | None = None,
    state: str | None = None,
) -> Table:
    """The rich table shown on a terminal; ``state`` defaults to ``running`` (or
    ``draining``); the last drawing passes :func:`final_state`."""
    total = "" if snap.planned_total is None else f" / {snap.planned_total}"
    state = state or ("draining" if snap.draining else "running")
    table = Table(title=f"{title} — {state} — {snap.t_s:.1f} s", show_header=False, expand=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row(
        "sessions",
        f"{snap.done}{total} done: [green]{snap.completed} completed[/green], "
        f"[red]{snap.failed} failed[/red], {snap.cancelled} cancelled{_attempts(snap)}",
    )
    table.add_row(
        "now",
        f"{snap.active} active, {snap.connecting} connecting, {snap.pending} pending, "
        f"{snap.restarting} restarting",
    )
    table.add_row(
        "rate",
        f"{_rate(snap.start_rate, snap)} starts/s, {_rate(snap.finish_rate, snap)} ends/s "
        f"(late {snap.late_starts}, dropped {snap.dropped_starts})",
    )
    connections = _connections(snap)
    if connections is not None:
        table.add_row("connections", connections)
    for metric, label in _PANEL_METRICS:
        m = snap.metrics.get(metric)
        if m is None or not m.count:
            table.add_row(label, "-")
        else:
            table.add_row(label, f"p50 {_ms(m.p50)} ms   p95 {_ms(m.p95)} ms   p99 {_ms(m.p99)} ms")
    errors = (
        f"{_rate(failed_per_s, snap)} failed sessions/s ({snap.failed} in all), "
        f"{snap.turns_failed} failed turns"
    )
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
        self._failures = FailureRate()

    def print_line(self, state: str | None = None) -> None:
        """Print one plain status line now."""
        snap = self.source()
        line = format_line(snap, self._failures.update(snap), state)
        print(line, file=self.stream, flush=True)

    def _table(self, final: bool = False) -> Table:
        snap = self.source()
        return render_table(
            snap,
            self.title,
            failed_per_s=self._failures.update(snap),
            state=final_state(snap) if final else None,
        )

    async def run(self) -> None:
        """Show progress until cancelled.

        Cancellation: raises ``Cancelled``; on a terminal the final table is drawn once
        more, saying ``finished`` (or ``interrupted``), and left on screen; in plain mode
        a last line saying so is printed.
        """
        if not self.rich:
            try:
                while True:
                    await trio.sleep(self.plain_interval_s)
                    self.print_line()
            finally:
                self.print_line(final_state(self.source()))
        console = Console(file=self.stream)
        with Live(self._table(), console=console, auto_refresh=False, transient=False) as live:
            try:
                while True:
                    await trio.sleep(self.interval_s)
                    live.update(self._table(), refresh=True)
            finally:
                live.update(self._table(final=True), refresh=True)
