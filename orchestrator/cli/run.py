"""``orchestrator run``: run a load of conversations and measure them.

Everything is validated before the run starts (load shape, thresholds, target, server
options): bad input exits 1 with a message naming the option. Then:

1. without ``--url`` the embedded server starts on a free loopback port in its own
   process(es) (:mod:`orchestrator.cli.target_process`; ``--server-in-process``: in this
   event loop), ``--server-*`` options shape its latency and faults, and its ground truth
   (``OUT/groundtruth.jsonl``) judges whether it kept its own plan (validity; the verdict
   and figures go to ``results.jsonl`` as its ``target`` line, after ``run_end``);
2. a supervisor runs the load shape (closed: ``--concurrency``; open: ``--rate``) of the
   conversation (a SCENARIO file, else the built-in one spoken question, one answer),
   writing every finished turn and session to ``OUT/results.jsonl`` at once;
3. ``summary.json``, ``summary.csv`` and ``report.html`` are built from ``results.jsonl``.

Several SCENARIO files (``A.toml B.toml:3``) mix across the sessions by weight
(:mod:`orchestrator.cli.mix`): session ``i`` plays the scenario the smooth weighted
round-robin order gives it, and its records carry that scenario's name as their label.

Exit codes (:data:`~orchestrator.cli.options.EXIT_CODES_HELP`): 0 the run was done and no
threshold failed (failed sessions alone, even all of them, do not change it: the summary
lists the top failure reasons and stderr warns when every session failed; gate CI with
``--threshold 'session_error_rate<0.01'``); 1 the run could not be done (bad arguments,
argparse's own errors included, an ``--out`` that already holds a run without
``--overwrite``, unreachable output directory, crash); 2 a ``--threshold`` failed, or one
marked ``:abort`` failed during the run, which then drained as after Ctrl-C; 3 with
``--fail-on-expectations``, a session failed with ``ScenarioFailed`` (an expectation, no
answer, no greeting) and no threshold failed (2 wins: thresholds are the explicit gate); 130
interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM (``timeout``, ``docker stop``, a CI
job cancelled), 129 by SIGHUP (the terminal closed): 128 + the number of the first stop
signal. The first stop signal drains: no new sessions, running ones get ``--grace-s`` to
finish; a second one (any of the three) cancels them. The summary is written in every case
where a results file exists (a SIGTERM or SIGHUP arriving outside the run itself, after
the results file was opened, is held: before the run it drains the run at once, after it
the summary is still written).

Garbage collection (:func:`~orchestrator.supervisor.gc_regime.tuned_gc`, process-wide, for
the run only): objects alive
before the run are frozen out of collection, young collections are kept small, and full
collections happen when :class:`~orchestrator.supervisor.gc_regime.FullCollectionPolicy`
says (a :class:`~orchestrator.supervisor.gc_regime.FullCollector` task in the run), never at
CPython's own unpredictable moments; every pause is timed and reported with the run's
self-monitoring figures (``gc_*`` in ``run_end``'s ``monitor``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import signal
import sys
from functools import partial
from typing import Any

import trio

from orchestrator import __version__
from orchestrator.audio.voices.engines import VoiceError
from orchestrator.audio.wav import AudioFileError
from orchestrator.cli.live import abort_on_threshold, serve_live_metrics
from orchestrator.cli.options import (
    EXIT_EXPECTATIONS,
    EXIT_OK,
    EXIT_THRESHOLDS,
    fail,
)
from orchestrator.cli.run_args import add_run_parser
from orchestrator.cli.run_fleet import RunSpecs, check_fleet, execute_fleet, wants_fleet
from orchestrator.cli.run_setup import (
    EXPECTATION_FAILURE,
    RunSetup,
    UsageError,
    build_target,
    prepare,
)
from orchestrator.cli.signals import (
    STOP_SIGNALS,
    StopSignals,
    exit_code_for_signal,
    held_stop_signals,
    watch_stop_signals,
)
from orchestrator.cli.target_process import (
    EmbeddedTarget,
    TargetProcesses,
    argv_for_run,
    in_process_log,
    judge_groundtruth,
    serve_target,
)
from orchestrator.fleet.coordinator import FleetResults
from orchestrator.metrics import (
    ThresholdError,
    all_failed_warning,
    summary_text,
)
from orchestrator.metrics.failure import first_error
from orchestrator.mockserver import MockServer
from orchestrator.scenario import (
    ScenarioError,
)
from orchestrator.supervisor import (
    PlanError,
)
from orchestrator.supervisor.gc_regime import FullCollectionPolicy, FullCollector, tuned_gc
from orchestrator.supervisor.live_thresholds import LiveThresholds, abort_thresholds
from orchestrator.supervisor.outputs import RESULTS_FILE, write_outputs
from orchestrator.supervisor.rate_gate import RateGate
from orchestrator.supervisor.sink import JsonlSink
from orchestrator.supervisor.supervisor import Supervisor, open_supervisor
from orchestrator.supervisor.tee import TeeSink
from orchestrator.supervisor.validity import ValidityLimits, merge_validity
from orchestrator.supervisor.workload import Workload, planned_total
from orchestrator.transport import prepare_ssl_context

__all__ = ["add_parser", "execute", "handle", "record_target"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``run`` on ``subparsers`` (its options: :mod:`orchestrator.cli.run_args`)."""
    return add_run_parser(subparsers, handle)


