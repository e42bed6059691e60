"""Reconnect policy (pure): which closes are final, how long to back off.

Exponential backoff with jitter on the injected (trio) clock: attempt ``n`` (0-based)
waits ``min(max_delay, initial_delay * multiplier**n)`` scaled by a uniform factor in
``[1 - jitter, 1 + jitter]``; after ``max_attempts`` failed attempts the session fails.
Authentication, quota and protocol-shape failures are final and never retried
(PROTOCOL_NOTES §1: close 3000 for auth, 4000 for model/shape problems).
"""

from __future__ import annotations

import random

import attrs

__all__ = [
    "FATAL_ERROR_CODES",
    "FINAL_CLOSE_CODES",
    "ReconnectPolicy",
    "RolloverRequested",
    "is_fatal_code",
]

#: Server error codes after which retrying cannot help.
FATAL_ERROR_CODES: frozenset[str] = frozenset(
    {
        "invalid_api_key",
        "insufficient_quota",
        "invalid_model",
        "missing_model",
        "beta_api_shape_disabled",
        "model_not_found",
    }
)

#: WebSocket close codes the service uses for auth (3000) and shape (4000) failures.
FINAL_CLOSE_CODES: frozenset[int] = frozenset({3000, 4000, 1008})


class RolloverRequested(Exception):
    """Internal marker: the link was closed on purpose (connection age or expiry) to
    continue on a fresh connection; not a failure."""


def is_fatal_code(code: str | None) -> bool:
    """True for a server error code that ends the session (auth, quota, model)."""
    return code in FATAL_ERROR_CODES


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """Bounded exponential backoff with jitter. ``max_attempts=0`` disables reconnects.

    ``max_attempts`` counts consecutive failed connections; the count starts again after
    a connection that completed at least one response (a link that accepts and then
    drops at once keeps counting, so a flapping server cannot loop forever)."""

    max_attempts: int = 3
    initial_delay: float = 0.25
    multiplier: float = 2.0
    max_delay: float = 5.0
    jitter: float = 0.2

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 0:
            raise ValueError(f"ReconnectPolicy.max_attempts must be >= 0, got {self.max_attempts}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"ReconnectPolicy.jitter must be in [0, 1], got {self.jitter}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("ReconnectPolicy delays must be >= 0")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (0-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier**attempt)
        if self.jitter:
            base *= 1.0 + self.jitter * (2.0 * rng.random() - 1.0)
        return max(0.0, base)
