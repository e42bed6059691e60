"""The supervisor runtime: many session actors, isolated, restarted, measured.

``open_supervisor`` is an async context manager (library first: embed it in any trio
program)::

    async with open_supervisor(sink=JsonlSink("out/results.jsonl")) as sup:
        handle = await sup.start(spec, driver)       # one session, on demand
        stats = await sup.run_workload(workload)     # or a planned load shape
        print(sup.snapshot())

Structure (nested nurseries, as tractor supervises actors)::

    open_supervisor
    ├── service nursery: shared pacer Ticker, LoopMonitor, timeline sampler
    └── session nursery: one child task per session (its own cancel scope)
            child: pending ─► attempt (open_session + driver) ─► result ─► restart? ─► …

Isolation: a child task turns everything that goes wrong in its session (connection,
protocol, server errors — already data from the session actor — and exceptions raised
by the *driver*) into a :class:`SessionResult` with ``status="failed"``; nothing but
``Cancelled`` leaves a child, so one session never cancels another. A bug in the
supervisor itself (or a sink that cannot write) does propagate and ends the run.

Ordering promise: when an attempt ends, its ``SessionResult`` goes to the sink (written
and flushed) before anything else happens — statistics, restart decision, breaker, the
next start. Turn records go to the sink as each turn finishes (the session actor's
``on_turn`` hook).

Restarts follow OTP (:mod:`.policy`): per session restart type, intensity (N restarts in
T s) and exponential backoff with jitter on trio's clock; a restarted attempt is planned at
the end of its backoff, and its ``connect_ms``/``session_ready_ms`` count from there. A
session is counted once, whatever its attempts: ``started`` counts first attempts,
``completed`` / ``failed`` / ``cancelled`` the outcome of its last attempt (when no further
attempt follows); ``attempts`` and ``restarts`` count the rest. The
fleet-wide :class:`~.breaker.CircuitBreaker` holds new attempts (as *pending*) while the
target fails.

Coordinated omission: every attempt has a *planned* start (from the load plan, the caller,
or the backoff); the actor measures connect/ready latency from it, and a start that runs
late is counted (``late_starts``; ``late_start_ms`` on the result) or dropped (beyond
``drop_after_ms`` or at ``max_concurrency``; a ``start_dropped`` line) — never shifted.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, nullcontext
from typing import Any, Literal, Protocol, TypeVar

import attrs
import trio

from orchestrator.metrics import LiveStats, SessionResult, TurnRecord
from orchestrator.metrics.failure import Failure
from orchestrator.metrics.thresholds import check_tags
from orchestrator.session.actor import Session, open_session
from orchestrator.session.pacer import Pacer, Ticker
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor.breaker import CircuitBreaker
from orchestrator.supervisor.monitor import CpuSampler, LagHistogram, LoopMonitor
from orchestrator.supervisor.plan import decide_start
from orchestrator.supervisor.policy import (
    Backoff,
    GiveUp,
    Restart,
    RestartHistory,
    RestartIntensity,
    RestartPolicy,
    RestartType,
)
from orchestrator.supervisor.rate_gate import RateGate
from orchestrator.supervisor.sink import ListSink, RecordSink
from orchestrator.supervisor.snapshot import MetricPercentiles, RateCounter, SupervisorSnapshot
from orchestrator.supervisor.validity import ValidityLimits, judge

__all__ = [
    "Driver",
    "MeasuredPacer",
    "PlannedLoad",
    "SessionHandle",
    "SessionState",
    "Supervisor",
    "SupervisorDraining",
    "open_supervisor",
]

log = logging.getLogger(__name__)

#: A conversation script: called with the ready session handle; returning ends the session
#: normally (websocket close 1000). Exceptions it raises fail that session (as data).
Driver = Callable[[Session], Awaitable[None]]

SessionState = Literal["pending", "connecting", "active", "restarting", "done"]


class SupervisorDraining(RuntimeError):
    """:meth:`Supervisor.start` was called after :meth:`Supervisor.drain` began."""


_StatsT = TypeVar("_StatsT")
_StatsT_co = TypeVar("_StatsT_co", covariant=True)


class PlannedLoad(Protocol[_StatsT_co]):
    """A planned load shape that runs itself on a supervisor (:class:`~.workload.Workload`).
    :meth:`Supervisor.run_workload` calls its ``run``, so this module does not import the
    load shapes built on top of it."""

    async def run(self, sup: Supervisor, *, t0: float | None = None) -> _StatsT_co:
        """Start the planned sessions on ``sup`` until the plan ends (or ``sup`` drains)
        and every session it started is done; return how it went. Cancellation stops
        the planning; the sessions already started stay ``sup``'s."""
        ...