def _session_counts(sup: Supervisor) -> tuple[int, int]:
    """``(finished, running)`` sessions of ``sup`` (for the full collector)."""
    return sup.completed + sup.failed + sup.cancelled, sup.running


async def execute(
    setup: RunSetup,
    args: argparse.Namespace,
    sink: JsonlSink,
    stop: StopSignals | None = None,
) -> int | None:
    """Run the load; returns the first stop signal received (``None``: the run was not
    stopped). ``stop`` collects the stop signals (see :class:`StopSignals`).

    Cancellation: raises ``Cancelled``; the supervisor cancels every session (their results
    recorded) and writes ``run_end`` first."""
    from orchestrator.cli.progress import Progress

    stop = StopSignals() if stop is None else stop
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as top:
            target_kwargs = dict(setup.target_kwargs)
            server: MockServer | None = None
            children: TargetProcesses | None = None
            if setup.server_config is not None:
                assert setup.target is not None
                setup.target.note_offsets()
                if setup.target.in_process:
                    server = MockServer(setup.server_config, keep_groundtruth=0)
                    port = await top.start(server.serve)
                else:
                    children = await top.start(
                        partial(serve_target, log=setup.target.log),
                        argv_for_run(setup, args),
                        setup.target.processes,
                    )
                    port = children.port
                target_kwargs.update(
                    url=f"ws://127.0.0.1:{port}/v1", provider="custom", api_key=None
                )
            target = build_target(target_kwargs)
            if target.secure:  # the CA store loads off the loop, before the run's clock
                await prepare_ssl_context()
            setup.conversation.prepare()  # make the shared audio before the clock runs
            seed = setup.seed
            specs = RunSpecs.of(setup, target, args, target_kwargs)
            specs.build()  # the base specs, before the run's clock starts
            workload = Workload(
                model=setup.model,
                spec=specs,
                driver=setup.conversation,
                restart=setup.restart,
            )
            run_info = {
                "name": setup.out_dir.name,
                "started_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "version": __version__,
                "target": target.url if setup.server_config is None else "embedded",
            }
            live = None
            if abort_thresholds(setup.thresholds):
                live = LiveThresholds(setup.thresholds, window_s=args.abort_window_s)
            exporter = None
            if args.metrics_port is not None:
                from orchestrator.aio.prometheus import SupervisorMetrics

                exporter = SupervisorMetrics()
            observers = [o for o in (live, exporter) if o is not None]
            with tuned_gc():
                async with open_supervisor(
                    sink=TeeSink(sink, observers) if observers else sink,
                    restart=setup.restart,
                    breaker=setup.breaker,
                    validity_limits=setup.validity_limits,
                    late_after_ms=args.late_after_ms,
                    drop_after_ms=args.drop_after_ms,
                    run_info=run_info,
                    config=setup.config,
                    seed=seed,
                    rate_gate=RateGate() if args.respect_rate_limits else None,
                    tags=setup.tags,
                ) as sup:
                    sup.planned_total = planned_total(setup.model)
                    if server is not None:
                        server.started_at = sup.t0  # --server-freeze counts from the start
                    if children is not None:
                        await children.mark_start()
                    top.start_soon(
                        watch_stop_signals, signals, stop, sup, args.grace_s, top, args.quiet
                    )
                    if exporter is not None:
                        await serve_live_metrics(exporter, sup, setup, args, top)
                    if live is not None:
                        live.counts = lambda: {
                            "late_starts": sup.late_starts,
                            "dropped_starts": sup.dropped_starts,
                        }
                        abort = partial(abort_on_threshold, t0=sup.t0)
                        top.start_soon(abort, live, sup, setup, args, top)
                    collector = FullCollector(
                        progress=lambda: _session_counts(sup), policy=FullCollectionPolicy()
                    )
                    await top.start(collector.run)
                    mode = "off" if args.quiet else args.progress
                    if mode != "off":
                        progress = Progress(
                            sup.snapshot, rich=None if mode == "auto" else mode == "rich"
                        )
                        top.start_soon(progress.run)
                    await sup.run_workload(workload)
                top.cancel_scope.cancel()
    return stop.first


