"""The start gate of ``run --respect-rate-limits``: hold new session starts while the
server says its rate limits are low.

Sessions tell the gate (a :class:`~orchestrator.session.spec.RateLimitObserver`) of
every ``rate_limits.updated`` and every ``rate_limit_exceeded`` refusal. The rule:

- For each limit of the latest update (``tokens``, ``requests``), the remaining amount
  is estimated forward in time. The limits are per minute, so a bucket refills at
  ``limit / 60`` per second; its deficit at the update is the larger of ``limit -
  remaining`` and ``reset_seconds * limit / 60`` (a bucket in debt reports
  ``remaining: 0`` and a reset beyond a minute). So ``remaining(t) = min(limit, limit -
  deficit + (t - t_update) * limit / 60)``, less the tokens of the turns that finished
  since the update (a session that ends at ``response.done`` may never read the update
  that follows it).
- Sessions already running will spend more: each is reserved the mean tokens of a
  finished turn (``turn_done``) and one request. A start is held while some limit's
  estimate, less the reservations of the running sessions, is under ``low_fraction`` of
  its limit (default 0.2); it is looked at again when the estimate would reach it, or
  when a session reports a new state.
- A ``rate_limit_exceeded`` refusal holds starts for the "Please try again in Xs" of its
  message (1 s when it names none).

A held start is not a late or dropped start: it starts when the gate opens. The counts
(``held_starts``, ``held_s_total``) go to the summary. Sessions already running are not
stopped; only new starts (and restarts) wait.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs
import trio

__all__ = ["DEFAULT_LOW_FRACTION", "RateGate"]

#: Hold starts while a limit's estimated remaining amount is under this share of it.
DEFAULT_LOW_FRACTION = 0.2
_TRY_AGAIN = re.compile(r"try again in ([0-9.]+)(ms|s)\b")


@attrs.define(eq=False)
class RateGate:
    """See the module docstring; ``low_fraction`` in (0, 1]."""

    low_fraction: float = DEFAULT_LOW_FRACTION
    #: per limit name: (limit, remaining, reset_seconds, trio time of the update)
    limits: dict[str, tuple[float, float, float, float]] = attrs.field(factory=dict)
    refused_until: float = float("-inf")
    held_starts: int = 0
    held_s_total: float = 0.0
    refusals: int = 0
    turns: int = 0
    turn_tokens: int = 0
    #: tokens of the turns finished since the last ``tokens`` update
    spent_since: float = 0.0
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        if not 0.0 < self.low_fraction <= 1.0:
            raise ValueError(f"low_fraction must be in (0, 1], got {self.low_fraction}")

    # -- RateLimitObserver ------------------------------------------------------------
    def update(self, limits: Any, t: float) -> None:
        for entry in limits:
            name = getattr(entry, "name", None)
            limit = getattr(entry, "limit", None)
            remaining = getattr(entry, "remaining", None)
            if not name or not limit or remaining is None:
                continue
            reset = float(getattr(entry, "reset_seconds", None) or 0.0)
            old = self.limits.get(name)
            if old is None or t >= old[3]:
                self.limits[name] = (float(limit), float(remaining), reset, t)
                if name == "tokens":
                    self.spent_since = 0.0
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def turn_done(self, tokens: int) -> None:
        """A turn finished having used ``tokens`` (its ``response.done`` usage)."""
        if tokens > 0:
            self.turns += 1
            self.turn_tokens += tokens
            self.spent_since += tokens

    def refused(self, message: str, t: float) -> None:
        self.refusals += 1
        match = _TRY_AGAIN.search(message)
        wait = 1.0
        if match is not None:
            wait = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
        self.refused_until = max(self.refused_until, t + wait)
        self._wake()

    # -- the rule ---------------------------------------------------------------------
    def open_at(self, now: float, running: int = 0) -> float:
        """When starts may go on (``<= now``: now), ``running`` sessions being in flight."""
        until = self.refused_until
        per_turn = self.turn_tokens / self.turns if self.turns else 0.0
        for name, (limit, remaining, reset, at) in self.limits.items():
            need = self.low_fraction * limit + running * (per_turn if name == "tokens" else 1.0)
            rate = limit / 60.0
            level = limit - max(limit - remaining, reset * rate)
            if name == "tokens":
                level -= self.spent_since
            if level >= need:
                continue
            until = max(until, at + (min(need, limit) - level) / rate)
        return until

    async def wait_open(self, running: Callable[[], int] = lambda: 0) -> bool:
        """Wait until starts may go on (``running``: how many sessions are in flight);
        True when this start was held."""
        start = trio.current_time()
        held = False
        while (until := self.open_at(trio.current_time(), running())) > trio.current_time():
            held = True
            with trio.move_on_at(until):
                await self._changed.wait()
        if held:
            self.held_starts += 1
            self.held_s_total += trio.current_time() - start
        return held

    def figures(self) -> dict[str, Any]:
        """``held_starts``, ``held_s_total``, ``rate_limit_refusals`` (the summary's)."""
        return {
            "held_starts": self.held_starts,
            "held_s_total": round(self.held_s_total, 3),
            "rate_limit_refusals": self.refusals,
        }
