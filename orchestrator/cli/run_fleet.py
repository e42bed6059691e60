"""``orchestrator run --workers N|auto`` and ``--ray [ADDRESS]``: one run over a fleet.

The run is prepared as any run (:func:`~orchestrator.cli.run_setup.prepare`); then
:func:`execute_fleet` takes the place of ``execute``: it starts the embedded target when the
run uses it (server processes sharing its port by the load, as for a single run but with the
workers' cores set aside: :func:`~orchestrator.cli.run_setup.server_processes_for_load`,
unless ``--server-processes`` says otherwise), ships the run to the workers by content
(:class:`RunSpecs`, the prepared conversation with its audio) and lets the
:class:`~orchestrator.fleet.coordinator.Fleet` run it, with the same stop signals (first
drains, second cancels), progress panel and results file as a single run. ``handle`` then
judges the embedded target (the results' ``target`` line) and writes the summary from the
results, as for a single run. A worker that died or hung (silent for
:data:`~orchestrator.fleet.coordinator.SILENCE_TIMEOUT_S`) makes the run fail (exit 1) after
the summary is written: it names the worker, its finished sessions are in the results.

``:abort`` thresholds are judged live on the records the coordinator takes from every worker
(:func:`~orchestrator.cli.live.abort_on_threshold`, as in a single run: a failure writes
``run_abort``, drains every worker, exit 2); ``late_starts`` and ``dropped_starts`` come
from the workers' merged status. A worker's records do not say which attempt of a restarted
session is its last, so with ``--restart`` other than ``temporary`` the session counts come
from the workers' merged status too, and ``session_error_rate`` cannot be an ``:abort``
threshold. ``--metrics-port`` serves the whole fleet
(:func:`~orchestrator.cli.live.serve_live_metrics`): the
workers' records, their merged status and the fleet's live validity
(:meth:`~orchestrator.fleet.coordinator.Fleet.validity`).

The API key never travels in the job: workers resolve it from their own environment
(``--api-key-env NAME``, else the provider's variable). Local workers inherit this
process's environment; Ray actors get the variable through their ``runtime_env`` when it
is set here, so with a remote cluster the key is sent to the actors' environment on the
cluster's nodes.

Not with a fleet (refused by :func:`check_fleet`): ``--server-in-process`` (the server
would share the coordinator's event loop).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import os
import sys
from collections.abc import Mapping
from functools import partial
from typing import Any

import attrs
import trio

from orchestrator import __version__
from orchestrator.cli.live import abort_on_threshold, serve_live_metrics
from orchestrator.cli.mix import ScenarioMix
from orchestrator.cli.run_setup import (
    RunSetup,
    UsageError,
    build_target,
    make_spec,
    server_processes_for_load,
    usable_cpus,
)
from orchestrator.cli.signals import STOP_SIGNALS, StopSignals, watch_stop_signals
from orchestrator.cli.target_process import (
    TargetProcesses,
    argv_for_run,
    groundtruth_paths,
    serve_target,
)
from orchestrator.fleet.coordinator import Fleet, FleetObserver, FleetResults, WorkerLink
from orchestrator.fleet.job import WorkerJob, WorkOrder, dumps_order
from orchestrator.fleet.local import ProcessWorker
from orchestrator.metrics import SessionResult, TurnRecord
from orchestrator.session.spec import SessionSpec
from orchestrator.supervisor.gc_regime import tuned_gc
from orchestrator.supervisor.live_thresholds import LiveThresholds, abort_thresholds
from orchestrator.supervisor.plan import fleet_size
from orchestrator.supervisor.policy import RestartType
from orchestrator.supervisor.workload import planned_total
from orchestrator.transport import API_KEY_ENV

__all__ = [
    "FleetWorkerLost",
    "RunSpecs",
    "check_fleet",
    "execute_fleet",
    "key_env_names",
    "wants_fleet",
    "workers_wanted",
]


class FleetWorkerLost(RuntimeError):
    """A worker died or hung during the run (the message names it)."""


def wants_fleet(args: argparse.Namespace) -> bool:
    """True when the run goes to a fleet (``--workers`` other than 1, or ``--ray``)."""
    return args.ray is not None or (args.workers or 1) != 1


def check_fleet(args: argparse.Namespace, setup: RunSetup) -> None:
    """Refuse what a fleet run cannot do (see the module docstring), and ``--ray``
    without Ray installed. Raises :class:`UsageError` naming the option."""
    if args.server_in_process:
        raise UsageError("--server-in-process needs a single process: not with --workers/--ray")
    restarts = setup.restart.restart_type is not RestartType.TEMPORARY
    for t in abort_thresholds(setup.thresholds):
        if restarts and t.metric == "session_error_rate":
            raise UsageError(
                f"threshold {t.expr!r}: with --workers/--ray, ':abort' on session_error_rate "
                f"needs --restart temporary (not {setup.restart.restart_type.value}): a "
                "worker's records do not say which attempt of a restarted session is its last"
            )
    if args.ray is not None:
        from orchestrator.fleet.ray_workers import require_ray

        try:
            require_ray()
        except ImportError as exc:
            raise UsageError(str(exc)) from None


class _LastAttempts:
    """Shows :class:`LiveThresholds` every session record as a done session too: exact
    when sessions are never restarted (``--restart temporary``: every attempt is a
    session's last), which a worker's records cannot tell otherwise."""

    def __init__(self, live: LiveThresholds) -> None:
        self.live = live

    def turn(self, record: TurnRecord) -> None:
        self.live.turn(record)

    def session(self, record: SessionResult) -> None:
        self.live.session(record)
        self.live.session_done(record)

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        self.live.event(kind, data)


def _fleet_counts(fleet: Fleet, sessions: bool) -> dict[str, float]:
    """The run-to-date counts of the workers' merged status that the records do not carry
    (``sessions``: the session counts too, each session counted once by its worker)."""
    snap = fleet.snapshot()
    counts = {"late_starts": snap.late_starts, "dropped_starts": snap.dropped_starts}
    if sessions:
        counts |= {
            "sessions_total": snap.done,
            "sessions_completed": snap.completed,
            "sessions_failed": snap.failed,
            "sessions_cancelled": snap.cancelled,
        }
    return {k: float(v) for k, v in counts.items()}


@attrs.define(eq=False)
class RunSpecs:
    """The run's session specs by run-wide index (a picklable
    :data:`~orchestrator.supervisor.workload.SpecFactory`): session ``i`` gets id
    ``sNNNNNN``, seed ``seed + i`` and, in a mix, the scenario the mix's order gives it.

    The base specs (:func:`~orchestrator.cli.run_setup.make_spec`) are built on first use
    (or by :meth:`build`) in the process that uses them, and never pickled: a scenario's
    tool handlers are local functions, made again by each worker from the shipped
    conversation. Neither is the target: pickled, it is its ``target_kwargs`` without the
    API key, and the process that uses it builds it again with the key from its own
    environment (``--api-key-env NAME``, else the provider's variable)."""

    setup: RunSetup
    target: Any
    args: argparse.Namespace
    target_kwargs: dict[str, Any] | None = None
    """What ``target`` was built from (default: ``setup.target_kwargs``)."""
    _bases: list[SessionSpec] | None = attrs.field(default=None, init=False)

    @classmethod
    def of(
        cls,
        setup: RunSetup,
        target: Any,
        args: argparse.Namespace,
        target_kwargs: dict[str, Any] | None = None,
    ) -> RunSpecs:
        """The specs of ``setup``'s conversation against ``target`` (built from
        ``target_kwargs``, default ``setup.target_kwargs``)."""
        return cls(setup, target, args, target_kwargs)

    def __getstate__(self) -> dict[str, Any]:
        kwargs = dict(
            self.setup.target_kwargs if self.target_kwargs is None else self.target_kwargs
        )
        kwargs.pop("api_key", None)
        setup = attrs.evolve(self.setup, target_kwargs={
            k: v for k, v in self.setup.target_kwargs.items() if k != "api_key"
        })  # fmt: skip
        return {"setup": setup, "args": self.args, "target_kwargs": kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["setup"], None, state["args"], state["target_kwargs"]
        )

    def _target(self) -> Any:
        if self.target is None:
            kwargs = dict(self.target_kwargs or self.setup.target_kwargs)
            name = getattr(self.args, "api_key_env", None)
            if name:  # --api-key-env NAME (with --url): read it here
                key = os.environ.get(name)
                if not key:
                    raise UsageError(f"--api-key-env {name}: not set in this worker's environment")
                kwargs["api_key"] = key
            self.target = build_target(kwargs)
        return self.target

    def build(self) -> None:
        """Build the base specs now (before the run's clock starts)."""
        self._base_specs()

    def _base_specs(self) -> list[SessionSpec]:
        if self._bases is None:
            setup, conversation, target = self.setup, self.setup.conversation, self._target()
            if isinstance(conversation, ScenarioMix):
                drivers = conversation.drivers
                self._bases = [make_spec(setup, target, self.args, d) for d in drivers]
            else:
                self._bases = [make_spec(setup, target, self.args)]
        return self._bases

    def __call__(self, index: int) -> SessionSpec:
        mix = self.setup.conversation
        base = self._base_specs()[mix.index_for(index) if isinstance(mix, ScenarioMix) else 0]
        return attrs.evolve(base, session_id=f"s{index:06d}", seed=self.setup.seed + index)


def key_env_names(args: argparse.Namespace) -> list[str]:
    """The environment variables a worker may read its API key from (none: embedded)."""
    if getattr(args, "url", None) is None:
        return []
    if args.api_key_env:
        return [args.api_key_env]
    return [API_KEY_ENV[args.provider or "custom"]]


def workers_wanted(args: argparse.Namespace, ray: Any) -> int:
    """How many workers ``--workers`` asks for (``None``: 1; ``auto``: one per CPU, of
    the Ray cluster with ``--ray``, where ``--ray`` alone means ``auto``). With Ray, never
    more than the cluster's free CPUs (one-CPU actors beyond them would never start and
    hold the whole fleet's start): capped, with a note on stderr."""
    workers = args.workers
    if ray is None:
        if isinstance(workers, int):
            return workers
        return 1 if workers is None else usable_cpus()
    from orchestrator.fleet.ray_workers import available_cpus, cluster_cpus

    if not isinstance(workers, int):
        return cluster_cpus(ray)
    free = available_cpus(ray)
    if workers > free:
        if not args.quiet:
            print(
                f"note: --workers {workers}: the Ray cluster has {free} free CPUs; "
                f"running {free} workers",
                file=sys.stderr,
            )
        return free
    return workers


def _links(count: int, ray: Any, args: argparse.Namespace) -> list[WorkerLink]:
    if ray is None:
        return [ProcessWorker(i) for i in range(count)]
    from orchestrator.fleet.ray_workers import RayWorker

    limiter = trio.CapacityLimiter(2 * count + 2)
    env_vars = {n: os.environ[n] for n in key_env_names(args) if os.environ.get(n)}
    runtime_env = {"env_vars": env_vars} if env_vars else None
    return [RayWorker(i, ray, limiter, runtime_env=runtime_env) for i in range(count)]


def _scale_target(setup: RunSetup, args: argparse.Namespace, workers: int) -> None:
    """Give the embedded target its server processes for ``workers`` workers."""
    target = setup.target
    if target is None or args.server_processes is not None:
        return
    target.processes = server_processes_for_load(
        setup.model, usable_cpus(), generator_cores=workers
    )
    target.groundtruth = groundtruth_paths(target.groundtruth[0], target.processes)
    if isinstance(setup.config.get("server"), dict):
        setup.config["server"]["process"] = target.processes


async def execute_fleet(
    setup: RunSetup, args: argparse.Namespace, sink: FleetResults, stop: StopSignals
) -> int | None:
    """Run the load over a fleet (see the module docstring); returns the first stop
    signal received (``None``: not stopped).

    Raises :class:`FleetWorkerLost` after the run when a worker died or hung (the
    ``run_end`` line is written first), :class:`~orchestrator.fleet.coordinator.FleetError`
    when a worker could not start, ``OSError`` when ``--metrics-port`` cannot be bound.
    Resource handling: the embedded server processes, the metrics server, every worker and
    a local Ray instance are stopped however this ends. Cancellation: raises
    ``Cancelled`` after stopping the workers (they cancel their sessions; the records
    they still write are kept, and ``run_end`` is written with ``interrupted: true``)."""
    from orchestrator.cli.progress import Progress

    with contextlib.ExitStack() as stack:
        ray = None
        if args.ray is not None:
            from orchestrator.fleet.ray_workers import ray_cluster

            cpus = args.workers if isinstance(args.workers, int) else None
            ray = stack.enter_context(
                ray_cluster(args.ray or None, num_cpus=cpus, quiet=args.quiet)
            )
            if args.ray and setup.server_config is not None and not args.quiet:
                print(
                    "note: the embedded server listens on 127.0.0.1 of this machine; actors "
                    "on other nodes of the cluster cannot reach it (give --url)",
                    file=sys.stderr,
                )
        workers = fleet_size(setup.model, workers_wanted(args, ray))
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
                        argv_for_run(setup, args),
                        setup.target.processes,
                    )
                    target_kwargs.update(
                        url=f"ws://127.0.0.1:{children.port}/v1", provider="custom", api_key=None
                    )
                target = build_target(target_kwargs)
                job = WorkerJob(
                    model=setup.model,
                    spec=RunSpecs.of(setup, target, args, target_kwargs),
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
                live = None
                observers: list[FleetObserver] = []
                every_attempt_last = setup.restart.restart_type is RestartType.TEMPORARY
                if abort_thresholds(setup.thresholds):
                    live = LiveThresholds(setup.thresholds, window_s=args.abort_window_s)
                    observers.append(_LastAttempts(live) if every_attempt_last else live)
                exporter = None
                if args.metrics_port is not None:
                    from orchestrator.aio.prometheus import SupervisorMetrics

                    exporter = SupervisorMetrics()
                    observers.append(exporter)
                fleet = Fleet(
                    _links(workers, ray, args),
                    sink,
                    grace_s=args.grace_s,
                    planned_total=planned_total(setup.model),
                    quiet=args.quiet,
                    observers=observers,
                    validity_limits=setup.validity_limits,
                )
                if live is not None:
                    live.counts = partial(_fleet_counts, fleet, not every_attempt_last)
                if exporter is not None:
                    await serve_live_metrics(exporter, fleet, setup, args, top)

                async def at_start() -> None:
                    if children is not None:
                        await children.mark_start()
                    if live is not None:
                        assert fleet.t0 is not None
                        abort = partial(abort_on_threshold, t0=fleet.t0)
                        top.start_soon(abort, live, fleet, setup, args, top)

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
                    on_start=at_start,
                )
                top.cancel_scope.cancel()
    if fleet.deaths:
        raise FleetWorkerLost("; ".join(fleet.deaths))
    return stop.first