class MeasuredPacer:
    """A :class:`~orchestrator.session.pacer.Pacer` that records the lateness of every
    wake-up (actual minus deadline) of the pacer it wraps: the fleet-wide pacer lateness
    that decides whether the generator kept up."""

    def __init__(self, inner: Pacer) -> None:
        self.inner = inner
        self.histogram = LagHistogram()

    async def wait_until(self, deadline: float) -> float:
        """As the inner pacer's ``wait_until``; records ``actual - deadline``."""
        actual = await self.inner.wait_until(deadline)
        self.histogram.record(actual - deadline)
        return actual

    def align(self, t: float) -> float:
        """As the inner pacer's ``align``."""
        return self.inner.align(t)


@attrs.define(eq=False)
class SessionHandle:
    """One supervised session (all its attempts). ``state`` is the current lifecycle
    state; ``results`` every attempt's result in order; ``result`` the latest."""

    session_id: str
    spec: SessionSpec
    driver: Driver | None
    policy: RestartPolicy
    planned_start: float
    state: SessionState = "pending"
    attempt: int = 0
    session: Session | None = None
    results: list[SessionResult] = attrs.field(factory=list)
    dropped: str | None = None
    """Why the start was dropped (``"too_late"``, ``"max_concurrency"``, ``"drained"``,
    ``"cancelled"``), when it never started."""
    gave_up: str | None = None
    history: RestartHistory = attrs.field(factory=RestartHistory)
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _done: trio.Event = attrs.field(factory=trio.Event)

    @property
    def result(self) -> SessionResult | None:
        """The latest attempt's result (``None`` before the first attempt ended)."""
        return self.results[-1] if self.results else None

    @property
    def done(self) -> bool:
        """True once no further attempt will run."""
        return self._done.is_set()

    def cancel(self) -> None:
        """Cancel this session now (its result gets status ``cancelled``; no restart)."""
        self._scope.cancel()

    async def wait(self) -> SessionResult | None:
        """Wait until the session is done (final attempt ended, or dropped) and return
        the last result (``None`` if it never started).

        Cancellation: raises ``Cancelled``; the session itself goes on.
        """
        await self._done.wait()
        return self.result


