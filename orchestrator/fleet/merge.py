"""Fleet-wide figures from the workers' own: live status, self-monitoring, validity.

Pure functions. Counts and rates add up; times that judge the generator (loop lag, pacer
lateness, GC pauses: ``*_ms`` figures) take the worst worker, since one worker that fell
behind is enough to make the run untrustworthy, and the sample counts behind the live p99s
the fewest worker's; CPU adds up (the fleet's total).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from orchestrator.supervisor.snapshot import SupervisorSnapshot
from orchestrator.supervisor.validity import merge_validity

__all__ = ["merge_monitor", "merge_snapshots", "snapshot_from_dict", "worker_validity"]

_WORST = frozenset({"loop_lag_p99_ms", "loop_lag_recent_max_ms", "pacer_p99_ms", "t_s"})
#: The fewest of the workers' (the merged p99s are the worst worker's, not the pooled one's).
_FEWEST = frozenset({"loop_lag_samples", "pacer_samples"})
_BREAKER_ORDER = ("closed", "half_open", "open")
_FIELDS = {f.name for f in attrs.fields(SupervisorSnapshot)}


def snapshot_from_dict(data: Mapping[str, Any]) -> SupervisorSnapshot:
    """A worker's ``status`` snapshot (:meth:`SupervisorSnapshot.to_dict`) back as a value;
    its rolling ``metrics`` are left out (the coordinator keeps its own from the records)
    and unknown keys are ignored."""
    return SupervisorSnapshot(**{k: v for k, v in data.items() if k in _FIELDS and k != "metrics"})


def _worst(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _merge_field(name: str, values: list[Any]) -> Any:
    if name in _WORST:
        return _worst(values)
    if name in _FEWEST:
        return min((v for v in values if v is not None), default=None)
    if name == "breaker":
        return max(values, key=lambda v: _BREAKER_ORDER.index(v) if v in _BREAKER_ORDER else 0)
    if name == "last_error":
        return next((v for v in reversed(values) if v), None)
    known = [v for v in values if v is not None]
    if not known:
        return None
    if name == "planned_total" and len(known) < len(values):
        return None
    first = known[0]
    if isinstance(first, bool):
        return any(known)
    if isinstance(first, int | float):
        return sum(known)
    if isinstance(first, dict):
        merged: dict[str, Any] = {}
        for value in known:
            for key, item in value.items():
                merged[key] = merged.get(key, 0) + item
        return merged
    return first


def merge_snapshots(snapshots: Sequence[SupervisorSnapshot]) -> SupervisorSnapshot:
    """One snapshot of several workers' (see the module docstring); ``metrics`` empty."""
    if not snapshots:
        return SupervisorSnapshot(t_s=0.0)
    fields = {
        f.name: _merge_field(f.name, [getattr(s, f.name) for s in snapshots])
        for f in attrs.fields(SupervisorSnapshot)
        if f.name != "metrics"
    }
    return SupervisorSnapshot(**fields)


def merge_monitor(figures: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fleet's self-monitoring figures of the workers' ``run_end`` ones: ``*_ms``
    figures the worst worker's, other numbers summed (CPU: the fleet's total)."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for f in figures for k in f):
        values = [f.get(key) for f in figures]
        known = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if not known:
            continue
        out[key] = max(known) if key.endswith("_ms") and "total" not in key else sum(known)
    return out


def worker_validity(
    name: str, verdict: Mapping[str, Any] | None, died: str | None
) -> dict[str, Any]:
    """One worker's verdict with its reasons naming it; a worker that ``died`` (the
    reason) is invalid whatever it measured."""
    reasons = [f"{name}: {r}" for r in (verdict or {}).get("reasons", ())]
    if died is not None:
        reasons.insert(0, died)
    return merge_validity(
        {"valid": died is None and (verdict or {}).get("valid", True), "reasons": reasons}
    )
