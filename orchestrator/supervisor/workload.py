"""Planned load shapes run on a :class:`~.supervisor.Supervisor`.

A :class:`Workload` is a load model (:class:`~.plan.ClosedModel` or
:class:`~.plan.OpenModel`), the session to run (a base :class:`SessionSpec` or a factory
``index -> SessionSpec``) and the driver (the conversation). :func:`run_workload` turns the
model's plan into ``Supervisor.start_nowait`` calls at the planned times:

* open model — one loop walks the arrivals lazily, sleeping until each planned time on
  trio's clock and starting it with ``planned_start`` = that time and the model's
  ``max_concurrency`` as the cap. If the loop itself falls behind (a stalled event loop),
  the start still carries its *planned* time: lateness is recorded on the session
  (``late_start_ms``) and counted (``late_starts``), or the start is dropped — never
  shifted;
* closed model — one task per slot: start the slot's session at its planned time, wait
  until it is done (restarts included), ask the plan for the slot's next start (planned
  at the moment the previous one ended), until the plan retires the slot.

Both stop planning as soon as the supervisor drains, and return once every session they
started is done.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import trio

from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor.plan import ClosedModel, OpenModel, PlannedStart
from orchestrator.supervisor.policy import RestartPolicy, RestartType
from orchestrator.supervisor.supervisor import (
    Driver,
    SessionHandle,
    Supervisor,
    SupervisorDraining,
)
from orchestrator.transport import prepare_ssl_context

__all__ = ["SpecFactory", "Workload", "WorkloadStats", "planned_total", "run_workload"]

#: Builds the spec of the session with run-wide index ``index``.
SpecFactory = Callable[[int], SessionSpec]


@attrs.frozen(kw_only=True)
class Workload:
    """What to run and how much of it. ``spec``: a base spec (each session gets
    ``session_id = f"{id_prefix}{index:06d}"``) or a factory. ``restart``: the sessions'
    restart policy or type (default: the supervisor's)."""

    model: ClosedModel | OpenModel
    spec: SessionSpec | SpecFactory
    driver: Driver | None = None
    restart: RestartPolicy | RestartType | str | None = None
    id_prefix: str = "s"

    def spec_for(self, index: int) -> SessionSpec:
        """The spec of session ``index``."""
        if isinstance(self.spec, SessionSpec):
            return attrs.evolve(self.spec, session_id=f"{self.id_prefix}{index:06d}")
        return self.spec(index)

    async def run(self, sup: Supervisor, *, t0: float | None = None) -> WorkloadStats:
        """:func:`run_workload` of this workload on ``sup`` (what
        :meth:`Supervisor.run_workload` calls). Cancellation: as :func:`run_workload`."""
        return await run_workload(sup, self, t0=t0)


@attrs.frozen(kw_only=True)
class WorkloadStats:
    """How a workload went: starts ``planned`` (taken from the plan), ``started``,
    ``late`` and ``dropped``; ``duration_s`` from the first planned start to the end of
    the last session; ``stopped_early`` when a drain cut the plan short."""

    planned: int
    started: int
    late: int
    dropped: int
    duration_s: float
    stopped_early: bool


def planned_total(model: ClosedModel | OpenModel) -> int | None:
    """How many sessions the model will start, when known before the run."""
    if isinstance(model, ClosedModel):
        return model.sessions
    expected = model.expected_arrivals()
    if not model.poisson:
        nearest = round(expected)
        count = (
            nearest if abs(expected - nearest) <= 1e-9 * max(1.0, expected) else math.ceil(expected)
        )
        return count if model.sessions is None else min(count, model.sessions)
    return None


async def run_workload(
    sup: Supervisor, workload: Workload, *, t0: float | None = None
) -> WorkloadStats:
    """Run ``workload`` on ``sup`` until its plan is exhausted (or the supervisor drains)
    and every session it started is done. ``t0``: the moment (trio clock) the plan's
    times count from (default: now, after the TLS context of a base spec's ``wss``
    target is built: :func:`~orchestrator.transport.prepare_ssl_context`; a factory's
    caller awaits that itself, as ``orchestrator run`` does, or the first connections
    build it in a thread); in the past, the starts already due are late.

    Cancellation: raises ``Cancelled``; the sessions already started belong to the
    supervisor and are not cancelled by this (cancel or drain the supervisor for that).
    """
    if isinstance(workload.spec, SessionSpec) and getattr(workload.spec.target, "secure", False):
        await prepare_ssl_context()  # the CA store loads off the loop, before the clock
    t0 = trio.current_time() if t0 is None else t0
    late0, dropped0 = sup.late_starts, sup.dropped_starts
    if sup.planned_total is None:
        sup.planned_total = planned_total(workload.model)
    counts = {"planned": 0, "started": 0}
    if isinstance(workload.model, OpenModel):
        await _run_open(sup, workload, workload.model, t0, counts)
    else:
        await _run_closed(sup, workload, workload.model, t0, counts)
    return WorkloadStats(
        planned=counts["planned"],
        started=counts["planned"] - (sup.dropped_starts - dropped0),
        late=sup.late_starts - late0,
        dropped=sup.dropped_starts - dropped0,
        duration_s=trio.current_time() - t0,
        stopped_early=sup.draining,
    )


def _start(
    sup: Supervisor,
    workload: Workload,
    start: PlannedStart,
    t0: float,
    max_concurrency: int | None,
) -> SessionHandle | None:
    try:
        return sup.start_nowait(
            workload.spec_for(start.index),
            workload.driver,
            restart=workload.restart,
            planned_start=t0 + start.at,
            max_concurrency=max_concurrency,
        )
    except SupervisorDraining:
        return None


async def _run_open(
    sup: Supervisor, workload: Workload, model: OpenModel, t0: float, counts: dict[str, int]
) -> None:
    live: list[SessionHandle] = []
    for start in model.starts():
        if sup.draining:
            break
        await trio.sleep_until(t0 + start.at)
        if sup.draining:
            break
        counts["planned"] += 1
        handle = _start(sup, workload, start, t0, model.max_concurrency)
        if handle is None:
            break
        live.append(handle)
        if len(live) >= 1024:
            live = [h for h in live if not h.done]
    for handle in live:
        await handle.wait()


async def _run_closed(
    sup: Supervisor, workload: Workload, model: ClosedModel, t0: float, counts: dict[str, int]
) -> None:
    plan = model.plan()

    async def slot(first: PlannedStart) -> None:
        start: PlannedStart | None = first
        while start is not None and not sup.draining:
            await trio.sleep_until(t0 + start.at)
            if sup.draining:
                return
            counts["planned"] += 1
            handle = _start(sup, workload, start, t0, None)
            if handle is None:
                return
            await handle.wait()
            if sup.draining:
                return
            assert start.slot is not None
            start = plan.next_start(start.slot, trio.current_time() - t0)

    async with trio.open_nursery() as nursery:
        for first in plan.initial_starts():
            nursery.start_soon(slot, first)
