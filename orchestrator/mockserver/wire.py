"""Dialect rendering and encoding of server events.

The server builds every event as a GA-shaped ``dict`` (cheap, exact, and able to
carry the explicit ``null`` fields the real service sends). :func:`render` turns it
into the wire form of a dialect: GA is passed through; beta goes through the protocol
layer's :func:`orchestrator.protocol.beta.event_to_beta` (renamed and dropped event
types, the flat session object, beta items / responses), with the beta-only settings
the server keeps under private ``_`` keys filled in.
"""

from __future__ import annotations

from typing import Any

import orjson

from orchestrator.protocol import Dialect
from orchestrator.protocol.beta import event_to_beta


def encode(event: dict[str, Any]) -> str:
    """Serialize a rendered event to the JSON text of one frame."""
    return orjson.dumps(event).decode()


def render(event: dict[str, Any], dialect: Dialect) -> dict[str, Any] | None:
    """The wire form of a GA-shaped ``event`` in ``dialect``; ``None`` if it has none.

    GA events are returned as they are, less the private keys of a session / response.
    Beta rendering copies what it changes and never mutates nested objects of ``event``
    (items are shared with the conversation state).
    """
    public = event
    for key in ("session", "response"):
        if key in event:
            public = {**public, key: _public(event[key])}
    if dialect is Dialect.GA:
        return public
    out = event_to_beta(public)
    if out is None:
        return None
    if "session" in out:
        beta = event["session"].get("_beta", {})
        out["session"]["client_secret"] = beta.get("client_secret")
        out["session"]["temperature"] = beta.get("temperature", 0.8)
    if "response" in out:
        out["response"]["temperature"] = event["response"].get("_temperature", 0.8)
    return out


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without the server's private (``_``-prefixed) keys."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}
