"""Load shapes as pure, seeded planners of session start times.

A *plan* says when each session **should** start, in seconds since run start on the
injected (trio) clock. The supervisor sleeps until each planned time and then records how
late the real start was (:func:`classify_start`, :func:`decide_start`). A start is never
silently shifted: if the generator falls behind, the lateness shows up in ``late_ms`` and in
``connect_ms`` / ``session_ready_ms`` (which DESIGN.md anchors at the *planned* start), and a
start that is too late, or that finds ``max_concurrency`` sessions still running, is counted
as dropped. That is the coordinated-omission rule of DESIGN.md applied to arrivals.

Closed model (:class:`ClosedModel` -> :class:`ClosedPlan`)
    ``concurrency`` slots. Slot ``i`` starts its first session at ``i * ramp_up_s /
    concurrency`` (a linear ramp at ``concurrency / ramp_up_s`` starts per second; all at 0
    without ramp-up). When a slot's session ends at ``t``, the slot's next session is planned
    at ``t`` itself (:meth:`ClosedPlan.next_start`), until ``sessions`` have been started in
    total or ``t >= duration_s``. Sessions planned at or after ``duration_s`` never start.

Open model (:class:`OpenModel`)
    Arrivals follow a rate function ``r(t)`` in sessions/second: constant ``rate``, or a
    linear ramp from ``rate`` to ``rate_to`` over ``ramp_s`` seconds (default: the whole
    ``duration_s``) and ``rate_to`` after it. With ``Lambda(t) = integral_0^t r`` (the expected
    number of arrivals by ``t``):

    * deterministic: arrival ``n = 0, 1, 2, ...`` is at ``Lambda^-1(n)``, for every ``n <
      Lambda(duration_s)``. ``Lambda`` is quadratic on the ramp, so the inverse is solved in
      closed form (exact up to float rounding, no numeric integration). ``rate=20,
      duration_s=10`` gives exactly 200 starts at 0, 0.05, ..., 9.95.
    * ``poisson=True``: a unit-rate Poisson process (cumulative sums of Exp(1) gaps from a
      ``numpy.random.Generator(PCG64(seed))``) mapped through ``Lambda^-1`` (the
      time-rescaling theorem), which yields an inhomogeneous Poisson process with intensity
      ``r(t)`` on ``[0, duration_s)``. Same seed, same arrivals.

    ``sessions`` truncates the arrivals to the first ``sessions``. ``max_concurrency`` is not a
    planning input: the supervisor drops an arrival whose planned time finds that many
    sessions running (:func:`decide_start`, reason ``"max_concurrency"``).

Shares (:func:`share_model`, for a run split over workers)
    Worker ``w`` of ``n`` runs a share of the whole model whose starts are exactly the whole
    plan's starts that fall to it, at the same planned times (given a shared start epoch):
    open model: arrival ``k`` goes to worker ``k mod n`` (its local index ``k // n``), so the
    union of the shares' arrivals is the whole plan, ramps and Poisson arrivals included;
    ``max_concurrency`` is split as evenly as integers allow. Closed model: slot ``i`` goes
    to worker ``i mod n`` and keeps its first start ``i * ramp_up_s / concurrency`` (the
    ramp is preserved); the ``sessions`` total is split as evenly as integers allow
    (statically: a worker whose sessions end sooner does not take over another's). Session
    ``j`` of worker ``w`` is session ``j * n + w`` of the whole run (:func:`run_index`), so
    the shares' session indices are exactly ``0 .. sessions - 1``. :func:`fleet_size` says
    how many workers a model can keep busy.

Everything here is pure (no I/O, no clock reads); only :class:`ClosedPlan` has state (its
slot bookkeeping).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from typing import Literal, NamedTuple

import attrs
import numpy as np

__all__ = [
    "ClosedModel",
    "ClosedPlan",
    "ClosedShare",
    "OpenModel",
    "OpenShare",
    "PlanError",
    "PlannedStart",
    "StartDecision",
    "StartLateness",
    "StartStatus",
    "classify_start",
    "decide_start",
    "fleet_size",
    "run_index",
    "share_model",
]

StartStatus = Literal["on_time", "late", "dropped"]

# Arrivals are produced in chunks of this many so that a long, high-rate open model never
# materialises all its start times at once; fixed so that seeded runs are reproducible.
_CHUNK = 4096
# Lambda(duration) within this relative distance of an integer counts as that integer, so a
# float rounding of e.g. 199.99999999999997 does not lose (or 200.00000000000003 add) a start.
_INT_SNAP = 1e-9


class PlanError(ValueError):
    """A load-shape parameter is invalid; the message names the model and the parameter."""


@attrs.frozen
class PlannedStart:
    """One planned session start.

    ``index`` is the run-wide sequence number of the session (0-based, in planned order for
    the open model, in planning-call order for the closed model), ``at`` the planned start in
    seconds since run start, ``slot`` the closed-model slot (``None`` in the open model).
    """

    index: int
    at: float
    slot: int | None = None


def _check_finite(model: str, name: str, value: float) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise PlanError(f"{model}.{name} must be a finite number, got {value!r}")


def _check_positive_int(model: str, name: str, value: int | None, *, allow_none: bool) -> None:
    if value is None:
        if not allow_none:
            raise PlanError(f"{model}.{name} is required")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise PlanError(f"{model}.{name} must be an integer >= 1, got {value!r}")


# --------------------------------------------------------------------------- closed model


@attrs.frozen
class ClosedModel:
    """Closed load model: ``concurrency`` sessions at once, each slot starting its next
    session when its previous one ends.

    ``ramp_up_s`` spreads the first starts linearly; ``sessions`` caps the total number of
    sessions started, ``duration_s`` stops planning starts at or after that time. With neither,
    the plan runs until the supervisor is stopped.
    """

    concurrency: int
    ramp_up_s: float = 0.0
    sessions: int | None = None
    duration_s: float | None = None

    def __attrs_post_init__(self) -> None:
        _check_positive_int("ClosedModel", "concurrency", self.concurrency, allow_none=False)
        _check_finite("ClosedModel", "ramp_up_s", self.ramp_up_s)
        if self.ramp_up_s < 0:
            raise PlanError(f"ClosedModel.ramp_up_s must be >= 0, got {self.ramp_up_s!r}")
        _check_positive_int("ClosedModel", "sessions", self.sessions, allow_none=True)
        if self.duration_s is not None:
            _check_finite("ClosedModel", "duration_s", self.duration_s)
            if self.duration_s <= 0:
                raise PlanError(f"ClosedModel.duration_s must be > 0, got {self.duration_s!r}")

    def plan(self) -> ClosedPlan:
        """A fresh :class:`ClosedPlan` for one run of this model."""
        return ClosedPlan(self)

    def first_start(self, slot: int) -> float:
        """When slot ``slot`` starts its first session: ``slot * ramp_up_s / concurrency``."""
        return slot * self.ramp_up_s / self.concurrency


@attrs.define(eq=False)
class ClosedPlan:
    """The mutable per-run state of a :class:`ClosedModel`: which slots are running and how
    many sessions have been planned.

    Usage: start every :meth:`initial_starts` entry at its ``at``; whenever a slot's session
    ends, ask :meth:`next_start` for that slot. ``None`` retires the slot; the run is over
    when :attr:`finished` (no slot has a running session).
    """

    model: ClosedModel
    _planned: int = attrs.field(default=0, init=False)
    _active: set[int] = attrs.field(factory=set, init=False)
    _initial_done: bool = attrs.field(default=False, init=False)

    @property
    def planned(self) -> int:
        """How many session starts have been planned so far."""
        return self._planned

    @property
    def active_slots(self) -> frozenset[int]:
        """Slots whose current session has been planned and has not yet ended."""
        return frozenset(self._active)

    @property
    def finished(self) -> bool:
        """True once the initial starts were taken and every slot has been retired."""
        return self._initial_done and not self._active

    def _exhausted(self, at: float) -> bool:
        m = self.model
        if m.sessions is not None and self._planned >= m.sessions:
            return True
        return m.duration_s is not None and at >= m.duration_s

    def _take(self, slot: int, at: float) -> PlannedStart:
        start = PlannedStart(index=self._planned, at=at, slot=slot)
        self._planned += 1
        self._active.add(slot)
        return start

    def initial_starts(self) -> list[PlannedStart]:
        """The first start of every slot, in time order (call once per plan).

        Slot ``i`` starts at ``i * ramp_up_s / concurrency``. Slots whose first start would be
        at or after ``duration_s``, or beyond the ``sessions`` total, get no start and are
        never active.
        """
        if self._initial_done:
            raise RuntimeError("ClosedPlan.initial_starts() was already called for this plan")
        self._initial_done = True
        m = self.model
        starts: list[PlannedStart] = []
        for slot in range(m.concurrency):
            at = m.first_start(slot)
            if self._exhausted(at):
                break  # times are increasing, and the session count only grows
            starts.append(self._take(slot, at))
        return starts

    def next_start(self, slot: int, ended_at: float) -> PlannedStart | None:
        """The slot's next session, planned at ``ended_at`` (when its previous one ended).

        Returns ``None`` and retires the slot when ``sessions`` starts have been planned or
        ``ended_at >= duration_s``. Raises ``ValueError`` for a slot with no running session
        (never started, or already retired).
        """
        if slot not in self._active:
            raise ValueError(f"ClosedPlan.next_start: slot {slot!r} has no running session")
        _check_finite("ClosedPlan.next_start", "ended_at", ended_at)
        if self._exhausted(ended_at):
            self._active.discard(slot)
            return None
        self._planned += 1
        return PlannedStart(index=self._planned - 1, at=ended_at, slot=slot)


# --------------------------------------------------------------------------- open model


@attrs.frozen
class OpenModel:
    """Open load model: sessions arrive at ``rate`` per second regardless of how many are
    running (constant, or ramping linearly to ``rate_to`` over ``ramp_s``; optionally
    Poisson), for ``duration_s`` seconds. See the module docstring for the exact arrival
    times. ``max_concurrency`` caps running sessions at run time (excess arrivals are dropped);
    ``sessions`` caps the number of arrivals.
    """

    rate: float
    duration_s: float
    rate_to: float | None = None
    ramp_s: float | None = None
    poisson: bool = False
    seed: int = 0
    max_concurrency: int | None = None
    sessions: int | None = None

    def __attrs_post_init__(self) -> None:
        _check_finite("OpenModel", "rate", self.rate)
        if self.rate < 0:
            raise PlanError(f"OpenModel.rate must be >= 0 sessions/s, got {self.rate!r}")
        _check_finite("OpenModel", "duration_s", self.duration_s)
        if self.duration_s <= 0:
            raise PlanError(f"OpenModel.duration_s must be > 0, got {self.duration_s!r}")
        if self.rate_to is not None:
            _check_finite("OpenModel", "rate_to", self.rate_to)
            if self.rate_to < 0:
                raise PlanError(f"OpenModel.rate_to must be >= 0 sessions/s, got {self.rate_to!r}")
        if self.ramp_s is not None:
            if self.rate_to is None:
                raise PlanError("OpenModel.ramp_s needs rate_to (the rate reached at the end)")
            _check_finite("OpenModel", "ramp_s", self.ramp_s)
            if self.ramp_s <= 0:
                raise PlanError(f"OpenModel.ramp_s must be > 0, got {self.ramp_s!r}")
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, numbers.Integral)
            or self.seed < 0
        ):
            raise PlanError(f"OpenModel.seed must be an integer >= 0, got {self.seed!r}")
        _check_positive_int("OpenModel", "max_concurrency", self.max_concurrency, allow_none=True)
        _check_positive_int("OpenModel", "sessions", self.sessions, allow_none=True)

    # -- the rate function and its integral

    @property
    def _end_rate(self) -> float:
        return self.rate if self.rate_to is None else self.rate_to

    @property
    def _ramp(self) -> float:
        """Ramp length in seconds (0 for a constant rate)."""
        if self.rate_to is None or self.rate_to == self.rate:
            return 0.0
        return self.duration_s if self.ramp_s is None else self.ramp_s

    @property
    def _slope(self) -> float:
        ramp = self._ramp
        return 0.0 if ramp == 0.0 else (self._end_rate - self.rate) / ramp

    def rate_at(self, t: float) -> float:
        """The planned arrival rate (sessions/s) at ``t`` seconds (0 outside ``[0, duration_s)``)."""
        if t < 0 or t >= self.duration_s:
            return 0.0
        ramp = self._ramp
        if t >= ramp:
            return self._end_rate
        return self.rate + self._slope * t

    def cumulative(self, t: float | np.ndarray) -> float | np.ndarray:
        """``Lambda(t)``: expected arrivals in ``[0, t)`` (``t`` clamped to ``[0, duration_s]``)."""
        tt = np.clip(np.asarray(t, dtype=np.float64), 0.0, self.duration_s)
        ramp = self._ramp
        a, k = self.rate, self._slope
        on_ramp = np.minimum(tt, ramp)
        after = np.maximum(tt - ramp, 0.0)
        out = a * on_ramp + 0.5 * k * on_ramp * on_ramp + self._end_rate * after
        return float(out) if out.ndim == 0 else out

    def expected_arrivals(self) -> float:
        """``Lambda(duration_s)``: the expected number of arrivals (before ``sessions``)."""
        return float(self.cumulative(self.duration_s))

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        """``Lambda^-1(y)`` for ``0 <= y < Lambda(duration_s)`` (vectorised, closed form)."""
        a, k, ramp = self.rate, self._slope, self._ramp
        if ramp == 0.0:
            return y / a  # a > 0 here: with a == 0 there are no arrivals to invert
        y_ramp = a * ramp + 0.5 * k * ramp * ramp  # Lambda at the end of the ramp
        on_ramp = y <= y_ramp
        out = np.empty_like(y)
        yr = y[on_ramp]
        # Root of (k/2) t^2 + a t - y = 0 in the cancellation-free form 2y / (a + sqrt(.));
        # valid for k of either sign while y <= Lambda(ramp) (the discriminant stays >= 0).
        disc = np.maximum(a * a + 2.0 * k * yr, 0.0)
        denom = a + np.sqrt(disc)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[on_ramp] = np.where(yr == 0.0, 0.0, 2.0 * yr / denom)
        # After the ramp the rate is constant (> 0, or y could not exceed Lambda(ramp)).
        out[~on_ramp] = ramp + (y[~on_ramp] - y_ramp) / self._end_rate
        return out

    # -- arrivals

    def _iter_chunks(self) -> Iterator[np.ndarray]:
        """Arrival times in increasing chunks (before the ``sessions`` cap)."""
        limit = self.expected_arrivals()  # arrivals: points with cumulative value < limit
        if limit <= 0.0:
            return
        if not self.poisson:
            nearest = round(limit)
            if abs(limit - nearest) <= _INT_SNAP * max(1.0, limit):
                limit = float(nearest)
            count = math.ceil(limit)  # integers n with 0 <= n < limit
            for lo in range(0, count, _CHUNK):
                n = np.arange(lo, min(lo + _CHUNK, count), dtype=np.float64)
                yield self._inverse(n)
            return
        rng = np.random.Generator(np.random.PCG64(self.seed))
        carry = 0.0
        while True:
            s = carry + np.cumsum(rng.exponential(1.0, _CHUNK))
            carry = float(s[-1])
            inside = s[s < limit]
            if inside.size:
                yield self._inverse(inside)
            if inside.size < s.size:
                return

    def arrival_times(self) -> np.ndarray:
        """All planned start times (float64 seconds, non-decreasing), ``sessions`` applied."""
        chunks = list(self._iter_chunks_capped())
        return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.float64)

    def _iter_chunks_capped(self) -> Iterator[np.ndarray]:
        remaining = math.inf if self.sessions is None else self.sessions
        for chunk in self._iter_chunks():
            if remaining <= 0:
                return
            if chunk.size > remaining:
                chunk = chunk[: int(remaining)]
            remaining -= chunk.size
            yield chunk

    def starts(self) -> Iterator[PlannedStart]:
        """The planned starts in order, generated lazily chunk by chunk (``slot`` is None)."""
        index = 0
        for chunk in self._iter_chunks_capped():
            for at in chunk.tolist():
                yield PlannedStart(index=index, at=at)
                index += 1


# --------------------------------------------------------------------------- shares


def _even_part(total: int, worker: int, workers: int) -> int:
    """Worker ``worker``'s part of ``total`` split over ``workers`` (the first ones get the
    remainder): the count of ``k`` in ``range(worker, total, workers)``."""
    return total // workers + (1 if worker < total % workers else 0)


def run_index(local: int, worker: int, workers: int) -> int:
    """The run-wide index of session ``local`` of worker ``worker`` (of ``workers``):
    ``local * workers + worker`` (see the module docstring, "Shares")."""
    return local * workers + worker


@attrs.frozen
class ClosedShare(ClosedModel):
    """Worker ``worker``'s share of a closed model (see :func:`share_model`): its
    ``concurrency`` slots are the whole model's slots ``worker, worker + workers, ...``
    with their first starts as in the whole plan (``whole_concurrency`` slots over
    ``ramp_up_s``)."""

    worker: int = attrs.field(default=0, kw_only=True)
    workers: int = attrs.field(default=1, kw_only=True)
    whole_concurrency: int = attrs.field(default=1, kw_only=True)

    def first_start(self, slot: int) -> float:
        """The whole plan's first start of the run-wide slot this local ``slot`` is."""
        return run_index(slot, self.worker, self.workers) * self.ramp_up_s / self.whole_concurrency


