"""The server's rate limits: one token bucket per limit, shared by every connection.

Each limit (``tokens`` per minute, ``requests`` per minute) is a bucket that refills
continuously at ``limit / 60`` per second up to ``limit``. A response start takes one
request; a finished response takes its ``usage.total_tokens`` (a bucket may go into
debt, as the real service lets a response that has started finish). A response that
starts while a bucket is empty is refused with the real ``rate_limit_exceeded``
failure (``response.done`` with ``status: "failed"``, see PROTOCOL_NOTES "Rate limits
and quota").

``rate_limits.updated`` reports, per limit, ``limit``, ``remaining`` (never below 0) and
``reset_seconds`` (how long until the bucket is full again). The GA dialect carries only
the ``tokens`` entry, the beta dialect ``requests`` then ``tokens`` (PROTOCOL_NOTES §3).
"""

from __future__ import annotations

from typing import Any

import attrs

from .defaults import RATE_LIMIT_REQUESTS, RATE_LIMIT_TOKENS

__all__ = ["Bucket", "RateLimiter"]


@attrs.define
class Bucket:
    """A bucket of ``limit`` per minute; ``level`` as of ``at`` (trio time)."""

    name: str
    limit: int
    level: float = attrs.field(init=False)
    at: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"rate limit {self.name} must be at least 1, got {self.limit}")
        self.level = float(self.limit)

    def refill(self, now: float) -> float:
        """The level at ``now`` (and remember it)."""
        if self.at is not None and now > self.at:
            self.level = min(float(self.limit), self.level + (now - self.at) * self.limit / 60.0)
        self.at = now if self.at is None else max(self.at, now)
        return self.level

    def take(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level -= amount

    def reset_seconds(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.limit - self.refill(now)) * 60.0 / self.limit)

    def retry_after(self, now: float) -> float:
        """Seconds until the bucket holds anything again (0 when it does)."""
        return max(0.0, -self.refill(now) * 60.0 / self.limit) + 60.0 / self.limit

    def entry(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "limit": self.limit,
            "remaining": max(0, int(self.refill(now))),
            "reset_seconds": round(self.reset_seconds(now), 3),
        }


@attrs.define
class RateLimiter:
    """The buckets of one server (``tokens_per_min`` / ``requests_per_min``)."""

    tokens_per_min: int = RATE_LIMIT_TOKENS
    requests_per_min: int = RATE_LIMIT_REQUESTS
    tokens: Bucket = attrs.field(init=False)
    requests: Bucket = attrs.field(init=False)
    refused: int = 0

    def __attrs_post_init__(self) -> None:
        self.tokens = Bucket("tokens", self.tokens_per_min)
        self.requests = Bucket("requests", self.requests_per_min)

    def admit(self, model: str, now: float) -> dict[str, Any] | None:
        """Take one request for a response starting at ``now``; or, when a bucket is
        empty, the ``rate_limit_exceeded`` error (``{type, code, message}``) refusing it."""
        for bucket, unit in ((self.tokens, "TPM"), (self.requests, "RPM")):
            level = bucket.refill(now)
            if level < 1.0:
                self.refused += 1
                used = bucket.limit - int(level)
                wait = bucket.retry_after(now)
                return {
                    "type": bucket.name,
                    "code": "rate_limit_exceeded",
                    "message": (
                        f"Rate limit reached for {model} in organization org-mock on "
                        f"{bucket.name} per min ({unit}): Limit {bucket.limit}, Used {used}, "
                        f"Requested 1. Please try again in {wait:.3f}s. Visit "
                        "https://platform.openai.com/account/rate-limits to learn more."
                    ),
                }
        self.requests.take(1.0, now)
        return None

    def charge(self, total_tokens: int, now: float) -> None:
        """A response finished at ``now`` having used ``total_tokens``."""
        self.tokens.take(float(total_tokens), now)

    def entries(self, now: float, *, beta: bool) -> list[dict[str, Any]]:
        """The ``rate_limits`` list of a ``rate_limits.updated`` event."""
        tokens = self.tokens.entry(now)
        return [self.requests.entry(now), tokens] if beta else [tokens]
