"""transport layer: one realtime websocket (trio-websocket).

URL/headers/auth per endpoint kind (:mod:`.target`), secrets that never print
(:mod:`.secret`), text-frame send/receive with typed close reasons (:mod:`.connection`,
:mod:`.errors`), one shared TLS context per process (:func:`default_ssl_context`, built off
the loop by :func:`prepare_ssl_context`). No event semantics here: messages are ``str``.
"""

from orchestrator.transport.connection import (
    CLOSE_GRACE,
    MAX_MESSAGE_SIZE,
    MESSAGE_QUEUE_SIZE,
    RECEIVE_BUFFER_SIZE,
    Connection,
    connect_stream,
    default_ssl_context,
    open_connection,
    prepare_ssl_context,
)
from orchestrator.transport.errors import (
    ConnectFailed,
    HandshakeRejected,
    TransportClosed,
    TransportError,
    close_recoverable,
    status_recoverable,
)
from orchestrator.transport.secret import RedactingFilter, Secret, redact
from orchestrator.transport.target import (
    API_KEY_ENV,
    DEFAULT_MAX_MESSAGE_SIZE,
    OPENAI_BASE_URL,
    Auth,
    Provider,
    Target,
    azure_legacy_url,
    azure_url,
    build_target,
    realtime_url,
)

__all__ = [
    "API_KEY_ENV",
    "CLOSE_GRACE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_MESSAGE_SIZE",
    "MESSAGE_QUEUE_SIZE",
    "OPENAI_BASE_URL",
    "RECEIVE_BUFFER_SIZE",
    "Auth",
    "ConnectFailed",
    "Connection",
    "HandshakeRejected",
    "Provider",
    "RedactingFilter",
    "Secret",
    "Target",
    "TransportClosed",
    "TransportError",
    "azure_legacy_url",
    "azure_url",
    "build_target",
    "close_recoverable",
    "connect_stream",
    "default_ssl_context",
    "prepare_ssl_context",
    "open_connection",
    "realtime_url",
    "redact",
    "status_recoverable",
]