def record_target(target: EmbeddedTarget | None, limits: ValidityLimits, sink: JsonlSink) -> None:
    """Judge the embedded target by its ground truth (its own send lateness) and write
    its verdict and figures as the results' ``target`` line, which every summary of the
    run takes them from (merged into the validity, and as ``run.target``): this run's and
    any ``orchestrator report`` rebuilds later. Nothing with ``--url``, nor when the ground
    truth cannot be read or the line written (the summary then has the generator's
    verdict alone). ``limits``: the run's (``--target-lateness-limit-ms``)."""
    if target is None:
        return
    try:
        verdict, figures = judge_groundtruth(target, limits)
        sink.event("target", {"validity": merge_validity(verdict), "figures": figures})
    except (OSError, ValueError):
        return


def _err(message: str) -> int:
    return fail("run", message)


def handle(args: argparse.Namespace) -> int:
    """Run ``orchestrator run``; returns the exit code."""
    fleet = wants_fleet(args)  # --workers / --ray: orchestrator.cli.run_fleet
    try:
        setup = prepare(args)
        if fleet:
            check_fleet(args, setup)
    except (UsageError, ThresholdError, PlanError) as exc:
        return _err(str(exc))
    try:  # synthesize caller voices, read audio: before the run's clock, off the event loop
        setup.conversation.prepare()
    except (ScenarioError, VoiceError, AudioFileError, ValueError) as exc:
        return _err(str(exc))
    try:
        sink = (FleetResults if fleet else JsonlSink)(setup.out_dir / RESULTS_FILE)
    except OSError as exc:
        return _err(f"--out {setup.out_dir}: {exc}")
    stop = StopSignals()
    with held_stop_signals(stop), in_process_log(setup.target):
        crashed: BaseException | None = None
        with sink:  # closed however this ends; every line is on disk before the summary
            try:
                if isinstance(sink, FleetResults):
                    trio.run(execute_fleet, setup, args, sink, stop)
                else:
                    trio.run(execute, setup, args, sink, stop)
            except* KeyboardInterrupt:
                stop.note(signal.SIGINT)
            except* Exception as group:
                crashed = first_error(group)
            record_target(setup.target, setup.validity_limits, sink)
        try:
            outputs = write_outputs(setup.out_dir, thresholds=setup.thresholds, prices=setup.prices)
        except Exception as exc:  # noqa: BLE001 - report, exit 1
            return _err(f"could not write the summary in {setup.out_dir}: {exc}")
    summary = outputs.summary
    if not args.quiet:
        print(summary_text(summary), end="")
        print(f"results: {setup.out_dir}")
    everything_failed = all_failed_warning(summary)
    if everything_failed is not None:
        print(f"WARNING: {everything_failed}", file=sys.stderr)
    validity = summary.get("validity", {})
    if not validity.get("valid", True):
        print(
            "WARNING: results not valid: " + "; ".join(validity.get("reasons", [])),
            file=sys.stderr,
        )
    if crashed is not None:
        return _err(f"the run failed: {type(crashed).__name__}: {crashed}")
    if stop.first is not None:
        return exit_code_for_signal(stop.first)
    if setup.aborted is not None:
        print(f"run aborted: {setup.aborted['reason']}", file=sys.stderr)
        return EXIT_THRESHOLDS
    if not summary.get("thresholds_ok", True):
        failed = [
            f"{t['expr']} (actual {t.get('actual')})" for t in summary["thresholds"] if not t["ok"]
        ]
        print("thresholds failed: " + ", ".join(failed), file=sys.stderr)
        return EXIT_THRESHOLDS
    if args.fail_on_expectations:
        failed_expectations = (
            summary.get("sessions", {}).get("failure_types", {}).get(EXPECTATION_FAILURE, 0)
        )
        if failed_expectations:
            print(
                f"expectations failed: {failed_expectations} session(s) failed with "
                f"{EXPECTATION_FAILURE} (--fail-on-expectations)",
                file=sys.stderr,
            )
            return EXIT_EXPECTATIONS
    return EXIT_OK
