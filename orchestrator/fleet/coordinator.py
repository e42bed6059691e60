"""The coordinator of a fleet run: N workers, one results file, one live view.

:class:`Fleet` starts every worker (a :class:`WorkerLink`: a local process or a Ray actor)
with its :class:`~orchestrator.fleet.job.WorkOrder`, waits until each one is ready (its
job read, its specs built), then gives all of them the same start epoch, a wall-clock
moment :data:`START_MARGIN_S` ahead, so their shares of the plan start together. While
they run it

* appends every record a worker streams (already tagged with its worker) to the one
  results sink, as it comes, and feeds the turns and sessions to its own
  :class:`~orchestrator.metrics.LiveStats` (the panel's rolling percentiles are the
  whole fleet's, not an average of the workers');
* keeps each worker's latest live status and merges them into one
  :class:`~orchestrator.supervisor.snapshot.SupervisorSnapshot` (:meth:`Fleet.snapshot`),
  which the CLI's progress panel polls unchanged, and samples it into the results file's
  timeline (``snapshot`` lines) every ``timeline_interval_s``;
* forwards stop requests: :meth:`Fleet.drain` and :meth:`Fleet.cancel` (the CLI's signal
  watcher calls them as it calls a supervisor's) reach every worker as commands;
* shows every turn, session and run-level record it takes to its ``observers`` (sink
  observers as a :class:`~orchestrator.supervisor.tee.TeeSink`'s: live ``:abort``
  thresholds, a Prometheus exporter), after the record reached the file.

A worker that dies (its output ends without its ``end`` message, or it reports an
``error``) is reported on stderr, its finished records are kept (they are in the file
already), the run is marked invalid with a reason naming it, and the other workers are
drained (running sessions get ``grace_s``): the plan can no longer be run as planned, and
the run never waits for a worker that is gone.

A worker that hangs (alive but silent: a wedged event loop, a stuck C call) is lost the
same way. From the start on, a worker sends a ``status`` message every
``status_interval_s`` (0.5 s); one that sends nothing at all for ``silence_timeout_s``
(:data:`SILENCE_TIMEOUT_S`) is hung. At once it is said on stderr (``worker 1 (pid 1234)
hung (no message for 60 s): stopping it; ...``), named among :attr:`Fleet.deaths` (the
live validity is invalid from then on) and the other workers are drained; then its input
is ended, its remaining lines are taken for up to ``stop_timeout_s``, it is stopped, and
the final word on it says how (``worker 1 (pid 1234) hung (no message for 60 s) and was
stopped (killed by SIGKILL): ...``). Before the start the ready timeout applies instead (a
ready worker waits silently for the others).

Stopping: a worker's end of input (the coordinator cancelled, or gone) makes it cancel
its sessions; the coordinator keeps taking its lines until it ends (bounded by
``stop_timeout_s``), so the cancelled sessions' records reach the file, and only then
stops it. After a cancel (the second stop signal), a worker that has not ended within
``grace_s`` + ``stop_timeout_s`` (wedged) gets the whole run cancelled that way.

When every worker has ended (or the run was cancelled after its start) the coordinator
writes the ``run_end`` line (``interrupted`` when it was stopped early): start counts
summed, self-monitoring merged (:func:`~orchestrator.fleet.merge.merge_monitor`; the
coordinator's own CPU time as ``coordinator_cpu_s``), validity valid only if every worker
was (reasons name the worker), and ``workers``: each one's own figures.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import orjson
import trio

from orchestrator.fleet.merge import (
    merge_monitor,
    merge_snapshots,
    snapshot_from_dict,
    worker_validity,
)
from orchestrator.fleet.wire import Command, WireError, command_line, is_record, parse_message
from orchestrator.metrics import LiveStats, SessionResult, TurnRecord
from orchestrator.metrics.records import ResultsFormatError, record_from_dict
from orchestrator.supervisor.sink import JsonlSink, RecordSink
from orchestrator.supervisor.snapshot import MetricPercentiles, SupervisorSnapshot
from orchestrator.supervisor.tee import show
from orchestrator.supervisor.validity import ValidityLimits, merge_validity

__all__ = [
    "READY_TIMEOUT_S",
    "SILENCE_TIMEOUT_S",
    "START_MARGIN_S",
    "STOP_TIMEOUT_S",
    "Fleet",
    "FleetError",
    "FleetObserver",
    "FleetResults",
    "FleetSink",
    "WorkerLink",
]

#: How long a worker may take to be ready (start, imports, read its job, build its specs).
READY_TIMEOUT_S = 120.0
#: The start epoch is this far ahead of the moment the last worker was ready.
START_MARGIN_S = 0.25
#: How long a stopped worker may take to hand over its last records and end.
STOP_TIMEOUT_S = 10.0
#: How long a running worker may send nothing at all before it is judged hung. A live
#: worker sends its status every 0.5 s; 60 s is far above that and above any garbage
#: collection pause or event-loop stall a live worker has (those are milliseconds to a
#: few seconds, and already make the run invalid when they matter), so only a worker
#: that stopped working reaches it.
SILENCE_TIMEOUT_S = 60.0


class FleetError(RuntimeError):
    """The fleet could not start (a worker failed before it was ready)."""


class WorkerLink(Protocol):
    """A worker as the coordinator sees it, whatever carries it (process, Ray actor)."""

    @property
    def name(self) -> str:
        """How reports name the worker (``worker 1 (pid 1234)``)."""
        ...

    async def open(self, order: bytes) -> None:
        """Start the worker and give it its order."""

    async def receive_some(self) -> bytes:
        """The next bytes of its lines (``b""``: it ended)."""
        ...

    async def send(self, data: bytes) -> None:
        """Send a command line (nothing happens once it ended)."""

    async def close_input(self) -> None:
        """End its commands (it cancels its sessions and ends) without waiting; its
        remaining lines can still be received. Raises nothing but ``Cancelled``."""

    async def close(self) -> str:
        """Stop it (bounded, never raises) and say how it ended."""
        ...


class FleetObserver(Protocol):
    """What the coordinator shows the records it takes to (a sink observer: see
    :class:`~orchestrator.supervisor.tee.TeeSink`). Must be quick and must not raise
    (an observer's exception is logged and skipped: a live view never ends a run)."""

    def turn(self, record: TurnRecord) -> None: ...

    def session(self, record: SessionResult) -> None: ...

    def event(self, kind: str, data: Mapping[str, Any]) -> None: ...


class FleetSink(RecordSink, Protocol):
    """The coordinator's sink: a :class:`RecordSink` that also appends a worker's record
    line as it is."""

    def write_line(self, line: bytes) -> None: ...


class FleetResults(JsonlSink):
    """The results file of a fleet run: a :class:`JsonlSink` that also appends the
    workers' record lines unchanged (flushed at once, like every line)."""

    def write_line(self, line: bytes) -> None:
        """Append one complete line (ending in ``\\n``)."""
        self._write(line)


@attrs.define(eq=False)
class _Worker:
    index: int
    link: WorkerLink
    send: trio.MemorySendChannel[Command]
    receive: trio.MemoryReceiveChannel[Command]
    settled: trio.Event = attrs.field(factory=trio.Event)
    """Set once the worker said ``ready`` or ended."""
    done: trio.Event = attrs.field(factory=trio.Event)
    watch: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    """Its silence watchdog: armed at the start, pushed back by every chunk it sends."""
    ready: bool = False
    status: SupervisorSnapshot | None = None
    end: dict[str, Any] | None = None
    error: str | None = None
    died: str | None = None
    """Why it was lost (it died or hung), naming it."""
    ended_how: str | None = None
    """How its link ended: its ``error``, else how the link closed."""
    sessions: int = 0


class Fleet:
    """Runs one fleet (see the module docstring). ``grace_s``: what a drain gives running
    sessions when a worker is lost. ``planned_total``: the whole plan's session count, when
    known. ``quiet``: no messages on stderr. ``observers``: shown every turn, session and
    run-level record taken (see :class:`FleetObserver`). ``validity_limits``: what
    :meth:`validity` judges the workers' live status against. ``silence_timeout_s``: how
    long a running worker may send nothing before it is judged hung."""

    def __init__(
        self,
        links: Sequence[WorkerLink],
        sink: FleetSink,
        *,
        grace_s: float = 30.0,
        planned_total: int | None = None,
        quiet: bool = False,
        live_window_s: float = 30.0,
        timeline_interval_s: float | None = 1.0,
        ready_timeout_s: float = READY_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        silence_timeout_s: float = SILENCE_TIMEOUT_S,
        observers: Sequence[FleetObserver] = (),
        validity_limits: ValidityLimits | None = None,
    ) -> None:
        self.sink = sink
        self.grace_s = grace_s
        self.planned_total = planned_total
        self.quiet = quiet
        self.timeline_interval_s = timeline_interval_s
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.silence_timeout_s = silence_timeout_s
        self.observers = list(observers)
        self.validity_limits = validity_limits
        self.live = LiveStats(live_window_s, slot_s=1.0, clock=trio.current_time)
        self.interrupted = False
        """Set by the caller when the run was stopped early (a stop signal)."""
        self.draining = False
        self.t0: float | None = None
        """The start epoch on this process's trio clock (``None`` before the start)."""
        self._workers: list[_Worker] = []
        for index, link in enumerate(links):
            send, receive = trio.open_memory_channel[Command](8)
            self._workers.append(_Worker(index, link, send, receive))
        self._nursery: trio.Nursery | None = None
        self._forcing = False

    @property
    def deaths(self) -> list[str]:
        """Why each worker that was lost (died or hung) was, naming it (empty: none)."""
        return [w.died for w in self._workers if w.died is not None]

    # ------------------------------------------------------------------ running
    async def run(
        self,
        orders: Sequence[bytes],
        *,
        run_info: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        on_start: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Run the fleet: ``orders[i]`` is worker ``i``'s (``dumps_order``). Writes the
        ``run`` line (``run_info``/``config``) first, the ``run_end`` line last; returns
        when every worker has ended. ``on_start`` is awaited at the start epoch (e.g. to
        tell the embedded target the run starts).

        Raises an ``ExceptionGroup`` holding a :class:`FleetError` when a worker fails
        before it is ready or is not ready within ``ready_timeout_s`` (no ``run_end``
        line then: nothing ran). Resource handling: every worker is stopped
        (:meth:`WorkerLink.close`) however this ends. Cancellation (of the caller, or of
        the run by :meth:`cancel` after a wedged worker's grace): every worker's input is
        ended (it cancels its sessions), the records it still writes are appended for up
        to ``stop_timeout_s``, then it is stopped (a local process: SIGTERM, SIGKILL);
        once the start was given, ``run_end`` is written with ``interrupted: true``; a
        cancelled caller then gets ``Cancelled``.
        """
        if len(orders) != len(self._workers):
            raise ValueError(f"Fleet.run: {len(orders)} orders for {len(self._workers)} workers")
        self.sink.event("run", {"run": dict(run_info or {}), "config": dict(config or {})})
        cpu0 = time.process_time()
        finished = False
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._open_all(orders, nursery)
                epoch = time.time() + START_MARGIN_S
                self.t0 = trio.current_time() + START_MARGIN_S
                for worker in self._workers:
                    self._command(worker, Command("go", epoch))
                    worker.watch.deadline = trio.current_time() + self.silence_timeout_s
                if on_start is not None:
                    nursery.start_soon(self._at_start, on_start)
                if self.timeline_interval_s is not None and math.isfinite(self.timeline_interval_s):
                    nursery.start_soon(self._sample_timeline, self.timeline_interval_s)
                for worker in self._workers:
                    await worker.done.wait()
                finished = True
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            if self.t0 is not None:
                if not finished:
                    self.interrupted = True
                self._write_end(time.process_time() - cpu0)

    async def _open_all(self, orders: Sequence[bytes], nursery: trio.Nursery) -> None:
        with trio.move_on_after(self.ready_timeout_s) as waited:
            async with trio.open_nursery() as opening:
                for worker, order in zip(self._workers, orders, strict=True):
                    opening.start_soon(self._open, worker, order, nursery)
        if waited.cancelled_caught:
            late = [w.link.name for w in self._workers if not w.ready]
            raise FleetError(f"{', '.join(late)}: not ready within {self.ready_timeout_s:g} s")

    async def _open(self, worker: _Worker, order: bytes, nursery: trio.Nursery) -> None:
        try:
            await worker.link.open(order)
        except Exception as exc:
            with trio.CancelScope(shield=True):
                await worker.link.close()
            worker.done.set()
            raise FleetError(f"{worker.link.name} could not start: {exc}") from exc
        except BaseException:
            with trio.CancelScope(shield=True):
                await worker.link.close()
            worker.done.set()
            raise
        nursery.start_soon(self._read, worker)
        nursery.start_soon(self._send_commands, worker)
        await worker.settled.wait()
        if not worker.ready:
            raise FleetError(f"{worker.link.name} could not start: {worker.ended_how}")

    async def _send_commands(self, worker: _Worker) -> None:
        async for command in worker.receive:
            await worker.link.send(command_line(command))

    def _command(self, worker: _Worker, command: Command) -> None:
        if worker.done.is_set():
            return
        try:
            worker.send.send_nowait(command)
        except (trio.WouldBlock, trio.ClosedResourceError):
            pass  # at most go, drain and cancel are ever sent: cannot be full

    async def _read(self, worker: _Worker) -> None:
        """Take the worker's lines until its output ends, then stop it and note how it
        ended (a worker without an ``end`` message died; one silent for
        ``silence_timeout_s`` after the start hung: :meth:`_hung` reports it at once).
        Cancellation, or a hung worker: its input is ended and its lines are still taken
        for up to ``stop_timeout_s`` (the records of the sessions it cancels), then it is
        stopped."""
        buf = [b""]
        ended = False
        hung = False
        try:
            with worker.watch:
                await self._take_until_end(worker, buf, worker.watch)
                ended = True
            if worker.watch.cancelled_caught and worker.end is None:
                hung = True  # (silent after its ``end``: it only has to exit, as below)
                self._hung(worker)
        finally:
            with trio.CancelScope(shield=True):
                if not ended:
                    await worker.link.close_input()
                    with trio.move_on_after(self.stop_timeout_s):
                        await self._take_until_end(worker, buf)
                how = await worker.link.close()
            worker.ended_how = worker.error or how
            if hung:
                worker.died = f"{worker.died} and was stopped ({how})"
            elif worker.end is None:
                worker.died = f"{worker.link.name} died ({worker.ended_how})"
            if worker.died is not None:
                worker.died += (
                    f": its {worker.sessions} finished sessions are kept, "
                    "the rest of its share did not run"
                )
            worker.send.close()
            worker.settled.set()
            worker.done.set()
        if worker.died is not None and worker.ready:
            self._lost(worker, announced=hung)

    async def _take_until_end(
        self, worker: _Worker, buf: list[bytes], watch: trio.CancelScope | None = None
    ) -> None:
        """Take the worker's lines until its output ends (``buf[0]``: a partial line);
        once the run started, every chunk pushes ``watch``'s deadline (the silence
        watchdog) ``silence_timeout_s`` ahead."""
        while True:
            chunk = await worker.link.receive_some()
            if not chunk:
                return
            if watch is not None and self.t0 is not None and worker.end is None:
                watch.deadline = trio.current_time() + self.silence_timeout_s
            *lines, buf[0] = (buf[0] + chunk).split(b"\n")
            for line in lines:
                if line:
                    self._take(worker, line)

    def _hung(self, worker: _Worker) -> None:
        """Report a hung worker at detection, before the wait for it to stop: it is named
        among :attr:`deaths` from now on (:meth:`validity` is invalid), said on stderr,
        and the other workers are drained."""
        worker.died = f"{worker.link.name} hung (no message for {self.silence_timeout_s:g} s)"
        if not self.quiet:
            line = f"\n{worker.died}: stopping it; draining the other workers"
            print(line, file=sys.stderr, flush=True)
        self._drain_the_rest()

    def _lost(self, worker: _Worker, *, announced: bool) -> None:
        """Report a lost worker once it was stopped, and drain the others (``announced``:
        :meth:`_hung` said so already)."""
        if not self.quiet:
            tail = "" if announced else "; draining the other workers"
            print(f"\n{worker.died}{tail}", file=sys.stderr, flush=True)
        self._drain_the_rest()

    def _drain_the_rest(self) -> None:
        """Drain every worker (a worker was lost), unless the run already drains; the run
        is draining from now on (an ``:abort`` judged meanwhile does nothing)."""
        if not self.draining and self._nursery is not None:
            self.draining = True
            self._nursery.start_soon(self.drain, self.grace_s)

    def _take(self, worker: _Worker, line: bytes) -> None:
        if is_record(line):
            self.sink.write_line(line + b"\n")
            self._observe(worker, line)
            return
        try:
            msg = parse_message(line)
        except WireError as exc:
            print(f"{worker.link.name}: {exc}", file=sys.stderr, flush=True)
            return
        kind = msg["fleet"]
        if kind == "ready":
            worker.ready = True
            worker.settled.set()
        elif kind == "status":
            worker.status = snapshot_from_dict(msg.get("snapshot") or {})
        elif kind == "end":
            worker.end = msg
            # its work is done: it has the stop timeout to exit, not the silence timeout
            if self.t0 is not None:
                worker.watch.deadline = trio.current_time() + self.stop_timeout_s
        elif kind == "error":
            worker.error = str(msg.get("error"))

    def _observe(self, worker: _Worker, line: bytes) -> None:
        head = line[:48]
        if b'"kind":"turn"' not in head and b'"kind":"session"' not in head:
            if self.observers and b'"kind":"snapshot"' not in head:
                self._show_event(worker, line)
            return
        try:
            record = record_from_dict(orjson.loads(line), where=worker.link.name)
        except (orjson.JSONDecodeError, ResultsFormatError) as exc:
            print(f"{worker.link.name}: {exc}", file=sys.stderr, flush=True)
            return
        if isinstance(record, TurnRecord):
            self.live.observe_turn(record)
            self._show("turn", record)
        elif isinstance(record, SessionResult):
            worker.sessions += 1
            self.live.observe_session(record)
            self._show("session", record)

    def _show_event(self, worker: _Worker, line: bytes) -> None:
        """Show a worker's run-level line (``start_dropped``) to the observers."""
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            print(f"{worker.link.name}: {exc}", file=sys.stderr, flush=True)
            return
        if isinstance(data, dict):
            self._show("event", str(data.pop("kind", "")), data)

    def _show(self, method: str, *args: Any) -> None:
        show(self.observers, method, *args)

    async def _at_start(self, call: Callable[[], Awaitable[object]]) -> None:
        assert self.t0 is not None
        await trio.sleep_until(self.t0)
        await call()

    async def _sample_timeline(self, interval_s: float) -> None:
        assert self.t0 is not None
        await trio.sleep_until(self.t0)
        while True:
            await trio.sleep(interval_s)
            self.sink.snapshot(self.snapshot().timeline_point())

    def _write_end(self, cpu_s: float) -> None:
        ends = [w.end or {} for w in self._workers]
        verdicts = [
            worker_validity(w.link.name, (w.end or {}).get("validity"), w.died)
            for w in self._workers
        ]
        monitor = merge_monitor([e.get("monitor") or {} for e in ends])
        monitor["coordinator_cpu_s"] = round(cpu_s, 3)
        now = trio.current_time()
        self.sink.event(
            "run_end",
            {
                "t_s": round(now - (self.t0 or now), 6),
                "late_starts": sum(int(e.get("late_starts", 0)) for e in ends),
                "dropped_starts": sum(int(e.get("dropped_starts", 0)) for e in ends),
                "validity": merge_validity(*verdicts),
                "monitor": monitor,
                # the coordinator's word: a worker says interrupted after any drain, also
                # one for an ':abort' threshold or a lost worker, which a stop signal is not
                "interrupted": self.interrupted,
                "workers": [
                    {
                        "worker": w.index,
                        "name": w.link.name,
                        "sessions": w.sessions,
                        "died": w.died,
                        "validity": v,
                        "late_starts": e.get("late_starts"),
                        "dropped_starts": e.get("dropped_starts"),
                        "monitor": e.get("monitor"),
                    }
                    for w, v, e in zip(self._workers, verdicts, ends, strict=True)
                ],
            },
        )

    # ------------------------------------------------------------------ stopping
    async def drain(self, grace_s: float = 30.0) -> None:
        """Tell every worker to drain (no new sessions; running ones get ``grace_s``, then
        are cancelled) and wait until every worker has ended.

        Cancellation: raises ``Cancelled``; the workers go on draining."""
        self.draining = True
        for worker in self._workers:
            self._command(worker, Command("drain", grace_s))
        for worker in self._workers:
            await worker.done.wait()

    def cancel(self) -> None:
        """Tell every worker to cancel its sessions now (their results are recorded).
        A worker that has not ended ``grace_s`` + ``stop_timeout_s`` later (wedged: no
        ``end``, no exit) gets the run cancelled (see :meth:`run`), which stops it."""
        self.draining = True
        for worker in self._workers:
            self._command(worker, Command("cancel"))
        if self._nursery is not None and not self._forcing:
            self._forcing = True
            self._nursery.start_soon(self._force_stop, self.grace_s + self.stop_timeout_s)

    async def _force_stop(self, after_s: float) -> None:
        await trio.sleep(after_s)
        if self._nursery is not None and not all(w.done.is_set() for w in self._workers):
            if not self.quiet:
                late = [w.link.name for w in self._workers if not w.done.is_set()]
                print(
                    f"\n{', '.join(late)}: not ended {after_s:g} s after cancel; stopping",
                    file=sys.stderr,
                    flush=True,
                )
            self._nursery.cancel_scope.cancel()

    # ------------------------------------------------------------------ status
    def snapshot(self) -> SupervisorSnapshot:
        """The whole fleet's live status now (see the module docstring): the rolling
        percentiles from the records streamed so far; failed turns and ``errors_per_s``
        the workers' own, summed (a worker counts a session once, by its last attempt,
        where the records hold every attempt)."""
        now = trio.current_time()
        merged = merge_snapshots([w.status for w in self._workers if w.status is not None])
        metrics: dict[str, MetricPercentiles] = {}
        for name, window in self.live.windows.items():
            p50, p95, p99 = window.percentiles((50, 95, 99))
            metrics[name] = MetricPercentiles(count=window.count(), p50=p50, p95=p95, p99=p99)
        return attrs.evolve(
            merged,
            t_s=max(0.0, now - self.t0) if self.t0 is not None else 0.0,
            metrics=metrics,
            turns=max(self.live.turns, merged.turns),
            draining=self.draining or merged.draining,
            planned_total=self.planned_total,
        )

    def validity(self, *, live: bool = False) -> dict[str, Any]:
        """``{"valid": bool, "reasons": [...]}`` now: invalid once a worker was lost (died
        or hung), or while a worker's latest status has its event-loop lag p99 or pacer
        lateness p99 over ``validity_limits`` (the workers' own judgement, live; their
        ``end`` messages give the final one). Reasons name the worker. ``live=True`` adds
        ``"judged"`` (:meth:`~orchestrator.supervisor.validity.ValidityLimits.judge_live`):
        a worker's figure over too few samples (its status's counts) is not judged yet,
        and ``judged`` says whether any was, or a worker was lost (that is a verdict
        whatever was measured); without it every figure measured is judged."""
        limits = self.validity_limits or ValidityLimits()
        verdicts = []
        judged = False
        for w in self._workers:
            snap = w.status or SupervisorSnapshot(t_s=0.0)
            counts = (snap.loop_lag_samples, snap.pacer_samples) if live else (None, None)
            verdict = limits.judge_live(
                snap.loop_lag_p99_ms, counts[0], snap.pacer_p99_ms, counts[1]
            )
            judged = judged or verdict["judged"] or w.died is not None
            verdicts.append(worker_validity(w.link.name, verdict, w.died))
        merged = merge_validity(*verdicts)
        return {**merged, "judged": judged} if live else merged
