"""The one error the codec raises for bad wire data."""

from __future__ import annotations

import re

__all__ = ["ProtocolError", "excerpt_of"]

_EXCERPT_CHARS = 200
# Values that may carry credentials (ephemeral client secrets, MCP authorization headers)
# are masked before a payload excerpt is put into an exception message.
_SECRET_VALUE = re.compile(
    r'("(?:client_secret|authorization|api[-_]?key|value|token)"\s*:\s*)"[^"]*"',
    re.IGNORECASE,
)


def excerpt_of(data: str | bytes | object, limit: int = _EXCERPT_CHARS) -> str:
    """A short, secret-masked, single-line excerpt of a payload for error messages."""
    if isinstance(data, bytes | bytearray | memoryview):
        text = bytes(data[: limit * 4]).decode("utf-8", errors="replace")
    elif isinstance(data, str):
        text = data[: limit * 4]
    else:
        text = repr(data)[: limit * 4]
    text = _SECRET_VALUE.sub(r'\1"***"', text)
    text = text.replace("\n", "\\n")
    if len(text) > limit:
        text = text[:limit] + "..."
    return text


class ProtocolError(ValueError):
    """A frame could not be decoded (or an event cannot be encoded) as a Realtime event.

    Raised for invalid JSON, a JSON value that is not an object, a missing or non-string
    ``type``, a known event whose fields have the wrong types or are missing, and for
    encoding an event that does not exist in the requested dialect.

    Attributes:
        event_type: the ``type`` of the offending event, or None when it is unknown
            (e.g. invalid JSON).
        path: where in the payload the problem is, as a JSON path (``$.response.usage``);
            ``$`` for the whole frame.
        excerpt: a truncated copy of the payload (at most ~200 characters) with
            credential-like values masked.
        reason: what was wrong.
    """

    def __init__(self, reason: str, *, event_type: str | None, path: str, excerpt: str) -> None:
        self.reason = reason
        self.event_type = event_type
        self.path = path
        self.excerpt = excerpt
        super().__init__(f"{reason} (event type {event_type!r}, at {path}); payload: {excerpt}")

    def __reduce__(self) -> tuple[object, ...]:  # keep picklable across threads/processes
        return (_rebuild, (self.reason, self.event_type, self.path, self.excerpt))


def _rebuild(reason: str, event_type: str | None, path: str, excerpt: str) -> ProtocolError:
    return ProtocolError(reason, event_type=event_type, path=path, excerpt=excerpt)
