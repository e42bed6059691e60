"""OTP-style restart policy for session actors, with exponential backoff.

Erlang/OTP's supervisor decides, per child, whether an exit is restarted:

* ``permanent`` — always restarted (even after a normal end);
* ``transient`` — restarted only after an abnormal end (status ``"failed"``);
* ``temporary`` — never restarted.

A session that the supervisor itself cancelled (status ``"cancelled"``: shutdown, run over)
is never restarted, whatever its type, as OTP does not restart a child it is terminating.

OTP bounds restarts by an *intensity* (at most ``max_restarts`` restarts within ``within_s``
seconds; one more and it gives up). Here the intensity is tracked per session in a
:class:`RestartHistory` (a fleet-wide history can be kept the same way). OTP restarts at
once; we add exponential :class:`Backoff` with jitter so a fleet does not hammer a failing
server in lock-step. The jitter draws from an injected, seeded ``random.Random`` so runs are
reproducible.

Everything is pure: times are passed in (seconds on the injected trio clock), nothing
sleeps. The caller loop is::

    decision = policy.decide(status, history, now)
    if isinstance(decision, Restart):
        history.record(now, decision.delay_s)
        await trio.sleep_until(now + decision.delay_s)   # then restart the session
    else:  # NoRestart (normal end) or GiveUp (intensity exceeded): report decision.reason
        ...
"""

from __future__ import annotations

import enum
import math
import numbers
import random
from collections import deque
from typing import Literal

import attrs

__all__ = [
    "Backoff",
    "Decision",
    "GiveUp",
    "JitterKind",
    "NoRestart",
    "Restart",
    "RestartHistory",
    "RestartIntensity",
    "RestartPolicy",
    "RestartType",
    "SessionStatus",
    "decide",
]

#: End status of a session, as in ``orchestrator.metrics.records.SessionResult.status``.
SessionStatus = Literal["completed", "failed", "cancelled"]
_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

JitterKind = Literal["none", "full", "equal", "decorrelated"]


class RestartType(enum.Enum):
    """When an ended session is restarted (OTP child restart types)."""

    PERMANENT = "permanent"
    """Always restart (unless the supervisor cancelled it)."""
    TRANSIENT = "transient"
    """Restart only after an abnormal end (status ``"failed"``)."""
    TEMPORARY = "temporary"
    """Never restart."""


def _nonneg(owner: str, name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"{owner}.{name} must be >= 0, got {value!r}")


@attrs.frozen
class RestartIntensity:
    """At most ``max_restarts`` restarts within any ``within_s`` seconds (OTP ``intensity`` /
    ``period``); the restart that would exceed it is refused. ``max_restarts=0`` means never
    restart."""

    max_restarts: int
    within_s: float

    def __attrs_post_init__(self) -> None:
        if isinstance(self.max_restarts, bool) or not isinstance(
            self.max_restarts, numbers.Integral
        ):
            raise ValueError(
                f"RestartIntensity.max_restarts must be an int, got {self.max_restarts!r}"
            )
        if self.max_restarts < 0:
            raise ValueError(
                f"RestartIntensity.max_restarts must be >= 0, got {self.max_restarts!r}"
            )
        _nonneg("RestartIntensity", "within_s", self.within_s)
        if self.within_s == 0:
            raise ValueError("RestartIntensity.within_s must be > 0")

    def allows(self, history: RestartHistory, now: float) -> bool:
        """True if one more restart at ``now`` stays within the intensity."""
        return history.count_within(now, self.within_s) < self.max_restarts


@attrs.define(eq=False)
class RestartHistory:
    """Restarts of one session (or of a fleet): their times and the last backoff delay.

    Memory is bounded by ``maxlen`` timestamps (pass at least the intensity's
    ``max_restarts``; the default 1024 covers any sane intensity).
    """

    maxlen: int = 1024
    _times: deque[float] = attrs.field(init=False)
    last_delay_s: float | None = attrs.field(default=None, init=False)
    total: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        if self.maxlen < 1:
            raise ValueError(f"RestartHistory.maxlen must be >= 1, got {self.maxlen!r}")
        self._times = deque(maxlen=self.maxlen)

    def record(self, now: float, delay_s: float) -> None:
        """Record a restart decided at ``now`` that waits ``delay_s`` first."""
        self._times.append(now)
        self.last_delay_s = delay_s
        self.total += 1

    def count_within(self, now: float, within_s: float) -> int:
        """Restarts recorded in the window ``(now - within_s, now]``."""
        start = now - within_s
        return sum(1 for t in self._times if start < t <= now)

    @property
    def times(self) -> tuple[float, ...]:
        """The recorded restart times (oldest first, at most ``maxlen``)."""
        return tuple(self._times)


