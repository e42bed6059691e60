"""Live views of a running load, for one supervisor or a fleet of them: ``:abort``
thresholds judged on the records as they come (:func:`abort_on_threshold`) and the
Prometheus endpoint (:func:`serve_live_metrics`). ``orchestrator run`` uses them for a
single process and for ``--workers``/``--ray`` alike."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Protocol

import trio

from orchestrator.cli.run_setup import RunSetup
from orchestrator.supervisor.live_thresholds import LiveThresholds, watch_abort_thresholds
from orchestrator.supervisor.sink import RecordSink

if TYPE_CHECKING:
    from orchestrator.aio.prometheus import LiveStatus, SupervisorMetrics

__all__ = ["Abortable", "abort_on_threshold", "serve_live_metrics"]


class Abortable(Protocol):
    """What an ``:abort`` threshold drains: a supervisor, or a fleet."""

    draining: bool

    @property
    def sink(self) -> RecordSink:
        """Where the ``run_abort`` line goes."""
        ...

    async def drain(self, grace_s: float) -> None:
        """Start no more sessions; give running ones ``grace_s`` to finish."""


async def abort_on_threshold(
    live: LiveThresholds,
    run: Abortable,
    setup: RunSetup,
    args: argparse.Namespace,
    nursery: trio.Nursery,
    *,
    t0: float,
) -> None:
    """Judge the ``:abort`` thresholds from ``t0`` + ``--abort-grace-s`` on (``t0``: the
    run's start on the trio clock); on the first failure write a ``run_abort`` line, note
    it in ``setup.aborted`` and drain ``run`` as the first Ctrl-C does (running sessions
    get ``--grace-s``). Nothing happens when the run is already draining (a stop signal,
    or a lost worker, came first). Cancellation: raises ``Cancelled``; nothing to clean
    up."""
    verdict = await watch_abort_thresholds(live, t0=t0, grace_s=args.abort_grace_s)
    if run.draining:
        return
    setup.aborted = verdict.to_dict()
    run.sink.event("run_abort", setup.aborted)
    if not args.quiet:
        print(
            f"\nrun aborted: {verdict.message}; draining (running sessions get {args.grace_s:g} s)",
            file=sys.stderr,
            flush=True,
        )
    nursery.start_soon(run.drain, args.grace_s)


async def serve_live_metrics(
    exporter: SupervisorMetrics,
    status: LiveStatus,
    setup: RunSetup,
    args: argparse.Namespace,
    nursery: trio.Nursery,
) -> None:
    """Bind ``exporter`` to ``status`` (a supervisor, a fleet) and serve it on
    ``--metrics-host:--metrics-port`` in ``nursery`` until that is cancelled; the bound
    port goes to ``setup.metrics_port`` and, unless ``--quiet``, its URL to stderr.

    Resource handling: the HTTP server lives in ``nursery`` (see
    :func:`~orchestrator.aio.prometheus.serve_metrics`). Error handling: ``OSError``
    naming ``--metrics-port`` when the address cannot be bound."""
    from orchestrator.aio.prometheus import serve_metrics

    exporter.bind(status, scenario=setup.conversation.name)
    try:
        port = await nursery.start(serve_metrics, exporter, args.metrics_host, args.metrics_port)
    except OSError as exc:
        where = f"{args.metrics_host}:{args.metrics_port}"
        raise OSError(
            exc.errno, f"--metrics-port: cannot listen on {where} ({exc.strerror or exc})"
        ) from None
    setup.metrics_port = port
    if not args.quiet:
        host = args.metrics_host if ":" not in args.metrics_host else f"[{args.metrics_host}]"
        print(f"metrics: http://{host}:{port}/metrics", file=sys.stderr, flush=True)
