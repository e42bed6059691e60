"""supervisor layer: load shapes, restart policy, circuit breaker, self-monitoring.

* :mod:`.plan` — closed/open load models as pure, seeded planners of session start times,
  and the late/dropped classification of each start.
* :mod:`.policy` — OTP restart types, restart intensity, exponential backoff with jitter.
* :mod:`.breaker` — fleet-wide circuit breaker pausing new connections while the target fails.
* :mod:`.monitor` — event-loop lag, CPU and GC-pause self-monitoring; :mod:`.validity` —
  the run validity verdicts; :mod:`.gc_regime` — a long run's garbage-collection regime.
* :mod:`.supervisor` — the runtime: :func:`open_supervisor`, :class:`Supervisor`,
  :class:`SessionHandle` (start on demand, OTP restarts, breaker, drain/cancel, snapshot).
* :mod:`.workload` — :class:`Workload` (load model + session + driver), :func:`run_workload`;
  any :class:`PlannedLoad` runs with :meth:`Supervisor.run_workload`.
* :mod:`.sink` — the result sink (:class:`JsonlSink` flushes a line per finished turn and
  session), :func:`read_run_meta`; :mod:`.outputs` — ``summary.json`` / ``summary.csv`` /
  ``report.html`` from ``results.jsonl`` (:func:`write_outputs`).
* :mod:`.snapshot` — :class:`SupervisorSnapshot`, the live status.
* :mod:`.tee` — :class:`~.tee.TeeSink`: the sink plus observers (live judges, exporters).
* :mod:`.live_thresholds` — ``:abort`` thresholds judged on rolling windows during the run
  (:class:`~.live_thresholds.LiveThresholds`, :func:`~.live_thresholds.watch_abort_thresholds`).
"""

from orchestrator.supervisor.breaker import BreakerState, CircuitBreaker, Grant
from orchestrator.supervisor.monitor import (
    CpuSampler,
    LagHistogram,
    LagRecorder,
    LoopMonitor,
    MonitorSnapshot,
)
from orchestrator.supervisor.outputs import load_summary, write_outputs
from orchestrator.supervisor.plan import (
    ClosedModel,
    ClosedPlan,
    OpenModel,
    PlanError,
    PlannedStart,
    StartDecision,
    StartLateness,
    classify_start,
    decide_start,
)
from orchestrator.supervisor.policy import (
    Backoff,
    GiveUp,
    NoRestart,
    Restart,
    RestartHistory,
    RestartIntensity,
    RestartPolicy,
    RestartType,
    decide,
)
from orchestrator.supervisor.sink import JsonlSink, ListSink, RecordSink, RunMeta, read_run_meta
from orchestrator.supervisor.snapshot import MetricPercentiles, SupervisorSnapshot
from orchestrator.supervisor.supervisor import (
    Driver,
    MeasuredPacer,
    PlannedLoad,
    SessionHandle,
    Supervisor,
    SupervisorDraining,
    open_supervisor,
)
from orchestrator.supervisor.validity import Validity, ValidityLimits, judge
from orchestrator.supervisor.workload import Workload, WorkloadStats, run_workload

__all__ = [
    "Backoff",
    "BreakerState",
    "CircuitBreaker",
    "ClosedModel",
    "ClosedPlan",
    "CpuSampler",
    "Driver",
    "GiveUp",
    "Grant",
    "JsonlSink",
    "LagHistogram",
    "LagRecorder",
    "ListSink",
    "LoopMonitor",
    "MeasuredPacer",
    "MetricPercentiles",
    "MonitorSnapshot",
    "NoRestart",
    "OpenModel",
    "PlanError",
    "PlannedLoad",
    "PlannedStart",
    "RecordSink",
    "Restart",
    "RestartHistory",
    "RestartIntensity",
    "RestartPolicy",
    "RestartType",
    "RunMeta",
    "SessionHandle",
    "StartDecision",
    "StartLateness",
    "Supervisor",
    "SupervisorDraining",
    "SupervisorSnapshot",
    "Validity",
    "ValidityLimits",
    "Workload",
    "WorkloadStats",
    "classify_start",
    "decide",
    "decide_start",
    "judge",
    "load_summary",
    "open_supervisor",
    "read_run_meta",
    "run_workload",
    "write_outputs",
]
