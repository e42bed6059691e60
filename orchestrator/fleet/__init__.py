"""One run split over worker processes or Ray actors (DESIGN.md, "Scale-out").

Layer: between the CLI and the supervisor. The coordinator (:mod:`.coordinator`) gives
each worker (:mod:`.worker`: a full supervisor) its share of the whole plan
(:func:`orchestrator.supervisor.plan.share_model`) and one start epoch, writes the one
results file from the records the workers stream (:mod:`.wire`), merges their live status
(:mod:`.merge`) and judges validity per worker and overall. Workers are local processes
(:mod:`.local`) or Ray actors (:mod:`.ray_workers`, optional extra ``ray``); the job they
run is shipped by content (:mod:`.job`).
"""

from orchestrator.fleet.coordinator import Fleet, FleetError, FleetResults, WorkerLink
from orchestrator.fleet.job import JobError, WorkerJob, WorkOrder, dumps_order, loads_order
from orchestrator.fleet.local import ProcessWorker

__all__ = [
    "Fleet",
    "FleetError",
    "FleetResults",
    "JobError",
    "ProcessWorker",
    "WorkOrder",
    "WorkerJob",
    "WorkerLink",
    "dumps_order",
    "loads_order",
]
