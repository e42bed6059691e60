"""Live Prometheus / OpenMetrics metrics of one supervisor (``prometheus-client``).

:class:`SupervisorMetrics` owns a ``CollectorRegistry`` of its own (never the process-wide
default one, so two supervisors, or two tests, never collide) and fills it from two
sources:

* every record, as the sink writes it (it is a sink observer: :meth:`SupervisorMetrics.wrap`
  puts it behind the real sink with a :class:`~orchestrator.supervisor.tee.TeeSink`, so the
  file still gets each record first) — counters of sessions and turns by status, handshake
  refusals by HTTP status, reconnects, dropped starts; one histogram per latency metric of
  :data:`~orchestrator.metrics.names.TURN_METRICS` and
  :data:`~orchestrator.metrics.names.SESSION_METRICS` (the names as in ``summary.json``,
  in ms), labelled by ``scenario`` and ``label``;
* the supervisor's live status (or a fleet's: anything :class:`LiveStatus`), copied every
  ``interval_s`` by :meth:`refresh_forever` on the trio side — sessions by state,
  restarts, late starts, breaker, draining, and the generator's health (event-loop lag,
  pacer lateness, CPU, whether the run is still valid: ``run_valid`` is the *live*
  verdict, which judges a figure only from
  :data:`~orchestrator.supervisor.validity.MIN_LIVE_SAMPLES` samples on and reads 1
  until then, so an early p99 of a few start-up stalls does not flip it to 0).

All names start with ``orchestrator_``. Exposition happens on another thread (the HTTP
server of :func:`serve_metrics`, or the host's web framework with
``prometheus_client.make_asgi_app(metrics.registry)``); it reads only
``prometheus_client`` objects, which are thread-safe, never the supervisor.

Use from trio::

    metrics = SupervisorMetrics(scenario="checkout-call")
    async with open_supervisor(sink=metrics.wrap(JsonlSink(path))) as sup:
        metrics.bind(sup)
        port = await nursery.start(serve_metrics, metrics, "127.0.0.1", 9464)

From asyncio, ``open_aio_supervisor(metrics=True)`` does the wiring and ``sup.metrics``
is this object.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Protocol

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from orchestrator.metrics import SessionResult, TimelinePoint, TurnRecord
from orchestrator.metrics.names import SESSION_METRICS, TURN_METRICS
from orchestrator.supervisor.sink import RecordSink
from orchestrator.supervisor.snapshot import SupervisorSnapshot
from orchestrator.supervisor.tee import TeeSink
from orchestrator.supervisor.validity import MIN_LIVE_SAMPLES

__all__ = ["LATENCY_BUCKETS_MS", "LiveStatus", "SupervisorMetrics", "serve_metrics"]

#: Histogram bucket bounds (ms) of every latency metric.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    5, 10, 25, 50, 100, 150, 200, 300, 400, 500, 600, 800,
    1000, 1500, 2000, 3000, 5000, 10000, 30000, math.inf,
)  # fmt: skip
_HTTP_STATUS = re.compile(r"HTTP (\d{3})")
_STATES = ("pending", "connecting", "active", "restarting")


class LiveStatus(Protocol):
    """What :meth:`SupervisorMetrics.bind` copies: a supervisor, or a fleet of them."""

    def snapshot(self) -> SupervisorSnapshot:
        """The live status now."""
        ...

    def validity(self, *, live: bool = False) -> dict[str, Any]:
        """``{"valid": bool, "reasons": [...]}``: does the generator keep up now?
        (``live=True``: a figure with too few samples is not judged yet.)"""
        ...


class SupervisorMetrics:
    """Prometheus metrics of one supervisor in their own registry (``registry``).

    ``scenario``: the value of the ``scenario`` label (also settable in :meth:`bind`).
    A sink observer (``turn``/``session``/``snapshot``/``event``) and, once bound, a
    copier of the supervisor's live status.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        scenario: str = "",
        interval_s: float = 1.0,
        namespace: str = "orchestrator",
    ) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self.scenario = scenario
        self.interval_s = interval_s
        self._sup: LiveStatus | None = None
        self._last: dict[str, int] = {}
        ns, reg = namespace, self.registry
        lbl = ("scenario", "label")
        self.sessions = Counter(
            "sessions", "Finished session attempts by status", (*lbl, "status"),
            namespace=ns, registry=reg,
        )  # fmt: skip
        self.turns = Counter(
            "turns", "Finished user turns by status", (*lbl, "status"), namespace=ns, registry=reg
        )
        self.handshake_refusals = Counter(
            "handshake_refusals", "Websocket handshakes the server refused, by HTTP status",
            ("scenario", "status"), namespace=ns, registry=reg,
        )  # fmt: skip
        self.reconnects = Counter(
            "reconnects", "Reconnects of finished sessions", lbl, namespace=ns, registry=reg
        )
        self.dropped_starts = Counter(
            "dropped_starts", "Planned starts that never happened, by reason", ("reason",),
            namespace=ns, registry=reg,
        )  # fmt: skip
        self.restarts = Counter(
            "restarts", "Session restarts by the restart policy", namespace=ns, registry=reg
        )
        self.late_starts = Counter(
            "late_starts", "Starts later than late_after_ms", namespace=ns, registry=reg
        )
        self.started = Counter(
            "session_starts", "Session attempts started", namespace=ns, registry=reg
        )
        self.histograms: dict[str, Histogram] = {}
        for name in dict.fromkeys((*TURN_METRICS, *SESSION_METRICS)):
            self.histograms[name] = Histogram(
                name, f"{name} (ms; see the latency definitions)", lbl,
                namespace=ns, registry=reg, buckets=LATENCY_BUCKETS_MS,
            )  # fmt: skip
        self.state = Gauge(
            "sessions_in_state", "Sessions now in each lifecycle state", ("state",),
            namespace=ns, registry=reg,
        )  # fmt: skip
        gauge = {
            "loop_lag_p99_ms": "Event-loop lag p99 of the generator (ms)",
            "loop_lag_recent_max_ms": "Largest recent event-loop lag of the generator (ms)",
            "pacer_p99_ms": "Audio pacer lateness p99 (ms)",
            "cpu_percent": "Generator CPU use (% of one core)",
            "run_valid": (
                "0 once the generator is judged behind (loop lag or pacer p99 over its "
                f"limit), else 1; a figure is judged from {MIN_LIVE_SAMPLES} samples on "
                "(the default), 1 until then"
            ),
            "breaker_open": "1 while the circuit breaker holds new connections",
            "draining": "1 once the run is draining",
            "planned_sessions": "Sessions the workload plans in total (NaN: unknown)",
        }
        self.gauges = {
            key: Gauge(key, text, namespace=ns, registry=reg) for key, text in gauge.items()
        }

    # ------------------------------------------------------------------ wiring
    def wrap(self, inner: RecordSink | None) -> TeeSink:
        """``inner`` (default: a new ``ListSink``) with this object as an observer."""
        return TeeSink(inner, [self])

    def bind(self, sup: LiveStatus, *, scenario: str | None = None) -> None:
        """Copy ``sup``'s live status (a supervisor's, a fleet's) from now on
        (:meth:`refresh`)."""
        self._sup = sup
        if scenario is not None:
            self.scenario = scenario
        self._last = {}
        self.refresh()

    # ------------------------------------------------------------------ observer
    def turn(self, record: TurnRecord) -> None:
        """Count a finished turn and observe its latencies."""
        label = record.label or ""
        status = "failed" if record.failed else (record.status or "completed")
        self.turns.labels(self.scenario, label, status).inc()
        self._observe(record, TURN_METRICS, label)

    def session(self, record: SessionResult) -> None:
        """Count a finished session *attempt* (status, reconnects, a refused handshake)
        and observe its latencies: ``sessions_total`` counts attempts (its help says so; a
        restarted session has one per attempt), not the summary's sessions counted once."""
        label = record.label or ""
        self.sessions.labels(self.scenario, label, record.status).inc()
        if record.reconnects:
            self.reconnects.labels(self.scenario, label).inc(record.reconnects)
        failure = record.failure
        if failure is not None and failure.type == "HandshakeRejected":
            m = _HTTP_STATUS.search(failure.message or "")
            self.handshake_refusals.labels(self.scenario, m.group(1) if m else "unknown").inc()
        self._observe(record, SESSION_METRICS, label)

    def snapshot(self, record: TimelinePoint) -> None:
        """Ignored (the live status is copied by :meth:`refresh`)."""

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        """Counts ``start_dropped`` lines by reason."""
        if kind == "start_dropped":
            self.dropped_starts.labels(str(data.get("reason", "unknown"))).inc()

    def _observe(self, record: object, names: tuple[str, ...], label: str) -> None:
        for name in names:
            value = getattr(record, name, None)
            if isinstance(value, int | float) and math.isfinite(value):
                self.histograms[name].labels(self.scenario, label).observe(float(value))

    # ------------------------------------------------------------------ live status
    def refresh(self) -> None:
        """Copy the bound supervisor's (or fleet's) live status into the gauges and
        counters (on the trio side: it reads the supervisor)."""
        sup = self._sup
        if sup is None:
            return
        snap = sup.snapshot()
        for state in _STATES:
            self.state.labels(state).set(getattr(snap, state))
        for key, counter in (
            ("restarts", self.restarts),
            ("late_starts", self.late_starts),
            ("started", self.started),
        ):
            now = int(getattr(snap, key))
            delta = now - self._last.get(key, 0)
            if delta > 0:
                counter.inc(delta)
            self._last[key] = now
        g = self.gauges
        for key in ("loop_lag_p99_ms", "loop_lag_recent_max_ms", "pacer_p99_ms", "cpu_percent"):
            value = getattr(snap, key)
            g[key].set(math.nan if value is None else float(value))
        # not judged yet (too few samples) reads 1, never NaN: `run_valid == 0` alerts
        # and avg/min_over_time stay meaningful from the first scrape
        g["run_valid"].set(1.0 if sup.validity(live=True)["valid"] else 0.0)
        g["breaker_open"].set(0.0 if snap.breaker == "closed" else 1.0)
        g["draining"].set(1.0 if snap.draining else 0.0)
        planned = snap.planned_total
        g["planned_sessions"].set(math.nan if planned is None else float(planned))

    async def refresh_forever(self) -> None:
        """:meth:`refresh` every ``interval_s`` seconds until cancelled.

        Cancellation: raises ``Cancelled``; nothing to clean up."""
        while True:
            self.refresh()
            await trio.sleep(self.interval_s)


async def serve_metrics(
    metrics: SupervisorMetrics,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``metrics.registry`` at ``http://host:port/metrics`` (Prometheus text, or
    OpenMetrics when the scraper asks for it) and keep the live status fresh, until
    cancelled. ``task_status.started(port)`` gives the bound port (``port=0``: a free one).

    Resource handling: the HTTP server runs on a daemon thread of ``prometheus_client``
    that reads only the registry; on cancellation the server is shut down and its socket
    closed before this returns (shielded, at most one poll interval of the server).

    Error handling: ``OSError`` when the address cannot be bound, before ``started``.
    """
    from prometheus_client import start_http_server

    httpd, thread = start_http_server(port, addr=host, registry=metrics.registry)
    try:
        task_status.started(int(httpd.server_port))
        await metrics.refresh_forever()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(httpd.shutdown)
            httpd.server_close()
            await trio.to_thread.run_sync(thread.join, 5.0)
