"""Typed transport failures and the pure rules that say whether a retry can help.

Every way a websocket ends or fails to start becomes one :class:`TransportError` with a
``recoverable`` flag: ``True`` means "a new connection may well succeed" (the session's
reconnect policy may retry), ``False`` means retrying the same target is pointless
(bad key, bad model, a normal end, a message we cannot accept).

- :class:`TransportClosed` — an open websocket ended (close code + reason);
- :class:`HandshakeRejected` — the HTTP upgrade was answered with a non-101 status;
- :class:`ConnectFailed` — no websocket at all: DNS, refused, reset, TLS, or the peer
  hung up before answering the upgrade.

Texts that came from the peer (close reasons, bodies) must be redacted by the caller
before they reach these constructors (see :func:`orchestrator.transport.secret.redact`).
"""

from __future__ import annotations

from typing import Final, Literal

# Close codes (RFC 6455 section 7.4.1 and IANA registry; 3000/4000 as the Realtime API uses
# them, see PROTOCOL_NOTES.md section 1).
NORMAL: Final = 1000
GOING_AWAY: Final = 1001  # Realtime: session expired ("maximum duration of 60 minutes")
PROTOCOL_ERROR: Final = 1002
UNSUPPORTED_DATA: Final = 1003
NO_STATUS: Final = 1005
ABNORMAL: Final = 1006  # no close frame: TCP reset / EOF
INVALID_PAYLOAD: Final = 1007
POLICY_VIOLATION: Final = 1008
MESSAGE_TOO_BIG: Final = 1009
INTERNAL_ERROR: Final = 1011
SERVICE_RESTART: Final = 1012
TRY_AGAIN_LATER: Final = 1013
BAD_GATEWAY: Final = 1014
TLS_HANDSHAKE: Final = 1015
REALTIME_AUTH: Final = 3000  # reason "invalid_request_error.invalid_api_key"
REALTIME_REQUEST: Final = 4000  # reason e.g. "invalid_request_error.beta_api_shape_disabled"

_RECOVERABLE_CLOSE: Final = frozenset(
    {GOING_AWAY, NO_STATUS, ABNORMAL, INTERNAL_ERROR, SERVICE_RESTART, TRY_AGAIN_LATER, BAD_GATEWAY}
)


def close_recoverable(code: int) -> bool:
    """Whether reconnecting after close ``code`` can help.

    Recoverable: 1001 (session expiry / going away), 1005 (no status), 1006 (abnormal,
    connection reset), 1011, 1012, 1013, 1014 (server-side trouble). Everything else is
    not: 1000 is a normal end; 1002/1003/1007/1008/1009/1015 mean we sent or received
    something unacceptable; 3000 (auth) and 4000 (model / dialect shape) need a config
    change; unknown codes are not retried blindly.
    """
    return code in _RECOVERABLE_CLOSE


def status_recoverable(status_code: int) -> bool:
    """Whether retrying after an HTTP handshake rejection can help: 408, 429 and 5xx."""
    return status_code in (408, 429) or 500 <= status_code <= 599


class TransportError(Exception):
    """Base of all transport failures. ``recoverable``: may a new connection succeed?"""

    recoverable: bool

    def __init__(self, message: str, *, recoverable: bool) -> None:
        super().__init__(message)
        self.recoverable = recoverable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, recoverable={self.recoverable})"


class TransportClosed(TransportError):
    """The websocket is closed: by the peer, by us, or by the network (code 1006).

    ``code`` is the close code received (or 1006 when the connection dropped without a
    close frame, 1000 when we closed it ourselves), ``reason`` the redacted close reason.
    """

    code: int
    reason: str

    def __init__(self, code: int, reason: str = "", *, recoverable: bool | None = None) -> None:
        self.code = code
        self.reason = reason
        rec = close_recoverable(code) if recoverable is None else recoverable
        text = f"websocket closed with code {code}"
        if reason:
            text += f": {reason}"
        super().__init__(text, recoverable=rec)

    def __repr__(self) -> str:
        return (
            f"TransportClosed(code={self.code}, reason={self.reason!r}, "
            f"recoverable={self.recoverable})"
        )


class HandshakeRejected(TransportError):
    """The server answered the websocket upgrade with HTTP ``status_code`` (not 101).

    ``body_excerpt`` is the first bytes of the response body, decoded and redacted;
    ``headers`` the response headers (names lower case); ``retry_after`` the parsed
    ``Retry-After`` seconds when the server sent one. 401/403/404 are not recoverable;
    408/429/5xx are.
    """

    status_code: int
    body_excerpt: str
    headers: tuple[tuple[str, str], ...]
    retry_after: float | None

    def __init__(
        self,
        status_code: int,
        body_excerpt: str = "",
        *,
        headers: tuple[tuple[str, str], ...] = (),
        url: str = "",
    ) -> None:
        self.status_code = status_code
        self.body_excerpt = body_excerpt
        self.headers = headers
        self.retry_after = _retry_after(headers)
        text = f"websocket handshake rejected with HTTP {status_code}"
        if url:
            text += f" by {url}"
        if body_excerpt:
            text += f": {body_excerpt}"
        super().__init__(text, recoverable=status_recoverable(status_code))

    def __repr__(self) -> str:
        return (
            f"HandshakeRejected(status_code={self.status_code}, "
            f"body_excerpt={self.body_excerpt!r}, recoverable={self.recoverable})"
        )


#: Where a :class:`ConnectFailed` happened: ``"tcp"`` (DNS, refused, unreachable),
#: ``"tls"`` (the TLS handshake), ``"upgrade"`` (the HTTP upgrade was sent or tried).
ConnectStage = Literal["tcp", "tls", "upgrade"]


class ConnectFailed(TransportError):
    """No websocket was established: DNS failure, refused, reset, TLS failure, or EOF
    before the server answered the upgrade. Recoverable unless it was a TLS certificate
    verification failure (a configuration problem).

    ``stage``: where it failed (:data:`ConnectStage`); ``None`` when not known (raised by
    something other than :mod:`orchestrator.transport.connection`). A ``"tcp"`` or
    ``"tls"`` failure never reached the websocket handshake."""

    stage: ConnectStage | None

    def __init__(
        self, message: str, *, recoverable: bool, stage: ConnectStage | None = None
    ) -> None:
        super().__init__(message, recoverable=recoverable)
        self.stage = stage

    @property
    def before_handshake(self) -> bool:
        """Whether the connection failed before the HTTP upgrade could be tried (TCP or
        TLS)."""
        return self.stage in ("tcp", "tls")


def _retry_after(headers: tuple[tuple[str, str], ...]) -> float | None:
    for name, value in headers:
        if name == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None  # HTTP-date form: not worth a date parser here
            return seconds if seconds >= 0 else None
    return None
