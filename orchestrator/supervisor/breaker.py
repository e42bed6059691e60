"""Fleet-wide circuit breaker on session outcomes.

When the target starts failing (handshakes rejected with 429/5xx, connections dropped), a
load generator that keeps opening hundreds of connections measures nothing but its own
retry storm. The breaker pauses *new connections* fleet-wide until the target recovers:

::

    CLOSED --(failure rate > threshold over window_s, >= min_samples)--> OPEN
    OPEN   --(cooldown_s elapsed)--------------------------------------> HALF_OPEN
    HALF_OPEN --(close_after probe successes)--------------------------> CLOSED
    HALF_OPEN --(a probe fails)----------------------------------------> OPEN (cooldown again)

* CLOSED: every :meth:`CircuitBreaker.allow` is granted; outcomes go into a sliding window
  of the last ``window_s`` seconds (memory is O(outcomes in the window)).
* OPEN: nothing is allowed; outcomes of sessions admitted before the trip are ignored.
* HALF_OPEN: up to ``half_open_probes`` attempts may be in flight at once; any outcome
  recorded in this state counts as a probe result (including one from a session admitted
  before the trip that ends only now — it is evidence about the target all the same). On
  closing the window starts empty.

The state machine is pure: every method takes ``now`` (seconds on the injected trio clock)
and transitions are computed from it; OPEN -> HALF_OPEN happens on the first call at or after
the cooldown. Only :meth:`CircuitBreaker.wait_until_allowed` touches trio.

Contract for callers: every grant is followed by exactly one outcome (the attempt's
result) or release (the attempt never happened, e.g. it was cancelled or dropped), or a
HALF_OPEN probe slot leaks and every later attempt waits forever. Use the grant-token API,
which makes that mistake impossible::

    async with breaker.admit() as grant:   # waits while OPEN / probe slots are taken
        ok = await attempt()
        grant.record(ok, trio.current_time())
    # leaving the block without an outcome (cancelled, dropped, an exception) releases it

A :class:`Grant` knows whether it is a probe of the *current* HALF_OPEN period, so only
real probes give their slot back: the outcome of an attempt admitted earlier (CLOSED, or a
previous HALF_OPEN period) still counts as evidence but cannot free a slot it never took
(which would let more than ``half_open_probes`` attempts through). The bare
:meth:`CircuitBreaker.allow` / :meth:`~CircuitBreaker.record` / :meth:`~CircuitBreaker.release`
calls are the untracked form of the same state machine.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

__all__ = ["BreakerState", "CircuitBreaker", "Grant"]


class BreakerState(enum.Enum):
    """Circuit breaker states."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@attrs.define(eq=False)
class Grant:
    """One admitted attempt (from :meth:`CircuitBreaker.try_acquire`, :meth:`~CircuitBreaker.
    acquire` or :meth:`~CircuitBreaker.admit`). Settle it exactly once: :meth:`record` the
    attempt's outcome, or :meth:`release` it when the attempt never happened."""

    breaker: CircuitBreaker
    probe_period: int | None
    """The HALF_OPEN period this grant is a probe of (``None``: granted while CLOSED)."""
    settled: bool = attrs.field(default=False, init=False)

    def record(self, ok: bool, now: float) -> None:
        """Record the attempt's outcome at ``now``. Raises ``RuntimeError`` if already
        settled."""
        self._settle()
        self.breaker._finish(self, ok, now)

    def release(self, now: float) -> None:
        """Give the grant back without an outcome (the attempt never happened). Raises
        ``RuntimeError`` if already settled."""
        self._settle()
        self.breaker._finish(self, None, now)

    def _settle(self) -> None:
        if self.settled:
            raise RuntimeError("breaker Grant settled twice (record/release once per grant)")
        self.settled = True