class Supervisor:
    """Runs session actors; created by :func:`open_supervisor` (see the module docstring).

    Counters (read them through :meth:`snapshot`) and the shared ``ticker`` / ``pacer``
    / ``monitor`` / ``breaker`` / ``live`` objects are public for inspection.
    """

    def __init__(
        self,
        *,
        sink: RecordSink,
        restart: RestartPolicy,
        breaker: CircuitBreaker | None,
        monitor: LoopMonitor | None,
        ticker: Ticker,
        validity_limits: ValidityLimits,
        late_after_ms: float,
        drop_after_ms: float | None,
        live_window_s: float,
        rate_window_s: float,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.sink = sink
        #: user tags of the run, added to every session's own (the run's win)
        self.tags = check_tags(tags or {}, "open_supervisor(tags=...)")
        self.restart = restart
        self.breaker = breaker
        self.monitor = monitor
        self.ticker = ticker
        self.pacer = MeasuredPacer(ticker)
        self.validity_limits = validity_limits
        self.late_after_ms = late_after_ms
        self.drop_after_ms = drop_after_ms
        self.live = LiveStats(live_window_s, slot_s=1.0, clock=trio.current_time)
        self.t0 = trio.current_time()
        self.handles: dict[str, SessionHandle] = {}
        self.planned_total: int | None = None
        self.draining = False
        self.interrupted = False
        """Set by the caller when the run was stopped early (e.g. Ctrl-C); goes to
        ``run_end``."""
        self._starts = RateCounter(rate_window_s)
        self._ends = RateCounter(rate_window_s)
        self._nursery: trio.Nursery | None = None
        self._counts: dict[str, int] = dict.fromkeys(
            ("pending", "connecting", "active", "restarting"), 0
        )
        self.started = 0
        self.attempts = 0
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.restarts = 0
        self.gave_up = 0
        self.late_starts = 0
        self.dropped_starts = 0
        self.connect_attempts = 0
        self.refused_by_status: dict[str, int] = {}
        self.reconnects = 0
        self.last_error: str | None = None
        self._idle = trio.Event()
        self._idle.set()
        self._live_handles = 0
        self._auto_index = 0
        #: ``--respect-rate-limits``: holds starts while the server's limits are low
        self.rate_gate: RateGate | None = None

    # ------------------------------------------------------------------ state helpers
    def _set_state(self, handle: SessionHandle, state: SessionState) -> None:
        old = handle.state
        if old in self._counts:
            self._counts[old] -= 1
        if state in self._counts:
            self._counts[state] += 1
        handle.state = state

    @property
    def running(self) -> int:
        """Session actors alive now (connecting + active)."""
        return self._counts["connecting"] + self._counts["active"]

    def now_s(self) -> float:
        """Seconds since the supervisor started (trio clock)."""
        return trio.current_time() - self.t0

    # ------------------------------------------------------------------ starting
    async def start(
        self,
        spec: SessionSpec,
        driver: Driver | None = None,
        *,
        restart: RestartPolicy | RestartType | str | None = None,
        planned_start: float | None = None,
        max_concurrency: int | None = None,
    ) -> SessionHandle:
        """Supervise one session: run ``driver`` over it (``None``: connect, configure,
        close), restarting it per ``restart`` (default: the supervisor's policy; a bare
        restart type uses the supervisor's intensity and backoff).

        ``planned_start`` (trio time, default now) anchors the session's latencies; the
        child waits until then (state ``pending``). ``max_concurrency``: drop the start
        (reason ``"max_concurrency"``) if that many sessions are running when it is due.
        ``spec.session_id`` names the session (``"session"``, the default, is replaced
        by a unique ``"sNNNNNN"``).

        Returns the :class:`SessionHandle` at once (the session runs in the supervisor's
        nursery). Raises :class:`SupervisorDraining` once :meth:`drain` has begun.
        Cancellation: raises ``Cancelled`` before anything was started.
        """
        await trio.lowlevel.checkpoint()
        return self.start_nowait(
            spec,
            driver,
            restart=restart,
            planned_start=planned_start,
            max_concurrency=max_concurrency,
        )

    def start_nowait(
        self,
        spec: SessionSpec,
        driver: Driver | None = None,
        *,
        restart: RestartPolicy | RestartType | str | None = None,
        planned_start: float | None = None,
        max_concurrency: int | None = None,
    ) -> SessionHandle:
        """Synchronous :meth:`start` (for planners that must not yield between starts)."""
        if self.draining:
            raise SupervisorDraining("the supervisor is draining: no new sessions")
        if self._nursery is None:
            raise RuntimeError("Supervisor.start: the supervisor is not running")
        policy = self._policy(restart)
        session_id = spec.session_id
        if session_id == "session" or session_id in self.handles:
            session_id = f"s{self._auto_index:06d}"
            while session_id in self.handles:
                self._auto_index += 1
                session_id = f"s{self._auto_index:06d}"
            self._auto_index += 1
        planned = trio.current_time() if planned_start is None else planned_start
        handle = SessionHandle(
            session_id=session_id,
            spec=spec,
            driver=driver,
            policy=policy,
            planned_start=planned,
        )
        self.handles[session_id] = handle
        self._counts["pending"] += 1
        self._live_handles += 1
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        self._nursery.start_soon(self._child, handle, max_concurrency, name=f"session {session_id}")
        return handle

    def _policy(self, restart: RestartPolicy | RestartType | str | None) -> RestartPolicy:
        if restart is None:
            return self.restart
        if isinstance(restart, RestartPolicy):
            return restart
        return RestartPolicy(
            restart_type=RestartType(restart),
            intensity=self.restart.intensity,
            backoff=self.restart.backoff,
        )

    # ------------------------------------------------------------------ one child
    async def _child(self, handle: SessionHandle, max_concurrency: int | None) -> None:
        try:
            with handle._scope:
                await self._supervise(handle, max_concurrency)
        finally:
            if handle.state != "done":
                if handle.state == "pending" and not handle.results and handle.dropped is None:
                    self._drop(handle, "cancelled", trio.current_time())
                self._set_state(handle, "done")
            if handle.results:
                self._tally(handle.results[-1])
            handle.session = None  # do not keep a finished actor's state alive
            if self.handles.get(handle.session_id) is handle:
                del self.handles[handle.session_id]
            handle._done.set()
            self._live_handles -= 1
            if self._live_handles == 0:
                self._idle.set()

    async def _supervise(self, handle: SessionHandle, max_concurrency: int | None) -> None:
        planned = handle.planned_start
        while True:
            await trio.sleep_until(planned)
            decided = planned
            gate = self.rate_gate
            if gate is not None and await gate.wait_open(lambda: self.running):
                decided = trio.current_time()  # a held start is neither late nor dropped
            # The breaker grant is held for exactly this block: an attempt that ends with an
            # outcome records it; every other exit (dropped start, Cancelled, a bug raising)
            # releases it when the block ends, so no path can leak a HALF_OPEN probe slot.
            admission = self.breaker.admit() if self.breaker is not None else nullcontext()
            async with admission as grant:
                now = trio.current_time()
                if handle.attempt == 0:
                    decision = decide_start(
                        decided,
                        now,
                        running=self.running,
                        max_concurrency=max_concurrency,
                        late_after_ms=self.late_after_ms,
                        drop_after_ms=self.drop_after_ms,
                    )
                    if not decision.started:
                        self._drop(handle, decision.reason or "too_late", now, decision.late_ms)
                        return
                    if decision.status == "late":
                        self.late_starts += 1
                # a held start is planned anew for when the gate opened (its max_duration
                # and lateness count from there)
                result = await self._attempt(handle, decided)
                end = trio.current_time()
                if grant is not None and result.status != "cancelled":
                    grant.record(result.status == "completed", end)
            if result.status == "cancelled" or self.draining:
                return
            choice = handle.policy.decide(result.status, handle.history, end)
            if isinstance(choice, Restart):
                handle.history.record(end, choice.delay_s)
                self.restarts += 1
                handle.attempt += 1
                planned = end + choice.delay_s
                self._set_state(handle, "restarting")
                continue
            if isinstance(choice, GiveUp):
                handle.gave_up = choice.reason
                self.gave_up += 1
            return

    def _drop(
        self, handle: SessionHandle, reason: str, now: float, late_ms: float | None = None
    ) -> None:
        handle.dropped = reason
        self.dropped_starts += 1
        if late_ms is None:
            late_ms = (now - handle.planned_start) * 1000.0
        self.sink.event(
            "start_dropped",
            {
                "session_id": handle.session_id,
                "planned_start_s": round(handle.planned_start - self.t0, 6),
                "late_ms": round(late_ms, 3),
                "reason": reason,
            },
        )

    def _attempt_spec(self, handle: SessionHandle, planned: float) -> SessionSpec:
        spec = handle.spec
        pacing = spec.pacing
        if pacing.pacer is None:
            pacing = attrs.evolve(pacing, pacer=self.pacer)
        user_on_turn = spec.on_turn

        def on_turn(record: TurnRecord) -> None:
            self.sink.turn(record)  # on disk first
            self.live.observe_turn(record)
            if self.rate_gate is not None:
                self.rate_gate.turn_done((record.input_tokens or 0) + (record.output_tokens or 0))
            if record.failed and record.errors:
                err = record.errors[-1]
                self.last_error = f"{err.code}: {err.message}"
            if user_on_turn is not None:
                user_on_turn(record)

        return attrs.evolve(
            spec,
            tags={**spec.tags, **self.tags},
            session_id=handle.session_id,
            attempt=handle.attempt,
            planned_start=planned,
            run_t0=self.t0,
            pacing=pacing,
            on_turn=on_turn,
            rate_limits=self.rate_gate if self.rate_gate is not None else spec.rate_limits,
        )

    async def _attempt(self, handle: SessionHandle, planned: float) -> SessionResult:
        """Run one attempt; always returns its result (or raises ``Cancelled`` after
        recording a cancelled result).

        An attempt is bounded by its session: with a ``max_duration`` the session ends
        itself, and its ``open_session`` block cancels a driver still running
        ``driver_grace`` seconds later."""
        self._set_state(handle, "connecting")
        self.attempts += 1
        if handle.attempt == 0:
            self.started += 1
            self._starts.add(trio.current_time())
        result: SessionResult | None = None
        session: Session | None = None
        try:
            spec = self._attempt_spec(handle, planned)
            try:
                async with open_session(spec) as opened:
                    session = opened
                    handle.session = opened
                    if opened.result is None:
                        self._set_state(handle, "active")
                    if handle.driver is not None and opened.result is None:
                        await handle.driver(opened)
            except* Exception as group:
                failure = Failure.from_exception(group, "attempt")
                log.debug("%s: attempt failed", handle.session_id, exc_info=group)
                result = self._failed_result(handle, planned, session, failure)
            if result is None:
                assert session is not None
                result = session.result
        finally:
            if result is None:
                # Cancelled (or a BaseException): the actor recorded a cancelled result
                # before Cancelled propagated; if it never got that far, make one.
                result = session.result if session is not None else None
                if result is None:
                    result = self._local_result(handle, planned, "cancelled", None)
            assert result is not None
            self._record_result(handle, result)
        return result

    def _failed_result(
        self,
        handle: SessionHandle,
        planned: float,
        session: Session | None,
        failure: Failure,
    ) -> SessionResult:
        # The actor decides the status of a session it ran: one aborted because the
        # driver raised is ``failed`` with the driver's error as reason (or its own,
        # earlier failure). Only an attempt that failed before there was an actor result
        # (e.g. the actor could not be built or started) is described here.
        base = session.result if session is not None else None
        if base is not None:
            return base
        return self._local_result(handle, planned, "failed", failure)

    def _local_result(
        self, handle: SessionHandle, planned: float, status: str, failure: Failure | None
    ) -> SessionResult:
        now = trio.current_time()
        return SessionResult(
            session_id=handle.session_id,
            status=status,  # type: ignore[arg-type]
            reason=None if failure is None else str(failure),
            failure=failure,
            label=handle.spec.label,
            scenario=handle.spec.label,
            tags={**handle.spec.tags, **self.tags} or None,
            attempt=handle.attempt,
            planned_start_s=planned - self.t0,
            late_start_ms=None,
            t_end_s=now - self.t0,
        )

    def _record_result(self, handle: SessionHandle, result: SessionResult) -> None:
        self.sink.session(result)  # on disk before anything else
        handle.results.append(result)
        self._set_state(handle, "done")
        self.live.observe_attempt(result)  # latencies of every attempt, as the summary's
        self.connect_attempts += result.connect_attempts
        self.reconnects += result.reconnects
        for status, count in (result.refused_by_status or {}).items():
            self.refused_by_status[status] = self.refused_by_status.get(status, 0) + count
        if result.status == "failed":
            self.last_error = result.reason

    def _tally(self, result: SessionResult) -> None:
        """Count a session once, by its last attempt's outcome (it is done): the
        counters, the live stats (``errors_per_s``) and the sink's observers that count
        sessions (``session_done``, e.g. :class:`~.live_thresholds.LiveThresholds`)."""
        self._ends.add(trio.current_time())
        if result.status == "completed":
            self.completed += 1
        elif result.status == "failed":
            self.failed += 1
        else:
            self.cancelled += 1
        self.live.observe_session_done(result)  # its status once (errors_per_s)
        self._announce_done(result)

    def _announce_done(self, result: SessionResult) -> None:
        """Show a done session's last attempt to the observers of a :class:`~.tee.TeeSink`
        sink that have a ``session_done`` method (``sink.session`` saw every attempt).
        An observer's exception is logged, as the tee does: a live view never ends a run."""
        for observer in getattr(self.sink, "observers", None) or ():
            done = getattr(observer, "session_done", None)
            if done is None:
                continue
            try:
                done(result)
            except Exception:
                log.exception("sink observer %r failed on session_done", observer)

    # ------------------------------------------------------------------ stopping
    async def wait_idle(self) -> None:
        """Wait until no session is pending, running or restarting.

        Cancellation: raises ``Cancelled``; sessions go on."""
        while self._live_handles:
            await self._idle.wait()

    async def drain(self, grace_s: float = 30.0) -> None:
        """Stop starting sessions (pending and restarting ones are dropped, workloads stop
        planning) and let running sessions finish for up to ``grace_s`` seconds; then
        cancel the rest. Returns when every session is done.

        Cancellation: raises ``Cancelled``; whatever was cancelled stays cancelled.
        """
        self.draining = True
        for handle in list(self.handles.values()):
            if handle.state in ("pending", "restarting"):
                if handle.state == "pending" and not handle.results:
                    self._drop(handle, "drained", trio.current_time())
                handle.cancel()
        with trio.move_on_after(grace_s):
            await self.wait_idle()
        self.cancel()
        await self.wait_idle()

    def cancel(self) -> None:
        """Cancel every session now (results recorded as ``cancelled``); no new starts."""
        self.draining = True
        for handle in list(self.handles.values()):
            if not handle.done:
                handle.cancel()

    # ------------------------------------------------------------------ status
    def validity(self, *, live: bool = False) -> dict[str, Any]:
        """``{"valid": bool, "reasons": [...]}``: did the generator keep up (event-loop
        lag p99 and pacer lateness p99 within :attr:`validity_limits`)? That is the
        end-of-run verdict (``run_end``). ``live=True``: the verdict while the run goes
        (:meth:`~.validity.ValidityLimits.judge_live`: a figure with too few samples is not
        judged yet), with ``"judged"`` added."""
        mon = self.monitor.snapshot() if self.monitor is not None else None
        lag = None if mon is None else mon.lag_p99_ms
        pacer = self.pacer.histogram.percentile_ms(99)
        if live:
            samples = None if mon is None else mon.samples
            frames = self.pacer.histogram.count
            return self.validity_limits.judge_live(lag, samples, pacer, frames)
        verdict = judge(lag, pacer, self.validity_limits)
        return {"valid": verdict.valid, "reasons": list(verdict.reasons)}

    def monitor_figures(self) -> dict[str, Any]:
        """Self-monitoring figures for ``run_end`` (loop lag, pacer lateness, CPU)."""
        out: dict[str, Any] = {}
        if self.monitor is not None:
            out.update(attrs.asdict(self.monitor.snapshot()))
        hist = self.pacer.histogram
        out["pacer_frames"] = hist.count
        out["pacer_p50_ms"] = hist.percentile_ms(50)
        out["pacer_p99_ms"] = hist.percentile_ms(99)
        out["pacer_max_ms"] = hist.max_ms
        out["ticker_ticks"] = self.ticker.ticks
        out["ticker_wakes"] = self.ticker.wakes
        if self.breaker is not None:
            out["breaker_trips"] = self.breaker.trips
        out["restarts"] = self.restarts
        out["gave_up"] = self.gave_up
        if self.rate_gate is not None:
            out.update(self.rate_gate.figures())
        return out

    def snapshot(self) -> SupervisorSnapshot:
        """The live status now (counts, rates, rolling percentiles, self-monitoring)."""
        now = trio.current_time()
        metrics: dict[str, MetricPercentiles] = {}
        for name, window in self.live.windows.items():
            p50, p95, p99 = window.percentiles((50, 95, 99))
            metrics[name] = MetricPercentiles(count=window.count(), p50=p50, p95=p95, p99=p99)
        mon = self.monitor.snapshot() if self.monitor is not None else None
        return SupervisorSnapshot(
            t_s=now - self.t0,
            pending=self._counts["pending"],
            connecting=self._counts["connecting"],
            active=self._counts["active"],
            restarting=self._counts["restarting"],
            started=self.started,
            attempts=self.attempts,
            completed=self.completed,
            failed=self.failed,
            cancelled=self.cancelled,
            restarts=self.restarts,
            connect_attempts=self.connect_attempts,
            refused=sum(self.refused_by_status.values()),
            refused_by_status=dict(self.refused_by_status),
            reconnects=self.reconnects,
            gave_up=self.gave_up,
            late_starts=self.late_starts,
            dropped_starts=self.dropped_starts,
            turns=self.live.turns,
            turns_failed=self.live.turns_failed,
            start_rate=self._starts.rate(now, self.t0),
            finish_rate=self._ends.rate(now, self.t0),
            errors_per_s=self.live.errors_per_s(),
            metrics=metrics,
            loop_lag_p99_ms=None if mon is None else mon.lag_p99_ms,
            loop_lag_recent_max_ms=None if mon is None else mon.lag_recent_max_ms,
            pacer_p99_ms=self.pacer.histogram.percentile_ms(99),
            loop_lag_samples=None if mon is None else mon.samples,
            pacer_samples=self.pacer.histogram.count,
            cpu_percent=None if mon is None else mon.cpu_percent,
            breaker="closed" if self.breaker is None else self.breaker.poll(now).value,
            draining=self.draining,
            planned_total=self.planned_total,
            last_error=self.last_error,
        )

    async def _sample_timeline(self, interval_s: float) -> None:
        while True:
            await trio.sleep(interval_s)
            self.sink.snapshot(self.snapshot().timeline_point())

    # ------------------------------------------------------------------ workloads
    async def run_workload(
        self, workload: PlannedLoad[_StatsT], *, t0: float | None = None
    ) -> _StatsT:
        """Run a planned load shape (:class:`~.workload.Workload`) to its end and return
        its :class:`~.workload.WorkloadStats`: ``workload.run(self, t0=t0)``, see
        :func:`.workload.run_workload` (cancellation stops the planning; the sessions
        already started stay this supervisor's)."""
        return await workload.run(self, t0=t0)


@asynccontextmanager
async def open_supervisor(
    *,
    sink: RecordSink | None = None,
    restart: RestartPolicy | None = None,
    breaker: CircuitBreaker | None = None,
    monitor: bool = True,
    monitor_interval_s: float = 0.1,
    ticker_resolution_s: float = 0.010,
    validity_limits: ValidityLimits | None = None,
    late_after_ms: float = 50.0,
    drop_after_ms: float | None = None,
    live_window_s: float = 30.0,
    rate_window_s: float = 10.0,
    timeline_interval_s: float | None = 1.0,
    run_info: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    seed: int = 0,
    rate_gate: RateGate | None = None,
    tags: Mapping[str, str] | None = None,
) -> AsyncIterator[Supervisor]:
    """Run a :class:`Supervisor` for the duration of the block.

    ``sink`` receives every record (default: an in-memory :class:`ListSink`, available as
    ``sup.sink``). ``restart`` is the default :class:`RestartPolicy` (transient, 3
    restarts in 60 s, backoff 0.5 s doubling to 30 s with full jitter seeded by ``seed``).
    ``breaker``: a fleet-wide :class:`CircuitBreaker` (``None``: no breaker).
    ``rate_gate``: hold starts while the server's rate limits are low (:mod:`.rate_gate`).
    ``tags``: the run's user tags (``--tag env=staging``), added to every session's own
    ``SessionSpec.tags`` (the run's win on a clash) and so to every record; a bad tag
    name or an empty value raises ``ValueError`` before anything starts.
    ``monitor``: run the event-loop lag/CPU monitor. ``late_after_ms``/``drop_after_ms``:
    when a start counts as late / is dropped. ``timeline_interval_s``: how often a
    ``snapshot`` line goes to the sink (``None``: never). ``run_info``/``config``: when
    given, written to the sink as the ``run`` line first thing, and a ``run_end`` line
    (validity, late/dropped counts, monitor figures) is written on exit, whatever the
    exit.

    Resource handling: on normal exit the block waits for every session to end (as a
    nursery does); on an exception or cancellation every session is cancelled (its
    result recorded as ``cancelled``) before the exception propagates. The shared pacer
    ticker and the monitor stop when the block ends.
    """
    sink = ListSink() if sink is None else sink
    if restart is None:
        restart = RestartPolicy(
            restart_type=RestartType.TRANSIENT,
            intensity=RestartIntensity(3, 60.0),
            backoff=Backoff(rng=random.Random(seed)),
        )
    loop_monitor = LoopMonitor(interval_s=monitor_interval_s, cpu=CpuSampler()) if monitor else None
    sup = Supervisor(
        sink=sink,
        restart=restart,
        breaker=breaker,
        monitor=loop_monitor,
        ticker=Ticker(ticker_resolution_s),
        validity_limits=validity_limits or ValidityLimits(),
        late_after_ms=late_after_ms,
        drop_after_ms=drop_after_ms,
        live_window_s=live_window_s,
        rate_window_s=rate_window_s,
        tags=tags,
    )
    sup.rate_gate = rate_gate
    if run_info is not None or config is not None:
        sink.event("run", {"run": dict(run_info or {}), "config": dict(config or {})})
    interrupted = False
    try:
        async with trio.open_nursery() as services:
            await services.start(sup.ticker.run)
            if loop_monitor is not None:
                await services.start(loop_monitor.run)
            if timeline_interval_s is not None and math.isfinite(timeline_interval_s):
                services.start_soon(sup._sample_timeline, timeline_interval_s)
            try:
                async with trio.open_nursery() as sessions:
                    sup._nursery = sessions
                    try:
                        yield sup
                    except BaseException:
                        sup.cancel()
                        raise
            finally:
                sup._nursery = None
                services.cancel_scope.cancel()
    except BaseException:
        interrupted = True
        raise
    finally:
        if run_info is not None or config is not None:
            sink.event(
                "run_end",
                {
                    "t_s": round(sup.now_s(), 6),
                    "late_starts": sup.late_starts,
                    "dropped_starts": sup.dropped_starts,
                    "validity": sup.validity(),
                    "monitor": sup.monitor_figures(),
                    "interrupted": interrupted or sup.interrupted,
                },
            )
