"""``orchestrator run --workers N|auto`` and ``--ray [ADDRESS]``: one run over a fleet.

The run is prepared as any run (:func:`~orchestrator.cli.run_setup.prepare`); then
:func:`execute_fleet` takes the place of ``execute``: it starts the embedded target when
the run uses it (with more workers, more server processes sharing its port: one per two
workers unless ``--server-processes`` says otherwise, so the server is not the
bottleneck), ships the run to the workers by content (:class:`RunSpecs`, the prepared
conversation with its audio) and lets the :class:`~orchestrator.fleet.coordinator.Fleet`
run it, with the same stop signals (first drains, second cancels), progress panel and
results file as a single run. ``handle`` then writes the summary from the results as
always. A worker that died makes the run fail (exit 1) after the summary is written: it
names the worker, its finished sessions are in the results.

Not with a fleet (refused by :func:`check_fleet`): ``--server-in-process`` (the server
would share the coordinator's event loop), ``--metrics-port`` and ``:abort`` thresholds
(they observe one supervisor's records in its process).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import math
import os
import sys
from functools import partial
from typing import Any

import attrs
import trio

from orchestrator import __version__
from orchestrator.cli.mix import ScenarioMix
from orchestrator.cli.run_setup import RunSetup, UsageError, build_target, make_spec
from orchestrator.cli.signals import STOP_SIGNALS, StopSignals, watch_stop_signals
from orchestrator.cli.target_process import TargetProcesses, groundtruth_paths, serve_target
from orchestrator.fleet.coordinator import Fleet, FleetResults, WorkerLink
from orchestrator.fleet.job import WorkerJob, WorkOrder, dumps_order
from orchestrator.fleet.local import ProcessWorker
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor.live_thresholds import abort_thresholds
from orchestrator.supervisor.plan import fleet_size
from orchestrator.supervisor.workload import planned_total

__all__ = [
    "FleetWorkerLost",
    "RunSpecs",
    "check_fleet",
    "execute_fleet",
    "server_processes_for",
    "wants_fleet",
]


class FleetWorkerLost(RuntimeError):
    """A worker died during the run (the message names it)."""


def wants_fleet(args: argparse.Namespace) -> bool:
    """True when the run goes to a fleet (``--workers`` other than 1, or ``--ray``)."""
    return args.ray is not None or args.workers not in (None, 1)


def check_fleet(args: argparse.Namespace, setup: RunSetup) -> None:
    """Refuse what a fleet run cannot do (see the module docstring), and ``--ray``
    without Ray installed. Raises :class:`UsageError` naming the option."""
    if args.server_in_process:
        raise UsageError("--server-in-process needs a single process: not with --workers/--ray")
    if args.metrics_port is not None:
        raise UsageError("--metrics-port is not available with --workers/--ray yet")
    if abort_thresholds(setup.thresholds):
        raise UsageError("':abort' thresholds are not available with --workers/--ray yet")
    if args.ray is not None:
        from orchestrator.fleet.ray_workers import require_ray

        try:
            require_ray()
        except ImportError as exc:
            raise UsageError(str(exc)) from None


def server_processes_for(workers: int) -> int:
    """Embedded server processes for ``workers`` workers: one per two (a server process
    serves a session for less CPU than a worker drives it), at least one."""
    return max(1, math.ceil(workers / 2))


@attrs.define(eq=False)
class RunSpecs:
    """The run's session specs by run-wide index (a picklable
    :data:`~orchestrator.supervisor.workload.SpecFactory`): session ``i`` gets id
    ``sNNNNNN``, seed ``seed + i`` and, in a mix, the scenario the mix's order gives it.

    The base specs (:func:`~orchestrator.cli.run_setup.make_spec`) are built on first use
    in the process that uses them, and never pickled: a scenario's tool handlers are local
    functions, made again by each worker from the shipped conversation."""

    setup: RunSetup
    target: Any
    args: argparse.Namespace
    _bases: list[SessionSpec] | None = attrs.field(default=None, init=False)

    @classmethod
    def of(cls, setup: RunSetup, target: Any, args: argparse.Namespace) -> RunSpecs:
        """The specs of ``setup``'s conversation against ``target``."""
        return cls(setup, target, args)

    def __getstate__(self) -> dict[str, Any]:
        return {"setup": self.setup, "target": self.target, "args": self.args}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["setup"], state["target"], state["args"])  # type: ignore[misc]

    def _base_specs(self) -> list[SessionSpec]:
        if self._bases is None:
            setup, conversation = self.setup, self.setup.conversation
            if isinstance(conversation, ScenarioMix):
                drivers = conversation.drivers
                self._bases = [make_spec(setup, self.target, self.args, d) for d in drivers]
            else:
                self._bases = [make_spec(setup, self.target, self.args)]
        return self._bases

    def __call__(self, index: int) -> SessionSpec:
        mix = self.setup.conversation
        base = self._base_specs()[mix.index_for(index) if isinstance(mix, ScenarioMix) else 0]
        return attrs.evolve(base, session_id=f"s{index:06d}", seed=self.setup.seed + index)


