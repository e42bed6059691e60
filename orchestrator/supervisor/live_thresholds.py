"""Thresholds judged while the run goes, and the abort they can cause (k6 ``abortOnFail``).

A threshold written with ``:abort`` (``'session_error_rate<0.1:abort'``) is judged twice:
after the run on every record, like any threshold, and *during* the run by
:class:`LiveThresholds`, which sees every record as it is written (it is an observer of
the sink, see :class:`~.tee.TeeSink`) and judges:

* distribution metrics (``ttfb_ms.p95``) on a rolling window of the last ``window_s``
  seconds (approximate percentiles, as the live display's);
* rates (``session_error_rate``, ``turn_error_rate``) on the same rolling window: failed
  / ended sessions (turns) that ended in the window; a session counts once, when it is
  done, by its last attempt (as the summary counts it): a failed attempt that the
  supervisor restarts is not a failed session (see :meth:`LiveThresholds.session_done`);
* counts (``sessions_failed``, ``turns_failed``, ``late_starts``, ``dropped_starts``,
  ``reconnects``, ...) run to date: a count only grows, a window would forget.

No samples is not a failure while the run goes (the final judgement still fails it).
``cost_usd`` is not known live and is refused with ``:abort``, as are thresholds with a
``{key:value}`` selector (the live windows are not kept per tag).

:func:`watch_abort_thresholds` is the task that judges every ``interval_s`` once
``grace_s`` seconds of the run have passed (k6's ``delayAbortEval``: the first failures of
a warming target do not abort) and returns the first :class:`AbortVerdict`. What to do
then is the caller's: ``orchestrator run`` drains the run as Ctrl-C does, writes a
``run_abort`` line to ``results.jsonl`` (the summary's ``run.aborted``) and exits 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import trio

from orchestrator.metrics import SessionResult, TimelinePoint, TurnRecord
from orchestrator.metrics.names import SCALAR_METRICS
from orchestrator.metrics.stats import RollingWindow
from orchestrator.metrics.thresholds import (
    Threshold,
    ThresholdError,
    ThresholdResult,
    parse_thresholds,
    threshold_result,
)

__all__ = [
    "AbortVerdict",
    "LiveThresholds",
    "abort_thresholds",
    "watch_abort_thresholds",
]

#: Scalars that cannot be judged during a run.
NOT_LIVE: frozenset[str] = frozenset({"cost_usd"})
_RATES = {"session_error_rate": ("sessions", "sessions_failed"),
          "turn_error_rate": ("turns", "turns_failed")}  # fmt: skip


def abort_thresholds(exprs: Iterable[str | Threshold]) -> list[Threshold]:
    """The ``:abort`` thresholds among ``exprs`` (parsed). Raises ``ThresholdError`` for
    a bad expression or an ``:abort`` on a metric that is not known during the run."""
    chosen = [t for t in parse_thresholds(exprs) if t.abort]
    for t in chosen:
        if t.selector:
            raise ThresholdError(
                f"threshold {t.expr!r}: a {{key:value}} selector is judged after the run "
                "only; drop ':abort' (or the selector) to use it"
            )
        if t.metric in NOT_LIVE:
            raise ThresholdError(
                f"threshold {t.expr!r}: {t.metric} is only known after the run; "
                "drop ':abort' to judge it at the end"
            )
    return chosen


@attrs.frozen(kw_only=True)
class AbortVerdict:
    """Why the run is aborted: the failed threshold's live result, when (``t_s`` seconds
    into the run) and over which window."""

    result: ThresholdResult
    t_s: float
    window_s: float

    @property
    def message(self) -> str:
        """One line for people: ``threshold 'X' failed at 5.0 s: actual 1 (...)``."""
        r = self.result
        actual = "none" if r.actual is None else f"{r.actual:.6g}"
        scope = (
            "run to date"
            if r.stat is None and r.metric not in _RATES
            else f"last {self.window_s:g} s"
        )
        return f"threshold {r.expr!r} failed at {self.t_s:.1f} s: actual {actual} ({scope})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the ``run_abort`` line and ``summary["run"]["aborted"]``)."""
        return {
            "threshold": self.result.expr,
            "metric": self.result.metric,
            "stat": self.result.stat,
            "op": self.result.op,
            "target": self.result.target,
            "actual": self.result.actual,
            "t_s": round(self.t_s, 3),
            "window_s": self.window_s,
            "reason": self.message,
        }


