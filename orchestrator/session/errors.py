"""Exceptions raised by the session driver API."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConnectTimeout",
    "LinkLost",
    "MaxDurationExceeded",
    "RequestRejected",
    "SessionEnded",
    "SessionError",
    "SessionFailure",
    "SessionReadyTimeout",
]


class SessionError(Exception):
    """Base of the session layer's errors."""


class SessionEnded(SessionError):
    """The session is over (closed, failed or cancelled); ``result`` says how.

    Raised by driver calls in progress when the session ends, and by later calls.
    ``open_session`` suppresses it for its own session when its block exits.
    """

    def __init__(self, result: Any, session: Any = None) -> None:
        self.result = result
        self.session = session
        status = getattr(result, "status", "ended")
        reason = getattr(result, "reason", None)
        super().__init__(f"session {status}" + (f": {reason}" if reason else ""))


class RequestRejected(SessionError):
    """The server answered a driver request with an ``error`` event."""

    def __init__(self, event_type: str, code: str | None, message: str | None) -> None:
        self.event_type = event_type
        self.code = code
        self.message = message
        super().__init__(f"{event_type} rejected by the server: {code}: {message}")


class LinkLost(SessionError):
    """The connection dropped while a driver request waited for its answer. The session
    may reconnect; the request is not retried."""


class SessionFailure(SessionError):
    """Why a session failed (the ``reason`` of its result): auth, quota, too many
    protocol errors, a rejected configuration, reconnects exhausted."""


class MaxDurationExceeded(SessionFailure):
    """The session ran past ``SessionSpec.max_duration``."""


class ConnectTimeout(SessionFailure):
    """The server did not complete the connection (TCP, TLS, websocket upgrade) within
    ``SessionSpec.connect_timeout``. Retried like a dropped connection."""


class SessionReadyTimeout(SessionFailure):
    """The connection opened but the session was not ready (``session.created`` /
    ``session.updated`` for the config) within ``SessionSpec.ready_timeout``. Retried
    like a dropped connection."""
