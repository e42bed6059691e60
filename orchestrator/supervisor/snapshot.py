"""Live status of a supervisor: :class:`SupervisorSnapshot` and the rate counter behind it.

A snapshot is a plain frozen value: the progress display renders it, library users poll it
(``sup.snapshot()``), and :meth:`SupervisorSnapshot.timeline_point` turns it into the
``"snapshot"`` line of ``results.jsonl``.

Session lifecycle counted here (each session *attempt* is in exactly one state; the
``started`` / ``completed`` / ``failed`` / ``cancelled`` counts are of sessions, each
counted once by its last attempt, ``attempts`` of attempts)::

    pending ──► connecting ──► active ──► completed | failed | cancelled
       ▲                                       │
       └────────────── restarting ◄────────────┘ (restart policy)

``pending``: accepted, waiting for its planned start time, the circuit breaker or a
concurrency cap; ``connecting``: its actor runs but the session is not ready
(``session.updated`` not yet seen); ``active``: ready and conversing; ``restarting``:
ended and waiting for its backoff before the next attempt.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import attrs

from orchestrator.metrics import TimelinePoint

__all__ = ["MetricPercentiles", "RateCounter", "SupervisorSnapshot"]


@attrs.frozen
class MetricPercentiles:
    """Rolling percentiles (ms) of one metric over the live window (``None``: no samples)."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@attrs.frozen(kw_only=True)
class SupervisorSnapshot:
    """The supervisor's state at ``t_s`` seconds since the run started."""

    t_s: float
    pending: int = 0
    connecting: int = 0
    active: int = 0
    restarting: int = 0
    started: int = 0
    """Sessions started (first attempts; a restart is not a new session)."""
    attempts: int = 0
    """Session attempts started (first attempts and restarts)."""
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    """Sessions done, by the outcome of their last attempt."""
    restarts: int = 0
    gave_up: int = 0
    late_starts: int = 0
    dropped_starts: int = 0
    connect_attempts: int = 0
    """Connections tried by ended attempts (first connections and reconnects; those that
    failed before the websocket handshake too)."""
    refused: int = 0
    """Handshakes the server refused with an HTTP status (ended attempts)."""
    refused_by_status: dict[str, int] = attrs.field(factory=dict)
    """``refused`` by HTTP status (``{"429": 3}``)."""
    reconnects: int = 0
    """Reconnects of ended attempts."""
    turns: int = 0
    turns_failed: int = 0
    start_rate: float = 0.0
    """Session starts (first attempts) per second over the last ``rate_window_s``."""
    finish_rate: float = 0.0
    """Sessions done per second over the last ``rate_window_s``."""
    errors_per_s: float = 0.0
    """Failed turns + failed sessions per second over the live window (a session counts
    once, when it is done, by its last attempt: a restarted failed attempt is not one)."""
    metrics: dict[str, MetricPercentiles] = attrs.field(factory=dict)
    """Rolling percentiles of every metric :class:`~orchestrator.metrics.LiveStats` tracks."""
    loop_lag_p99_ms: float | None = None
    loop_lag_recent_max_ms: float | None = None
    pacer_p99_ms: float | None = None
    loop_lag_samples: int | None = None
    pacer_samples: int | None = None
    """The samples behind ``loop_lag_p99_ms`` and ``pacer_p99_ms`` (a live verdict judges
    a p99 only over enough of them)."""
    cpu_percent: float | None = None
    breaker: str = "closed"
    draining: bool = False
    planned_total: int | None = None
    """How many sessions the workload plans in total, when known in advance."""
    last_error: str | None = None

    @property
    def running(self) -> int:
        """Session actors alive now (connecting + active)."""
        return self.connecting + self.active

    @property
    def done(self) -> int:
        """Sessions done (completed + failed + cancelled), each counted once."""
        return self.completed + self.failed + self.cancelled

    def timeline_point(self) -> TimelinePoint:
        """This snapshot as a ``results.jsonl`` ``"snapshot"`` record."""
        return TimelinePoint(
            t_s=round(self.t_s, 6),
            active=self.running,
            started=self.started,
            completed=self.completed,
            failed=self.failed,
            loop_lag_ms=self.loop_lag_recent_max_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (metrics as nested dicts)."""
        data = attrs.asdict(self)
        data["running"] = self.running
        return data


class RateCounter:
    """Events per second over a sliding window (timestamps kept only for the window)."""

    def __init__(self, window_s: float = 10.0) -> None:
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError(f"RateCounter.window_s must be > 0, got {window_s!r}")
        self.window_s = window_s
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        """Count one event at ``now``."""
        self._times.append(now)
        self._prune(now)

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        while self._times and self._times[0] <= horizon:
            self._times.popleft()

    def rate(self, now: float, since: float | None = None) -> float:
        """Events per second in ``(now - window_s, now]``; when the run (``since``) is
        younger than the window, over the run's age instead (so early rates are not
        diluted by time before the run)."""
        self._prune(now)
        span = self.window_s
        if since is not None:
            span = min(span, max(now - since, 1e-9))
        return len(self._times) / span if self._times else 0.0