class LiveThresholds:
    """Judges ``:abort`` thresholds on the records seen so far (a sink observer: give it
    to a :class:`~.tee.TeeSink`). ``clock``: trio's by default (MockClock in tests).

    Sessions are counted once, by their final outcome: :meth:`session` sees every
    attempt the sink writes (a restarted session writes one per attempt), while
    :meth:`session_done` (called by the supervisor on the observers of its
    ``TeeSink`` when a session is done) counts it; a failed attempt that is restarted
    is not a failed session.

    ``counts`` (optional) returns run-to-date counters the records do not carry
    (``late_starts``, ``dropped_starts``: the supervisor's), merged over its own.
    """

    def __init__(
        self,
        thresholds: Iterable[str | Threshold],
        *,
        window_s: float = 30.0,
        clock: Callable[[], float] = trio.current_time,
        counts: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.thresholds = abort_thresholds(thresholds)
        self.window_s = window_s
        self._clock = clock
        self.counts = counts
        """Run-to-date counters the records do not carry (set it when the supervisor exists)."""
        slot = min(1.0, window_s)
        wanted = {t.metric for t in self.thresholds if t.stat is not None}
        self._windows = {
            name: RollingWindow(window_s, slot_s=slot, clock=clock) for name in sorted(wanted)
        }
        self._events = {
            name: RollingWindow(window_s, slot_s=slot, lo=0.5, hi=2.0, clock=clock)
            for name in ("sessions", "sessions_failed", "turns", "turns_failed")
        }
        self.totals: dict[str, float] = dict.fromkeys(
            (m for m in SCALAR_METRICS if m not in _RATES and m not in NOT_LIVE), 0.0
        )

    # ------------------------------------------------------------------ observer
    def turn(self, record: TurnRecord) -> None:
        """Count a finished turn and add its metrics to the windows."""
        self._events["turns"].add(1.0)
        self.totals["turns_total"] += 1
        if record.failed:
            self._events["turns_failed"].add(1.0)
            self.totals["turns_failed"] += 1
        self._add(record)

    def session(self, record: SessionResult) -> None:
        """One ended *attempt*: its reconnects (summed over attempts, as the summary's)
        and its metrics go to the windows. The session itself is counted once, with its
        last attempt's outcome, by :meth:`session_done` (the supervisor calls it when no
        further attempt will run), as the summary counts it (``last_attempts``)."""
        self.totals["reconnects"] += getattr(record, "reconnects", 0) or 0
        self._add(record)

    def session_done(self, record: SessionResult) -> None:
        """Count a finished session (its last attempt ``record``) by status, once."""
        self._events["sessions"].add(1.0)
        self.totals["sessions_total"] += 1
        status = record.status
        key = f"sessions_{status}"
        if key in self.totals:
            self.totals[key] += 1
        if status == "failed":
            self._events["sessions_failed"].add(1.0)

    def snapshot(self, record: TimelinePoint) -> None:
        """Ignored."""

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        """Counts ``start_dropped`` lines."""
        if kind == "start_dropped":
            self.totals["dropped_starts"] += 1

    def _add(self, record: object) -> None:
        for name, window in self._windows.items():
            value = getattr(record, name, None)
            if isinstance(value, int | float):
                window.add(float(value))

    # ------------------------------------------------------------------ judging
    def _actual(self, t: Threshold) -> float | None:
        if t.stat is not None:
            window = self._windows[t.metric]
            if t.stat == "count":
                return float(window.count())
            if t.q is not None:
                return window.percentiles((t.q,))[0]
            summary = window.summary()
            value = {"mean": summary.mean, "min": summary.min, "max": summary.max}[t.stat]
            return None if value is None else float(value)
        if t.metric in _RATES:
            total_key, failed_key = _RATES[t.metric]
            total = self._events[total_key].count()
            return None if total == 0 else self._events[failed_key].count() / total
        totals = dict(self.totals)
        if self.counts is not None:
            totals.update(self.counts())
        value = totals.get(t.metric)
        return None if value is None else float(value)

    def judge(self) -> list[ThresholdResult]:
        """Every ``:abort`` threshold on the windows now (``ok`` is True without data)."""
        return [
            threshold_result(t, self._actual(t), "no samples yet", missing_ok=True)
            for t in self.thresholds
        ]

    def failed(self) -> ThresholdResult | None:
        """The first ``:abort`` threshold that fails now (``None``: all hold)."""
        return next((r for r in self.judge() if not r.ok), None)


async def watch_abort_thresholds(
    live: LiveThresholds,
    *,
    t0: float,
    grace_s: float = 0.0,
    interval_s: float = 1.0,
) -> AbortVerdict:
    """Judge ``live`` every ``interval_s`` seconds from ``t0 + grace_s`` on (trio clock)
    and return the first failure. Never returns when nothing fails (cancel it).

    Cancellation: raises ``Cancelled``; nothing to clean up.
    """
    if not live.thresholds:
        await trio.sleep_forever()
    await trio.sleep_until(t0 + grace_s)
    while True:
        failed = live.failed()
        if failed is not None:
            return AbortVerdict(result=failed, t_s=trio.current_time() - t0, window_s=live.window_s)
        await trio.sleep(interval_s)