def _wanted(args: argparse.Namespace, ray: Any) -> int:
    if isinstance(args.workers, int) and not (ray is not None and args.workers == 1):
        return args.workers
    if ray is not None:
        from orchestrator.fleet.ray_workers import cluster_cpus

        return cluster_cpus(ray)
    return os.cpu_count() or 1


def _links(count: int, ray: Any) -> list[WorkerLink]:
    if ray is None:
        return [ProcessWorker(i) for i in range(count)]
    from orchestrator.fleet.ray_workers import RayWorker

    limiter = trio.CapacityLimiter(2 * count + 2)
    return [RayWorker(i, ray, limiter) for i in range(count)]


def _scale_target(setup: RunSetup, args: argparse.Namespace, workers: int) -> None:
    """Give the embedded target its server processes for ``workers`` workers."""
    target = setup.target
    if target is None or args.server_processes is not None:
        return
    target.processes = server_processes_for(workers)
    target.groundtruth = groundtruth_paths(target.groundtruth[0], target.processes)
    if isinstance(setup.config.get("server"), dict):
        setup.config["server"]["process"] = target.processes


async def execute_fleet(
    setup: RunSetup, args: argparse.Namespace, sink: FleetResults, stop: StopSignals
) -> int | None:
    """Run the load over a fleet (see the module docstring); returns the first stop
    signal received (``None``: not stopped).

    Raises :class:`FleetWorkerLost` after the run when a worker died (the ``run_end``
    line is written first), :class:`~orchestrator.fleet.coordinator.FleetError` when a
    worker could not start. Resource handling: the embedded server processes, every
    worker and a local Ray instance are stopped however this ends. Cancellation: raises
    ``Cancelled`` after stopping the workers (they cancel their sessions)."""
    from orchestrator.cli.progress import Progress
    from orchestrator.cli.run import _argv_for, tuned_gc

    with contextlib.ExitStack() as stack:
        ray = None
        if args.ray is not None:
            from orchestrator.fleet.ray_workers import ray_cluster

            cpus = args.workers if isinstance(args.workers, int) and args.workers > 1 else None
            ray = stack.enter_context(ray_cluster(args.ray or None, num_cpus=cpus))
            if args.ray and setup.server_config is not None and not args.quiet:
                print(
                    "note: the embedded server listens on 127.0.0.1 of this machine; actors "
                    "on other nodes of the cluster cannot reach it (give --url)",
                    file=sys.stderr,
                )
        workers = fleet_size(setup.model, _wanted(args, ray))
        _scale_target(setup, args, workers)
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async with trio.open_nursery() as top:
                target_kwargs = dict(setup.target_kwargs)
                children: TargetProcesses | None = None
                if setup.server_config is not None:
                    assert setup.target is not None
                    setup.target.note_offsets()
                    children = await top.start(
                        partial(serve_target, log=setup.target.log),
                        _argv_for(setup, args),
                        setup.target.processes,
                    )
                    target_kwargs.update(
                        url=f"ws://127.0.0.1:{children.port}/v1", provider="custom", api_key=None
                    )
                target = build_target(target_kwargs)
                job = WorkerJob(
                    model=setup.model,
                    spec=RunSpecs.of(setup, target, args),
                    driver=setup.conversation,
                    restart=setup.restart,
                    breaker=setup.breaker,
                    validity_limits=setup.validity_limits,
                    late_after_ms=args.late_after_ms,
                    drop_after_ms=args.drop_after_ms,
                    seed=setup.seed,
                    respect_rate_limits=args.respect_rate_limits,
                    tags=setup.tags,
                    runtime=tuned_gc,
                )
                orders = [
                    dumps_order(WorkOrder(job=job, worker=i, workers=workers))
                    for i in range(workers)
                ]
                fleet = Fleet(
                    _links(workers, ray),
                    sink,
                    grace_s=args.grace_s,
                    planned_total=planned_total(setup.model),
                    quiet=args.quiet,
                )
                # the watcher drives a fleet as it drives a supervisor (interrupted,
                # drain, cancel)
                top.start_soon(
                    watch_stop_signals, signals, stop, fleet, args.grace_s, top,
                    args.quiet,
                )  # fmt: skip
                mode = "off" if args.quiet else args.progress
                if mode != "off":
                    progress = Progress(
                        fleet.snapshot, rich=None if mode == "auto" else mode == "rich"
                    )
                    top.start_soon(progress.run)
                run_info = {
                    "name": setup.out_dir.name,
                    "started_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                    "version": __version__,
                    "target": target.url if setup.server_config is None else "embedded",
                    "workers": workers,
                }
                config = {**setup.config, "fleet": {"workers": workers, "ray": args.ray}}
                await fleet.run(
                    orders,
                    run_info=run_info,
                    config=config,
                    on_start=None if children is None else children.mark_start,
                )
                top.cancel_scope.cancel()
    if fleet.deaths:
        raise FleetWorkerLost("; ".join(fleet.deaths))
    return stop.first
