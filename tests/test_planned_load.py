"""``Supervisor.run_workload`` runs whatever planned load it is given by calling its
``run`` (the supervisor does not import :mod:`orchestrator.supervisor.workload`), and a
:class:`Workload` runs itself with :func:`run_workload`."""

from __future__ import annotations

import attrs
import trio
import trio.testing

from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor import OpenModel, Supervisor, Workload, open_supervisor


@attrs.define
class _RecordingLoad:
    """A planned load that records how it was run and returns a marker."""

    calls: list[tuple[Supervisor, float | None]] = attrs.field(factory=list)

    async def run(self, sup: Supervisor, *, t0: float | None = None) -> str:
        self.calls.append((sup, t0))
        return "ran"


def _no_spec(index: int) -> SessionSpec:
    raise AssertionError(f"session {index} was started on a drained supervisor")


async def test_run_workload_hands_itself_and_t0_to_the_load(
    autojump_clock: trio.testing.MockClock,
) -> None:
    load = _RecordingLoad()
    async with open_supervisor(monitor=False, timeline_interval_s=None) as sup:
        assert await sup.run_workload(load, t0=1.5) == "ran"
        assert await sup.run_workload(load) == "ran"
    assert load.calls == [(sup, 1.5), (sup, None)]


async def test_workload_runs_itself_with_run_workload(
    autojump_clock: trio.testing.MockClock,
) -> None:
    workload = Workload(model=OpenModel(rate=2, duration_s=5), spec=_no_spec)
    async with open_supervisor(monitor=False, timeline_interval_s=None) as sup:
        await sup.drain()
        stats = await workload.run(sup)
        assert sup.planned_total == 10
    assert (stats.planned, stats.started, stats.stopped_early) == (0, 0, True)
