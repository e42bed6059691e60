"""Charts of the run report over run time, each counting one thing once.

- one chart per main metric measured (``voice_to_voice_ms``, ``ttfb_ms``, ``ttfa_ms``):
  the samples at their turn's end and their p50/p95/p99 per time bin;
- active sessions (step line, from the live snapshots or rebuilt from the sessions);
- session starts per second (from the snapshots' cumulative ``started``, else from the
  sessions' planned start times);
- failed sessions by end time, split into two disjoint causes: never connected
  (``connect_ms`` missing) and failed after connecting;
- turn errors by time (a chart of its own: a failed turn is not added to the session it
  failed, which is what the old stacked chart did).

Pure functions returning inline-SVG strings (:mod:`orchestrator.metrics.svg`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from orchestrator.metrics.compare import MAIN_METRICS
from orchestrator.metrics.records import SessionResult, TimelinePoint, TurnRecord
from orchestrator.metrics.summary import last_attempts
from orchestrator.metrics.svg import Series, bar_chart, line_chart

__all__ = ["TIME_BINS", "active_sessions_series", "over_time_charts", "starts_per_second"]

TIME_BINS = 30
_PERCENTILES: tuple[tuple[float, str], ...] = ((50, "#16a34a"), (95, "#ea580c"), (99, "#dc2626"))


def active_sessions_series(
    sessions: Sequence[SessionResult], timeline: Sequence[TimelinePoint] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(t_s, active)`` step points: from ``timeline`` snapshots when given, otherwise
    reconstructed from each session's ``planned_start_s`` (+1) and ``t_end_s`` (-1)."""
    if timeline:
        pts = sorted(timeline, key=lambda p: p.t_s)
        return (
            np.array([p.t_s for p in pts], dtype=np.float64),
            np.array([p.active for p in pts], dtype=np.float64),
        )
    events = sorted(
        [(s.planned_start_s, 1) for s in sessions] + [(s.t_end_s, -1) for s in sessions],
        key=lambda e: (e[0], e[1]),
    )
    if not events:
        return np.empty(0), np.empty(0)
    ts = np.array([0.0] + [t for t, _ in events])
    active = np.concatenate(([0.0], np.cumsum([d for _, d in events], dtype=np.float64)))
    return ts, active


def starts_per_second(
    sessions: Sequence[SessionResult],
    timeline: Sequence[TimelinePoint] | None,
    edges: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``(t_s, starts/s)`` step points: between consecutive snapshots, the change of their
    cumulative ``started`` over the time between them (each value holds until the next
    snapshot); without snapshots that count anything, the sessions' planned starts (first
    attempts, as ``started`` counts) per bin of ``edges`` divided by the bin width."""
    pts = sorted(timeline or (), key=lambda p: p.t_s)
    if pts and pts[-1].started:
        ts = np.array([0.0] + [p.t_s for p in pts], dtype=np.float64)
        started = np.array([0] + [p.started for p in pts], dtype=np.float64)
        dt = np.diff(ts)
        rate = np.divide(np.diff(started), dt, out=np.zeros_like(dt), where=dt > 0)
        return ts, np.append(rate, rate[-1])
    first: dict[str, SessionResult] = {}
    for s in sessions:  # a session starts once: its first attempt (restarts are not starts)
        seen = first.get(s.session_id)
        if seen is None or s.attempt < seen.attempt:
            first[s.session_id] = s
    counts = np.histogram([s.planned_start_s for s in first.values()], bins=edges)[0]
    return edges[:-1], counts / np.diff(edges)


def _percentile_line(
    ts: np.ndarray, values: np.ndarray, edges: np.ndarray, q: float
) -> tuple[np.ndarray, np.ndarray]:
    idx = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, len(edges) - 2)
    xs, ys = [], []
    for k in range(len(edges) - 1):
        sel = values[idx == k]
        if sel.size:
            xs.append((edges[k] + edges[k + 1]) / 2)
            ys.append(float(np.percentile(sel, q)))
    return np.array(xs), np.array(ys)


def _latency_charts(turns: Sequence[TurnRecord], edges: np.ndarray) -> list[str]:
    charts = []
    for name in MAIN_METRICS:
        pairs = [(t.t_end_s, getattr(t, name)) for t in turns if getattr(t, name) is not None]
        if not pairs:
            continue
        ts = np.array([p[0] for p in pairs], dtype=np.float64)
        vs = np.array([p[1] for p in pairs], dtype=np.float64)
        lines = []
        for q, color in _PERCENTILES:
            px, py = _percentile_line(ts, vs, edges, q)
            lines.append(Series(name=f"p{q:g}", xs=px, ys=py, color=color))
        charts.append(
            line_chart(
                title=f"{name} over time (turn end, per-bin percentiles)",
                x_label="run time (s)",
                y_label="ms",
                points=[Series(name="samples", xs=ts, ys=vs, color="#93c5fd")],
                lines=lines,
            )
        )
    if not charts:
        charts.append(
            line_chart(
                title="Latency percentiles over time", x_label="run time (s)", y_label="ms"
            )  # fmt: skip
        )
    return charts


def over_time_charts(
    turns: Sequence[TurnRecord],
    sessions: Sequence[SessionResult],
    timeline: Sequence[TimelinePoint] | None = None,
) -> list[str]:
    """The charts of the module docstring, in that order."""
    t_max = max([s.t_end_s for s in sessions] + [t.t_end_s for t in turns], default=0.0)
    edges = np.linspace(0.0, max(t_max, 1e-3), TIME_BINS + 1)
    charts = _latency_charts(turns, edges)
    ts, active = active_sessions_series(sessions, timeline)
    charts.append(
        line_chart(
            title="Active sessions",
            x_label="run time (s)",
            y_label="sessions",
            lines=[Series(name="active", xs=ts, ys=active, color="#0891b2")],
            step=True,
        )
    )
    st, rate = starts_per_second(sessions, timeline, edges)
    charts.append(
        line_chart(
            title="Session starts per second",
            x_label="run time (s)",
            y_label="starts/s",
            lines=[Series(name="starts/s", xs=st, ys=rate, color="#9333ea")],
            step=True,
        )
    )
    # sessions counted once, by their last attempt (the summary's ``sessions_failed``)
    failed = [s for s in last_attempts(sessions) if s.status == "failed"]
    never = [s.t_end_s for s in failed if s.connect_ms is None]
    later = [s.t_end_s for s in failed if s.connect_ms is not None]
    charts.append(
        bar_chart(
            title="Failed sessions by end time",
            x_label="run time (s)",
            y_label="sessions",
            edges=edges,
            stacks=[
                _counts("never connected", never, edges, "#7c2d12"),
                _counts("failed after connecting", later, edges, "#b91c1c"),
            ],
        )  # fmt: skip
    )
    err_t = [e.t_s if e.t_s is not None else t.t_end_s for t in turns for e in t.errors]
    charts.append(
        bar_chart(
            title="Turn errors by time",
            x_label="run time (s)",
            y_label="errors",
            edges=edges,
            stacks=[_counts("turn errors", err_t, edges, "#ea580c")],
        )  # fmt: skip
    )
    return charts


def _counts(name: str, times: list[float], edges: np.ndarray, color: str) -> Series:
    """A bar stack: how many of ``times`` fall in each bin of ``edges``."""
    return Series(name=name, xs=(), ys=np.histogram(times, bins=edges)[0], color=color)