@attrs.frozen
class OpenShare(OpenModel):
    """Worker ``worker``'s share of an open model (see :func:`share_model`): the whole
    plan's arrivals ``worker, worker + workers, ...`` at their planned times. Its other
    fields are the whole model's (``max_concurrency``: this worker's part of the cap)."""

    worker: int = attrs.field(default=0, kw_only=True)
    workers: int = attrs.field(default=1, kw_only=True)

    def arrival_times(self) -> np.ndarray:
        """This share's planned start times (every ``workers``-th of the whole plan's)."""
        return super().arrival_times()[self.worker :: self.workers]

    def starts(self) -> Iterator[PlannedStart]:
        """This share's starts; ``index`` is the local one (:func:`run_index` maps it)."""
        for start in super().starts():
            if start.index % self.workers == self.worker:
                yield PlannedStart(index=start.index // self.workers, at=start.at)


def fleet_size(model: ClosedModel | OpenModel, wanted: int) -> int:
    """How many of ``wanted`` workers ``model`` can give a share to: no more than its
    ``concurrency`` and ``sessions`` (closed) or its ``max_concurrency`` and ``sessions``
    (open), and at least 1."""
    caps = [wanted]
    if isinstance(model, ClosedModel):
        caps.append(model.concurrency)
    elif model.max_concurrency is not None:
        caps.append(model.max_concurrency)
    if model.sessions is not None:
        caps.append(model.sessions)
    return max(1, min(caps))


def share_model(
    model: ClosedModel | OpenModel, worker: int, workers: int
) -> ClosedShare | OpenShare:
    """Worker ``worker``'s share of ``model`` split over ``workers`` (see the module
    docstring, "Shares"). Raises :class:`PlanError` when ``workers`` is more than
    :func:`fleet_size` allows or ``worker`` is not in ``range(workers)``."""
    _check_positive_int("share_model", "workers", workers, allow_none=False)
    if not 0 <= worker < workers:
        raise PlanError(f"share_model.worker must be in [0, {workers}), got {worker!r}")
    if fleet_size(model, workers) < workers:
        raise PlanError(
            f"share_model: {type(model).__name__} cannot be split over {workers} workers "
            f"(at most {fleet_size(model, workers)})"
        )
    sessions = None if model.sessions is None else _even_part(model.sessions, worker, workers)
    if isinstance(model, ClosedModel):
        return ClosedShare(
            concurrency=_even_part(model.concurrency, worker, workers),
            ramp_up_s=model.ramp_up_s,
            sessions=sessions,
            duration_s=model.duration_s,
            worker=worker,
            workers=workers,
            whole_concurrency=model.concurrency,
        )
    cap = model.max_concurrency
    return OpenShare(
        rate=model.rate,
        duration_s=model.duration_s,
        rate_to=model.rate_to,
        ramp_s=model.ramp_s,
        poisson=model.poisson,
        seed=model.seed,
        max_concurrency=None if cap is None else _even_part(cap, worker, workers),
        sessions=model.sessions,
        worker=worker,
        workers=workers,
    )


# --------------------------------------------------------------------------- lateness


class StartLateness(NamedTuple):
    """``(status, late_ms)`` of one start attempt, see :func:`classify_start`."""

    status: StartStatus
    late_ms: float


def classify_start(
    planned: float, actual: float, late_after_ms: float, drop_after_ms: float | None
) -> StartLateness:
    """Classify a start by its lateness ``late_ms = (actual - planned) * 1000``.

    ``"on_time"`` when ``late_ms <= late_after_ms``, ``"dropped"`` when ``drop_after_ms`` is
    set and ``late_ms > drop_after_ms``, else ``"late"``. ``late_ms`` is rounded to the
    nanosecond (so float noise such as ``1.01 - 1.0`` does not cross a threshold) and
    returned unclamped (negative if the start was early) so it can be recorded for every
    start.
    """
    if late_after_ms < 0:
        raise ValueError(f"classify_start: late_after_ms must be >= 0, got {late_after_ms!r}")
    if drop_after_ms is not None and drop_after_ms < late_after_ms:
        raise ValueError(
            f"classify_start: drop_after_ms ({drop_after_ms!r}) must be >= "
            f"late_after_ms ({late_after_ms!r})"
        )
    late_ms = round((actual - planned) * 1000.0, 6)
    if drop_after_ms is not None and late_ms > drop_after_ms:
        return StartLateness("dropped", late_ms)
    if late_ms > late_after_ms:
        return StartLateness("late", late_ms)
    return StartLateness("on_time", late_ms)


@attrs.frozen
class StartDecision:
    """What the supervisor does with one planned start.

    ``status`` as in :func:`classify_start`; ``reason`` is ``None`` unless dropped:
    ``"too_late"`` (lateness beyond the drop limit) or ``"max_concurrency"`` (that many
    sessions were running at the start time).
    """

    status: StartStatus
    late_ms: float
    reason: Literal["too_late", "max_concurrency"] | None = None

    @property
    def started(self) -> bool:
        """True when the session is started (on time or late)."""
        return self.status != "dropped"


def decide_start(
    planned: float,
    actual: float,
    *,
    running: int,
    max_concurrency: int | None,
    late_after_ms: float,
    drop_after_ms: float | None,
) -> StartDecision:
    """Decide one start at ``actual`` (when the supervisor got to it) planned at ``planned``.

    A start is dropped with reason ``"max_concurrency"`` when ``running >= max_concurrency``
    (the cap is checked first: a saturated fleet drops even an on-time arrival), else
    classified by lateness (:func:`classify_start`), dropping with ``"too_late"`` beyond
    ``drop_after_ms``. ``late_ms`` is always filled in.
    """
    status, late_ms = classify_start(planned, actual, late_after_ms, drop_after_ms)
    if max_concurrency is not None and running >= max_concurrency:
        return StartDecision("dropped", late_ms, "max_concurrency")
    if status == "dropped":
        return StartDecision("dropped", late_ms, "too_late")
    return StartDecision(status, late_ms)