@attrs.define(eq=False)
class CircuitBreaker:
    """Trips OPEN when more than ``failure_threshold`` (a fraction 0..1) of the outcomes in the
    last ``window_s`` seconds failed, given at least ``min_samples`` outcomes; stays OPEN for
    ``cooldown_s``; then lets ``half_open_probes`` concurrent probes through and closes after
    ``close_after`` probe successes (a probe failure re-opens it)."""

    failure_threshold: float = 0.5
    window_s: float = 10.0
    min_samples: int = 10
    cooldown_s: float = 5.0
    half_open_probes: int = 1
    close_after: int = 1

    _state: BreakerState = attrs.field(default=BreakerState.CLOSED, init=False)
    _window: deque[tuple[float, bool]] = attrs.field(factory=deque, init=False)
    _failures: int = attrs.field(default=0, init=False)
    _opened_at: float = attrs.field(default=-math.inf, init=False)
    _probes_in_flight: int = attrs.field(default=0, init=False)
    _probe_successes: int = attrs.field(default=0, init=False)
    _changed: trio.Event | None = attrs.field(default=None, init=False)
    _period: int = attrs.field(default=0, init=False)
    _outstanding: int = attrs.field(default=0, init=False)
    trips: int = attrs.field(default=0, init=False)
    """How many times the breaker has gone CLOSED/HALF_OPEN -> OPEN."""

    def __attrs_post_init__(self) -> None:
        threshold = self.failure_threshold
        if not (isinstance(threshold, numbers.Real) and 0.0 <= threshold < 1.0):
            raise ValueError(
                f"CircuitBreaker.failure_threshold must be in [0, 1), got {self.failure_threshold!r}"
            )
        for name in ("window_s", "cooldown_s"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
                raise ValueError(f"CircuitBreaker.{name} must be > 0, got {value!r}")
        for name in ("min_samples", "half_open_probes", "close_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"CircuitBreaker.{name} must be an integer >= 1, got {value!r}")

    # -- inspection

    @property
    def state(self) -> BreakerState:
        """The state as of the last call that was given ``now`` (see :meth:`poll`)."""
        return self._state

    @property
    def reopen_at(self) -> float | None:
        """When OPEN: the time it goes HALF_OPEN; otherwise ``None``."""
        return self._opened_at + self.cooldown_s if self._state is BreakerState.OPEN else None

    @property
    def probes_in_flight(self) -> int:
        """HALF_OPEN probe slots taken now (0 in the other states)."""
        return self._probes_in_flight if self._state is BreakerState.HALF_OPEN else 0

    @property
    def outstanding(self) -> int:
        """:class:`Grant` tokens handed out and not yet settled (the untracked
        :meth:`allow` is not counted)."""
        return self._outstanding

    def poll(self, now: float) -> BreakerState:
        """Apply time-driven transitions (OPEN -> HALF_OPEN) and return the state at ``now``."""
        self._advance(now)
        return self._state

    def window_counts(self, now: float) -> tuple[int, int]:
        """``(samples, failures)`` in the sliding window ending at ``now`` (CLOSED state)."""
        self._prune(now)
        return len(self._window), self._failures

    # -- transitions

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        window = self._window
        while window and window[0][0] <= horizon:
            _, ok = window.popleft()
            if not ok:
                self._failures -= 1

    def _advance(self, now: float) -> None:
        if self._state is BreakerState.OPEN and now >= self._opened_at + self.cooldown_s:
            self._state = BreakerState.HALF_OPEN
            self._period += 1
            self._probes_in_flight = 0
            self._probe_successes = 0
            self._notify()

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._window.clear()
        self._failures = 0
        self.trips += 1
        self._notify()

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._probes_in_flight = 0
        self._window.clear()
        self._failures = 0
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def try_acquire(self, now: float) -> Grant | None:
        """A :class:`Grant` if a new connection may be attempted at ``now``, else ``None``.
        A HALF_OPEN grant takes a probe slot until it is settled."""
        if not self._take(now):
            return None
        period = self._period if self._state is BreakerState.HALF_OPEN else None
        self._outstanding += 1
        return Grant(self, period)

    def allow(self, now: float) -> bool:
        """Untracked :meth:`try_acquire`: may a new connection be attempted at ``now``? A
        granted HALF_OPEN attempt takes a probe slot until its :meth:`record` or
        :meth:`release`."""
        return self._take(now)

    def _take(self, now: float) -> bool:
        self._advance(now)
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and self._probes_in_flight < self.half_open_probes:
            self._probes_in_flight += 1
            return True
        return False

    def release(self, now: float) -> None:
        """Untracked: give back a granted attempt that never happened (no outcome)."""
        self._advance(now)
        if self._state is BreakerState.HALF_OPEN and self._probes_in_flight > 0:
            self._probes_in_flight -= 1
            self._notify()

    def record(self, ok: bool, now: float) -> None:
        """Untracked: record the outcome of one session/connection attempt that ended at
        ``now`` (in HALF_OPEN it frees a probe slot, whoever took it)."""
        self._advance(now)
        if self._state is BreakerState.HALF_OPEN and self._probes_in_flight > 0:
            self._probes_in_flight -= 1
        self._outcome(ok, now)

    def _finish(self, grant: Grant, ok: bool | None, now: float) -> None:
        """Settle ``grant``: free its probe slot if it holds one of the current HALF_OPEN
        period, then apply the outcome (``None``: released, no outcome)."""
        self._outstanding -= 1
        self._advance(now)
        holds_slot = (
            self._state is BreakerState.HALF_OPEN
            and grant.probe_period == self._period
            and self._probes_in_flight > 0
        )
        if holds_slot:
            self._probes_in_flight -= 1
        if ok is None:
            if holds_slot:
                self._notify()
            return
        self._outcome(ok, now)

    def _outcome(self, ok: bool, now: float) -> None:
        if self._state is BreakerState.CLOSED:
            self._prune(now)
            self._window.append((now, ok))
            if not ok:
                self._failures += 1
            samples = len(self._window)
            if samples >= self.min_samples and self._failures > self.failure_threshold * samples:
                self._open(now)
        elif self._state is BreakerState.HALF_OPEN:
            if not ok:
                self._open(now)
                return
            self._probe_successes += 1
            if self._probe_successes >= self.close_after:
                self._close()
            else:
                self._notify()  # a probe slot may be free again
        # OPEN: outcomes of attempts admitted before the trip carry no new information.

    # -- trio helper

    async def acquire(self) -> Grant:
        """Wait until :meth:`try_acquire` grants an attempt at ``trio.current_time()`` and
        return the :class:`Grant` (settle it, or use :meth:`admit`).

        While OPEN it sleeps until the cooldown ends (on trio's clock, so MockClock-exact);
        while HALF_OPEN with every probe slot taken it waits for a probe's outcome. Many
        waiters may wait at once; each wakes, re-checks, and only as many as there are probe
        slots get through.

        Cancellation: raises ``Cancelled`` without holding a grant (the breaker is unchanged,
        apart from time-driven transitions).
        """
        await trio.lowlevel.checkpoint()  # cancel point before any grant is taken
        while True:
            grant = self.try_acquire(trio.current_time())
            if grant is not None:
                return grant
            await self._wait_for_change()

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[Grant]:
        """``async with breaker.admit() as grant:`` — :meth:`acquire` a grant for the
        block; record the attempt's outcome on it inside the block. A grant left unsettled
        when the block ends — normally, by an exception or by cancellation — is released,
        so no exit path can leak a probe slot.

        Cancellation: while waiting, raises ``Cancelled`` holding nothing; inside the block,
        the grant is released and ``Cancelled`` propagates.
        """
        grant = await self.acquire()
        try:
            yield grant
        finally:
            if not grant.settled:
                grant.release(trio.current_time())

    async def wait_until_allowed(self) -> None:
        """Untracked :meth:`acquire`: wait until :meth:`allow` grants an attempt, then
        return holding that grant (settle it with :meth:`record` or :meth:`release`).

        Cancellation: raises ``Cancelled`` without holding a grant.
        """
        await trio.lowlevel.checkpoint()  # cancel point before any grant is taken
        while not self.allow(trio.current_time()):
            await self._wait_for_change()

    async def _wait_for_change(self) -> None:
        """Sleep until the state may admit someone: the end of the cooldown while OPEN,
        else the next transition or freed probe slot."""
        if self._changed is None:
            self._changed = trio.Event()
        changed = self._changed
        deadline = self.reopen_at if self._state is BreakerState.OPEN else None
        with trio.move_on_at(math.inf if deadline is None else deadline):
            await changed.wait()
