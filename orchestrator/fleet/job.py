"""What a worker runs: the :class:`WorkerJob` every worker shares and its :class:`WorkOrder`.

A job is shipped to each worker *by content*: pickled once by the coordinator
(:func:`dumps_order`) and unpickled by the worker (:func:`loads_order`), whether the worker
is a local process (over its stdin) or a Ray actor (as a bytes argument). What the job
holds (the conversation with its prepared audio, scenario files already loaded, the
session spec factory) is therefore already in memory: the worker reads no file of the
run, so no shared filesystem is assumed. The job's ``spec`` and ``driver`` must be
picklable; the one object of the audio layer that is not (the caller-voice cache, for its
lock) is pickled as its directory and in-memory clips (:func:`_reduce_voice_cache`).
"""

from __future__ import annotations

import copyreg
import io
import pickle
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import attrs
import numpy as np

from orchestrator.audio.voices.cache import VoiceCache
from orchestrator.supervisor.breaker import CircuitBreaker
from orchestrator.supervisor.plan import ClosedModel, OpenModel
from orchestrator.supervisor.policy import RestartPolicy
from orchestrator.supervisor.supervisor import Driver
from orchestrator.supervisor.validity import ValidityLimits
from orchestrator.supervisor.workload import SpecFactory

__all__ = ["JobError", "WorkOrder", "WorkerJob", "dumps_order", "loads_order"]


class JobError(ValueError):
    """A job that cannot be shipped (not picklable) or read (not a job)."""


@attrs.frozen(kw_only=True)
class WorkerJob:
    """Everything every worker of a run shares.

    ``model``: the *whole* run's load model (each worker takes its share, see
    :func:`~orchestrator.supervisor.plan.share_model`); ``spec``: the spec of the session
    with run-wide index ``i`` (session ids and seeds come from it, so they are unique
    across workers); ``driver``: the conversation. The rest configure each worker's
    supervisor as :func:`~orchestrator.supervisor.supervisor.open_supervisor` does
    (``tags``: the run's user tags on every record).
    ``runtime``: a context manager factory held around the worker's run, entered before
    it says ``ready`` (the CLI passes its garbage-collector tuning,
    :func:`~orchestrator.supervisor.gc_regime.tuned_gc`); ``None``: nothing.
    """

    model: ClosedModel | OpenModel
    spec: SpecFactory
    driver: Driver | None
    restart: RestartPolicy
    breaker: CircuitBreaker | None = None
    validity_limits: ValidityLimits = attrs.field(factory=ValidityLimits)
    late_after_ms: float = 50.0
    drop_after_ms: float | None = None
    seed: int = 0
    respect_rate_limits: bool = False
    tags: dict[str, str] = attrs.field(factory=dict)
    runtime: Callable[[], AbstractContextManager[Any]] | None = None


@attrs.frozen(kw_only=True)
class WorkOrder:
    """One worker's order: the shared job, which share (``worker`` of ``workers``) and how
    often it reports its live status (``status_interval_s``)."""

    job: WorkerJob
    worker: int
    workers: int
    status_interval_s: float = 0.5


def _restore_voice_cache(directory: str, memo: dict[str, np.ndarray]) -> VoiceCache:
    cache = VoiceCache(directory)
    for clip in memo.values():
        clip.flags.writeable = False
    cache._memo.update(memo)
    return cache


def _reduce_voice_cache(cache: VoiceCache) -> tuple[Any, ...]:
    # the clips already made travel with the job; the lock is made anew
    return _restore_voice_cache, (str(cache.directory), dict(cache._memo))


class _Pickler(pickle.Pickler):
    dispatch_table = {**copyreg.dispatch_table, VoiceCache: _reduce_voice_cache}


def dumps_order(order: WorkOrder) -> bytes:
    """``order`` as bytes (pickle, highest protocol). Raises :class:`JobError` naming what
    could not be pickled."""
    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(order)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise JobError(f"the run cannot be shipped to its workers: {exc}") from None
    return buf.getvalue()


def loads_order(data: bytes) -> WorkOrder:
    """The :class:`WorkOrder` of :func:`dumps_order`'s bytes (from the coordinator only: a
    pickle runs code). Raises :class:`JobError` when ``data`` is not an order."""
    try:
        order = pickle.loads(data)  # noqa: S301 - our own coordinator's bytes
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad job
        raise JobError(f"not a work order: {type(exc).__name__}: {exc}") from None
    if not isinstance(order, WorkOrder):
        raise JobError(f"not a work order: {type(order).__name__}")
    return order