@attrs.define(eq=False)
class Backoff:
    """Exponential backoff ``initial_s * multiplier ** attempt`` capped at ``max_s``, with jitter.

    Jitter kinds (AWS "Exponential Backoff And Jitter" terms), ``cap = min(max_s, initial_s *
    multiplier ** attempt)``:

    * ``"none"`` — exactly ``cap``;
    * ``"full"`` — uniform in ``[0, cap]``;
    * ``"equal"`` — uniform in ``[cap / 2, cap]``;
    * ``"decorrelated"`` — uniform in ``[initial_s, min(max_s, previous_s * multiplier)]``
      where ``previous_s`` is the previous delay (``initial_s`` for the first); ``attempt`` is
      not used. Always within ``[initial_s, max_s]``.

    ``rng`` is the injected source of randomness (seed it for reproducible runs); one draw per
    jittered :meth:`delay`. No I/O, no clock.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: JitterKind = "full"
    rng: random.Random = attrs.field(factory=lambda: random.Random(0))

    def __attrs_post_init__(self) -> None:
        _nonneg("Backoff", "initial_s", self.initial_s)
        _nonneg("Backoff", "max_s", self.max_s)
        _nonneg("Backoff", "multiplier", self.multiplier)
        if self.max_s < self.initial_s:
            raise ValueError(
                f"Backoff.max_s ({self.max_s!r}) must be >= initial_s ({self.initial_s!r})"
            )
        if self.multiplier < 1:
            raise ValueError(f"Backoff.multiplier must be >= 1, got {self.multiplier!r}")
        if self.jitter not in ("none", "full", "equal", "decorrelated"):
            raise ValueError(
                f"Backoff.jitter must be one of none/full/equal/decorrelated, got {self.jitter!r}"
            )

    def ceiling(self, attempt: int) -> float:
        """``min(max_s, initial_s * multiplier ** attempt)`` without float overflow."""
        if attempt < 0:
            raise ValueError(f"Backoff attempt must be >= 0, got {attempt!r}")
        if self.initial_s == 0 or self.multiplier == 1:
            return min(self.max_s, self.initial_s)
        # initial * m**attempt >= max  <=>  attempt >= log(max / initial) / log(m)
        if attempt >= math.log(self.max_s / self.initial_s) / math.log(self.multiplier):
            return self.max_s
        return min(self.max_s, self.initial_s * self.multiplier**attempt)

    def delay(self, attempt: int, previous_s: float | None = None) -> float:
        """Delay in seconds before restart number ``attempt`` (0 for the first restart).

        ``previous_s`` is only used by ``"decorrelated"`` jitter (the last delay returned).
        """
        cap = self.ceiling(attempt)
        match self.jitter:
            case "none":
                return cap
            case "full":
                return self.rng.uniform(0.0, cap)
            case "equal":
                return self.rng.uniform(cap / 2.0, cap)
            case _:  # decorrelated
                prev = self.initial_s if previous_s is None else previous_s
                hi = min(self.max_s, max(self.initial_s, prev * self.multiplier))
                return min(self.max_s, self.rng.uniform(self.initial_s, hi))


@attrs.frozen
class Restart:
    """Restart the session after ``delay_s`` seconds; ``attempt`` counts restarts within the
    intensity window before this one (0-based: the backoff exponent)."""

    delay_s: float
    attempt: int


@attrs.frozen
class NoRestart:
    """The session is done and is not restarted (not an error): normal end of a transient
    session, a temporary session, or a session the supervisor cancelled."""

    reason: str


@attrs.frozen
class GiveUp:
    """A restart was due but the restart intensity is exhausted: the session is abandoned."""

    reason: str


Decision = Restart | NoRestart | GiveUp


def decide(
    restart_type: RestartType | Literal["permanent", "transient", "temporary"],
    status: SessionStatus,
    history: RestartHistory,
    now: float,
    *,
    intensity: RestartIntensity,
    backoff: Backoff,
) -> Decision:
    """Decide what to do with a session that ended with ``status`` at ``now``.

    Does not modify ``history``: on :class:`Restart` the caller records it with
    ``history.record(now, decision.delay_s)``. The backoff exponent is the number of restarts
    in the intensity window, so backoff relaxes once a session has stayed up for
    ``within_s``. Raises ``ValueError`` for an unknown ``status``.
    """
    if status not in _STATUSES:
        raise ValueError(
            f"restart decision: unknown session status {status!r} "
            f"(expected one of {sorted(_STATUSES)})"
        )
    restart_type = RestartType(restart_type)
    if status == "cancelled":
        return NoRestart("cancelled by the supervisor")
    if restart_type is RestartType.TEMPORARY:
        return NoRestart(f"temporary session ended ({status})")
    if restart_type is RestartType.TRANSIENT and status == "completed":
        return NoRestart("transient session completed normally")
    if intensity.max_restarts > history.maxlen:
        raise ValueError(
            f"RestartHistory.maxlen ({history.maxlen}) is below "
            f"RestartIntensity.max_restarts ({intensity.max_restarts}): it cannot count them"
        )
    recent = history.count_within(now, intensity.within_s)
    if recent >= intensity.max_restarts:
        return GiveUp(
            f"restart intensity exceeded: {recent} restarts within {intensity.within_s:g} s "
            f"(max {intensity.max_restarts}); last end {status}"
        )
    previous = history.last_delay_s if recent else None  # decorrelated jitter restarts too
    return Restart(delay_s=backoff.delay(recent, previous), attempt=recent)


@attrs.define(eq=False)
class RestartPolicy:
    """A restart type with its intensity and backoff; :meth:`decide` is :func:`decide`."""

    restart_type: RestartType = RestartType.TRANSIENT
    intensity: RestartIntensity = attrs.field(factory=lambda: RestartIntensity(3, 60.0))
    backoff: Backoff = attrs.field(factory=Backoff)

    def decide(self, status: SessionStatus, history: RestartHistory, now: float) -> Decision:
        """See :func:`decide`."""
        return decide(
            self.restart_type,
            status,
            history,
            now,
            intensity=self.intensity,
            backoff=self.backoff,
        )
