"""aio layer: the supervisor for hosts that are not trio, and live metrics export.

It adapts the supervisor and adds no behaviour of its own (DESIGN.md, layer ``embed``/``aio``):

* :mod:`.supervisor` — :func:`open_aio_supervisor`: the trio supervisor running as a trio
  guest run on the host's asyncio loop (:class:`AioSupervisor`, :class:`AioSessionHandle`),
  cancellation mapped both ways.
* :mod:`.prometheus` — :class:`~.prometheus.SupervisorMetrics`: counters, latency
  histograms and generator health of one supervisor in its own ``CollectorRegistry``, and
  :func:`~.prometheus.serve_metrics`, the ``/metrics`` endpoint (``orchestrator run
  --metrics-port``).
"""

from orchestrator.aio.supervisor import (
    AioSessionHandle,
    AioSupervisor,
    AioSupervisorClosed,
    open_aio_supervisor,
)

__all__ = [
    "AioSessionHandle",
    "AioSupervisor",
    "AioSupervisorClosed",
    "open_aio_supervisor",
]
