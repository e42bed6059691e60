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

from .errors import ClientError, invalid_type


def decode_frame(message: str | bytes) -> tuple[dict[str, Any] | None, ClientError | None]:
    """Parse one client frame: ``(event, None)``, or ``(None, the error to answer)``
    for a binary frame, bad JSON or JSON that is not an object."""
    if isinstance(message, bytes):
        return None, ClientError(
            "invalid_event",
            "Expected a text WebSocket message; binary frames are not supported.",
            None,
        )
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        return None, ClientError(
            "invalid_json",
            f"Invalid event: failed to parse JSON value. {exc.msg} at position {exc.pos}.",
            None,
        )
    if not isinstance(data, dict):
        err = invalid_type("event", "an object", data)
        err.param = None
        return None, err
    return data, None


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
