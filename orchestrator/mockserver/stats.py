"""Server-wide counters (read them from ``MockServer.stats``)."""

from __future__ import annotations

from collections import Counter

import attrs


@attrs.define(eq=False)
class ServerStats:
    """Counters for one server instance; plain ints, updated by the connection actors.

    ``client_errors`` counts ``error`` events sent for bad client input by code;
    ``rejected`` counts refused handshakes by reason (``unauthorized``, ``not_found``,
    ``fault_429``, ...); ``faults`` counts injected faults by kind; ``closes`` counts
    server-initiated close codes; ``crashes`` counts connections that ended with an
    unexpected exception (logged, never propagated to other connections).
    """

    connections_accepted: int = 0
    connections_active: int = 0
    connections_closed: int = 0
    events_received: int = 0
    events_sent: int = 0
    bytes_sent: int = 0
    responses_started: int = 0
    responses_done: Counter[str] = attrs.field(factory=Counter)
    client_errors: Counter[str] = attrs.field(factory=Counter)
    rejected: Counter[str] = attrs.field(factory=Counter)
    faults: Counter[str] = attrs.field(factory=Counter)
    closes: Counter[int] = attrs.field(factory=Counter)
    crashes: int = 0
    pongs_received: int = 0

    def snapshot(self) -> dict[str, object]:
        """A JSON-friendly copy."""
        out: dict[str, object] = {}
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            out[field.name] = (
                {str(k): v for k, v in value.items()} if isinstance(value, Counter) else value
            )
        return out
