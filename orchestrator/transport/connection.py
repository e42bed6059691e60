"""One realtime websocket: :func:`open_connection`, :func:`connect_stream`, :class:`Connection`.

Built on trio-websocket's ``wrap_client_stream`` with a nursery this module owns, so the
same code path serves real sockets (:func:`open_connection`: TCP, then TLS with
certificate verification for ``wss``) and any trio stream (:func:`connect_stream`, e.g.
``trio.testing.memory_stream_pair()`` on the fake clock).

Tuning (trio-websocket defaults in brackets):

- ``max_message_size`` per :class:`Target`, default :data:`MAX_MESSAGE_SIZE` = 4 MiB
  [1 MiB]: the largest message the client accepts from the server (audio deltas are
  ~6 KB, the largest items a few hundred KB; it bounds the memory one connection can be
  made to buffer). A bigger message closes the socket with 1009 and
  :meth:`Connection.receive` raises a :class:`TransportClosed` that says so and names
  the limit. What we send is not limited here (an append may carry up to 15 MiB).
- ``receive_buffer_size`` 64 KiB [4 KiB]: one ``receive_some`` per audio delta instead of
  sixteen; measured on loopback with 64 KB text messages: 85 µs vs 325 µs CPU per message
  (client and trio-websocket server in one process).
- ``message_queue_size`` 8 [1]: the reader keeps answering pings while the session's
  receiver handles a burst of deltas; still bounded.

TLS: one :func:`default_ssl_context` per process, built on first use in a worker thread
(loading the CA store costs ~15 ms of CPU, which would block the event loop for every
``wss`` connection and reconnect); a supervisor calls it once before a run starts.

Failure mapping (see :mod:`orchestrator.transport.errors`): close frames and drops become
:class:`TransportClosed`; a non-101 HTTP answer to the upgrade :class:`HandshakeRejected`;
DNS, refused, TLS, EOF before the upgrade was answered, or an answer that is not HTTP at
all (another protocol on that port) :class:`ConnectFailed`, whose ``stage`` says whether
the websocket handshake was tried (``"upgrade"``) or TCP/TLS failed first. A refused or
unreachable connect names the OS error (``Connection refused (errno 111)``); a ``wss://``
URL answered by a plain server adds the hint ``(is it a plain ws:// server?)``.

trio-websocket's reader ends silently (leaving ``wrap_client_stream`` waiting forever) when
the stream breaks before the upgrade is answered, and fails with an unrelated h11 error
("can't handle event type Response when role=CLIENT") when the answer is not HTTP.
:class:`_HandshakeGuard` sits between it and the real stream until the ``101`` arrives,
turns such an early end into an exception in the reader task, so the nursery reports it
instead of hanging, and refuses an answer that does not begin with an HTTP status line
as soon as its first bytes show it (an SSH banner, a server that never closes).

Client events go out as TEXT frames: :meth:`Connection.send` takes ``str`` only.
``orjson.dumps`` returns ``bytes``, which trio-websocket would send as a binary frame, and
the real service rejects binary frames.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import h11
import trio
import trio_websocket
import wsproto.utilities

from orchestrator.protocol.dialect import Dialect
from orchestrator.transport.errors import (
    ABNORMAL,
    MESSAGE_TOO_BIG,
    ConnectFailed,
    HandshakeRejected,
    TransportClosed,
)
from orchestrator.transport.secret import install_log_filter, redact, registered
from orchestrator.transport.target import DEFAULT_MAX_MESSAGE_SIZE, Target

#: The default of :attr:`Target.max_message_size`: the largest server message accepted.
MAX_MESSAGE_SIZE: Final = DEFAULT_MAX_MESSAGE_SIZE
RECEIVE_BUFFER_SIZE: Final = 64 * 2**10
MESSAGE_QUEUE_SIZE: Final = 8
#: How long :meth:`Connection.aclose` waits for the peer to answer our close frame.
CLOSE_GRACE: Final = 2.0
#: Characters of a rejection body kept in :class:`HandshakeRejected`.
BODY_EXCERPT_CHARS: Final = 500
_HEAD_LIMIT: Final = 64 * 2**10
#: Characters of a non-HTTP answer quoted in :class:`ConnectFailed`.
_NOT_HTTP_EXCERPT: Final = 40
# An HTTP/1.x status line as h11 accepts it (the reason phrase may be missing).
_STATUS_LINE: Final = re.compile(rb"HTTP/[0-9]\.[0-9] ([0-9]{3})(?:[ \t][^\r\n]*)?")

logger: Final = logging.getLogger(__name__)
install_log_filter("trio-websocket", __name__)


class _EarlyEnd(Exception):
    """The stream ended or broke before the server answered the upgrade with 101."""

    def __init__(self, message: str, status: int | None, head: bytes) -> None:
        super().__init__(message)
        self.status = status
        self.head = head


class _NotHttp(Exception):
    """The server's answer to the upgrade does not begin with an HTTP status line."""

    def __init__(self, head: bytes) -> None:
        super().__init__("the server's answer to the websocket upgrade was not valid HTTP")
        self.head = head


class _HandshakeGuard(trio.abc.Stream):
    """Pass-through stream that raises :class:`_EarlyEnd` if the stream ends or breaks
    before a ``101`` response head was received, and :class:`_NotHttp` as soon as the
    bytes received cannot be an HTTP response (see module docstring)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.upgraded = False
        self._head = b""
        self._status: int | None = None
        self._status_line = b""

    @property
    def answered(self) -> bool:
        """Whether the server sent anything before the upgrade completed."""
        return bool(self._head or self._status_line) or self.upgraded

    @property
    def status(self) -> int | None:
        """The status code of the server's answer, once its status line arrived."""
        return self._status

    @property
    def status_line(self) -> bytes:
        """The first line the server sent (up to :data:`_HEAD_LIMIT` bytes)."""
        if self._status_line:
            return self._status_line
        return self._head.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.upgraded:
            await self.inner.send_all(data)
            return
        try:
            await self.inner.send_all(data)
        except trio.BrokenResourceError as exc:
            raise _EarlyEnd(
                f"connection broke while sending the upgrade: {exc}", None, b""
            ) from exc

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.upgraded:
            return await self.inner.receive_some(max_bytes)
        try:
            data = await self.inner.receive_some(max_bytes)
        except trio.BrokenResourceError as exc:
            raise _EarlyEnd(
                f"connection broke before the upgrade completed: {exc}", self._status, self._head
            ) from exc
        if not data:
            raise _EarlyEnd(
                "server closed the connection before completing the upgrade",
                self._status,
                self._head,
            )
        if len(self._head) < _HEAD_LIMIT:
            self._head += bytes(data[: _HEAD_LIMIT - len(self._head)])
        if self._status is None:
            self._check_status_line()
        if self._status == 101 and b"\r\n\r\n" in self._head:
            self.upgraded = True
            self._head = b""
        return data

    def _check_status_line(self) -> None:
        """Parse the status line once it is complete; raise :class:`_NotHttp` as soon as
        the bytes so far cannot begin one (h11 skips leading blank lines, so do we)."""
        head = self._head.lstrip(b"\r\n")
        if not head:
            return
        if not b"HTTP/".startswith(head[:5]):
            raise _NotHttp(self.status_line)
        if b"\n" in head or len(self._head) >= _HEAD_LIMIT:
            match = _STATUS_LINE.fullmatch(self.status_line)
            if match is None:
                raise _NotHttp(self.status_line)
            self._status = int(match[1])
            self._status_line = match[0]

    async def aclose(self) -> None:
        await self.inner.aclose()


def _endpoint(stream: trio.abc.Stream, *, local: bool) -> str:
    """``host:port`` of an IP socket's end (``[v6]:port``), ``unix:PATH`` of a Unix socket
    (``unix:`` when unnamed, as a ``socketpair``), ``?`` when the OS cannot say, else the
    stream's type name."""
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        try:
            addr = stream.socket.getsockname() if local else stream.socket.getpeername()
        except OSError:
            return "?"
        if not isinstance(addr, tuple):  # AF_UNIX: a path (str or bytes), empty if unnamed
            return "unix:" + (addr.decode(errors="replace") if isinstance(addr, bytes) else addr)
        host, port = str(addr[0]), addr[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return type(stream).__name__


def _decode_headers(
    raw: tuple[tuple[bytes, bytes], ...] | list[tuple[bytes, bytes]],
) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw)


def _size_text(n: int) -> str:
    """``4194304`` -> ``"4 MiB"``; sizes that are not whole MiB / KiB in bytes."""
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def _closed_from(reason: trio_websocket.CloseReason | None, target: Target) -> TransportClosed:
    """A close reason as :class:`TransportClosed` (1006 when there was no close frame).

    When trio-websocket closed the connection itself because a message from the server
    went over ``target.max_message_size``, the reason says so and names the limit. That
    case is told apart from a server's own 1009 (which means *our* message was too big
    for the server) by trio-websocket's exact reason text with our exact limit in it.
    """
    if reason is None:
        return TransportClosed(ABNORMAL, "")
    limit = target.max_message_size
    if reason.code == MESSAGE_TOO_BIG and reason.reason == (
        f"Exceeded maximum message size: {limit} bytes"
    ):
        return TransportClosed(
            MESSAGE_TOO_BIG,
            f"message too big (limit {_size_text(limit)}): the server sent a message "
            "larger than Target.max_message_size",
        )
    return TransportClosed(reason.code, redact(reason.reason or "", target.api_key))


class Connection:
    """An open realtime websocket. Created by :func:`open_connection` or
    :func:`connect_stream`; closed when their context exits.

    Attributes: ``target``; ``local`` / ``remote`` (``"host:port"`` for IP sockets,
    ``"unix:PATH"`` for Unix sockets, the stream type name otherwise);
    ``response_headers`` (the 101 response's headers, names lower case, e.g.
    ``x-request-id``); ``binary_frames_ignored`` (binary frames received and dropped: the
    protocol is text-only; the first is logged as a WARNING, later ones at DEBUG only).

    One task may call :meth:`send` while another calls :meth:`receive`.
    """

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        target: Target,
        *,
        local: str,
        remote: str,
    ) -> None:
        self._ws = ws
        self._stream = stream
        self.target = target
        self.local = local
        self.remote = remote
        self.response_headers: tuple[tuple[str, str], ...] = _decode_headers(ws.handshake_headers)
        self.binary_frames_ignored = 0
        self._aborted = False

    def __repr__(self) -> str:
        state = "open" if self.closed is None else f"closed {self.closed.code}"
        return f"<Connection {self.target.safe_url} {self.local}->{self.remote} {state}>"

    @property
    def dialect(self) -> Dialect:
        """The target's protocol dialect."""
        return self.target.dialect

    @property
    def closed(self) -> TransportClosed | None:
        """Why the websocket is closed or closing, or ``None`` while it is open."""
        reason = self._ws.closed
        if reason is None and not self._aborted:
            return None
        return self._closed_error(reason)

    def _closed_error(self, reason: trio_websocket.CloseReason | None) -> TransportClosed:
        if self._aborted:
            return TransportClosed(ABNORMAL, "send was cancelled mid-frame; connection aborted")
        return _closed_from(reason, self.target)

    async def send(self, text: str) -> None:
        """Send ``text`` as one TEXT frame.

        Raises ``TypeError`` for anything but ``str`` (``orjson.dumps`` output must be
        decoded first: a bytes payload would become a binary frame, which the service
        rejects) and :class:`TransportClosed` if the websocket is closed.

        Either returns once the whole frame was handed to the network, or raises
        ``Cancelled``; a cancelled send may have written part of the frame, so the
        connection is then aborted (socket closed, no close handshake) and later calls
        raise ``TransportClosed(1006)``.
        """
        if not isinstance(text, str):
            raise TypeError(
                f"Connection.send takes str (one JSON text frame), got {type(text).__name__}; "
                "decode orjson.dumps(...) output with .decode()"
            )
        if self._aborted:
            raise self._closed_error(None)
        try:
            await self._ws.send_message(text)
        except trio_websocket.ConnectionClosed as exc:
            raise self._closed_error(exc.reason) from None
        except trio.Cancelled:
            self._aborted = True
            await trio.aclose_forcefully(self._stream)
            raise

    async def receive(self) -> str:
        """Return the next text message from the server.

        Raises :class:`TransportClosed` once the websocket is closed and every message
        received before the close has been returned (``code`` 1006 when the connection
        dropped without a close frame; code 1009 with "message too big (limit ...)" when
        the server sent a message over ``target.max_message_size``). Binary frames are
        not part of the protocol: they are counted in ``binary_frames_ignored``, skipped,
        and only the first one per connection is logged as a warning.

        Either returns a message or raises ``Cancelled`` and no message is lost.
        """
        while True:
            if self._aborted:
                raise self._closed_error(None)
            try:
                message = await self._ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                raise self._closed_error(exc.reason) from None
            if isinstance(message, str):
                return message
            self.binary_frames_ignored += 1
            # One warning per connection: a server that streams binary frames would
            # otherwise print thousands of lines; the count is in binary_frames_ignored.
            logger.log(
                logging.WARNING if self.binary_frames_ignored == 1 else logging.DEBUG,
                "ignoring a %d-byte binary frame from %s (the protocol is text-only; "
                "binary frame #%d, only the first is logged as a warning)",
                len(message),
                self.target.safe_url,
                self.binary_frames_ignored,
            )

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket with ``code``/``reason`` and release the socket.

        Sends a close frame, waits up to :data:`CLOSE_GRACE` seconds for the server's
        answer, then closes the underlying stream. Idempotent: later calls (and calls
        after the server closed) only make sure the stream is closed.

        If cancelled, the stream is closed at once without waiting for the close
        handshake, then ``Cancelled`` is raised; the connection is closed either way.
        """
        try:
            if not self._aborted:
                with trio.move_on_after(CLOSE_GRACE):
                    await self._ws.aclose(code, reason or None)
        finally:
            await trio.aclose_forcefully(self._stream)


def _excerpt(line: bytes, target: Target) -> str:
    text = redact(line.decode("utf-8", "replace"), target.api_key)
    return repr(text[:_NOT_HTTP_EXCERPT] + ("..." if len(text) > _NOT_HTTP_EXCERPT else ""))


def _translate(exc: BaseException, target: Target, guard: _HandshakeGuard) -> BaseException:
    """Map a trio-websocket / guard / h11 / wsproto exception to our error types; others
    unchanged. Never puts a library's message into ours: those may quote headers."""
    if isinstance(exc, _NotHttp):
        return ConnectFailed(
            f"{target.safe_url}: the server's answer to the websocket upgrade was not valid "
            f"HTTP (it began {_excerpt(exc.head, target)}; another protocol on that port?)",
            recoverable=True,
            stage="upgrade",
        )
    if isinstance(exc, h11.ProtocolError | wsproto.utilities.ProtocolError):
        # h11/wsproto refused the server's answer (trio-websocket then trips over its own
        # error reply, an h11 LocalProtocolError), or refused our own request.
        if not guard.answered:
            return ConnectFailed(
                f"{target.safe_url}: the websocket upgrade request could not be sent "
                "(invalid request; check Target.headers)",
                recoverable=False,
                stage="upgrade",
            )
        what = (
            "a 101 that is not a valid websocket handshake"
            if guard.status == 101
            else "not valid HTTP"
        )
        return ConnectFailed(
            f"{target.safe_url}: the server's answer to the websocket upgrade was {what} "
            f"(it began {_excerpt(guard.status_line, target)})",
            recoverable=True,
            stage="upgrade",
        )
    if isinstance(exc, trio_websocket.ConnectionRejected):
        body = (exc.body or b"").decode("utf-8", "replace")
        excerpt = redact(body, target.api_key)[:BODY_EXCERPT_CHARS]
        return HandshakeRejected(
            exc.status_code, excerpt, headers=_decode_headers(exc.headers), url=target.safe_url
        )
    if isinstance(exc, _EarlyEnd):
        if exc.status not in (None, 101):
            _, _, raw_body = exc.head.partition(b"\r\n\r\n")
            text = redact(raw_body.decode("utf-8", "replace"), target.api_key)
            return HandshakeRejected(exc.status, text[:BODY_EXCERPT_CHARS], url=target.safe_url)
        return ConnectFailed(f"{target.safe_url}: {exc}", recoverable=True, stage="upgrade")
    if isinstance(exc, trio_websocket.ConnectionClosed):
        return _closed_from(exc.reason, target)
    if isinstance(exc, trio_websocket.HandshakeError):
        return ConnectFailed(
            f"{target.safe_url}: websocket handshake failed", recoverable=True, stage="upgrade"
        )
    return exc


@asynccontextmanager
async def connect_stream(stream: trio.abc.Stream, target: Target) -> AsyncIterator[Connection]:
    """Run the websocket handshake for ``target`` over ``stream`` and yield a
    :class:`Connection`. The URL's host/port/path go into the request line and ``Host``
    header; nothing is dialled (``target.url`` may name any host).

    Resource handling: takes ownership of ``stream``; it is closed when the context
    exits, when the handshake fails, or on cancellation. On a normal exit the websocket
    is closed with 1000 (see :meth:`Connection.aclose`). The trio-websocket reader runs
    in a nursery this context manager owns.

    Error handling: raises :class:`HandshakeRejected` or :class:`ConnectFailed` when the
    handshake fails (``ConnectFailed(recoverable=True)`` when the server's answer is not
    HTTP, e.g. an SSH banner). An exception raised by the body (e.g.
    :class:`TransportClosed` from :meth:`Connection.receive`) propagates unchanged, not
    wrapped in an exception group (this is the documented edge where the internal
    nursery's group is unwrapped); if several unrelated errors happen at once, they are
    raised as a group.

    Cancellation: either the handshake completes, or ``Cancelled`` is raised and the
    stream is closed.
    """
    guard = _HandshakeGuard(stream)
    host = target.host
    if target.port != (443 if target.secure else 80):
        host = f"{host}:{target.port}"
    to_raise: BaseException | None = None
    with registered(target.api_key):
        try:
            async with trio.open_nursery() as nursery:
                try:
                    ws = await trio_websocket.wrap_client_stream(
                        nursery,
                        guard,  # type: ignore[arg-type]  # any trio Stream works
                        host,
                        target.resource,
                        extra_headers=target.request_headers(),
                        message_queue_size=MESSAGE_QUEUE_SIZE,
                        max_message_size=target.max_message_size,
                        receive_buffer_size=RECEIVE_BUFFER_SIZE,
                    )
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
                guard.upgraded = True
                connection = Connection(
                    ws,
                    stream,
                    target,
                    local=_endpoint(stream, local=True),
                    remote=_endpoint(stream, local=False),
                )
                logger.debug("connected to %s (%s)", target.safe_url, connection.remote)
                try:
                    yield connection
                finally:
                    await connection.aclose()
        except BaseExceptionGroup as group:
            if group.split(trio.Cancelled)[1] is None:
                raise  # only cancellation: let trio's cancel scopes handle the group
            await trio.aclose_forcefully(stream)
            leaves = [_translate(e, target, guard) for e in group.exceptions]
            to_raise = leaves[0] if len(leaves) == 1 else BaseExceptionGroup(group.message, leaves)
    if to_raise is not None:
        # Raised outside the except block on purpose: the original trio-websocket
        # exceptions (whose args may hold an echoed key) must not become __context__.
        raise to_raise


_default_context: ssl.SSLContext | None = None
_default_context_lock: Final = threading.Lock()


def default_ssl_context() -> ssl.SSLContext:
    """The TLS context ``wss`` connections use when :func:`open_connection` gets none:
    ``ssl.create_default_context()`` (certificates and host names verified), built on the
    first call and returned by every later one, in every thread.

    Building it loads the system CA store: about 15 ms of CPU that blocks the calling
    thread. :func:`open_connection` builds it in a worker thread if nobody has yet; a caller
    that opens many connections awaits :func:`prepare_ssl_context` once before its run's
    clock starts, so neither its loop nor a connection waits for it. Thread-safe: concurrent
    first calls build one context. The context is shared: do not change it (load another CA,
    ...); pass your own ``ssl_context`` to :func:`open_connection` instead.
    """
    global _default_context
    context = _default_context
    if context is None:
        with _default_context_lock:
            if _default_context is None:
                _default_context = ssl.create_default_context()
            context = _default_context
    return context


async def prepare_ssl_context() -> ssl.SSLContext:
    """:func:`default_ssl_context`, built in a worker thread if nobody has yet, so the
    event loop keeps running while the CA store loads (15-65 ms). Load generators await
    it before their plan's clock starts (:func:`~orchestrator.supervisor.run_workload`
    does for a base spec's ``wss`` target, ``orchestrator run`` and a fleet worker too). Cancellation: a cancelled call still waits for the
    thread; the context is built either way."""
    if _default_context is not None:
        return _default_context
    return await trio.to_thread.run_sync(default_ssl_context)


async def _tls_context(given: ssl.SSLContext | None) -> ssl.SSLContext:
    return given if given is not None else await prepare_ssl_context()


#: OpenSSL's reasons for a TLS handshake answered by something that is not TLS (3.0:
#: ``WRONG_VERSION_NUMBER``; 3.2+ may say ``RECORD_LAYER_FAILURE``): most often a plain
#: ``ws://`` (HTTP) server behind a ``wss://`` URL.
_PLAIN_SERVER_REASONS: Final = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"})


def _os_error_text(exc: OSError) -> str:
    """What the OS said about a failed connect: ``Connection refused (errno 111)``, or
    trio's text per address tried (it names the address) when they failed differently.
    ``trio`` raises one ``OSError("all attempts to connect to ... failed")`` whose cause
    groups the errors of each address; DNS errors (``gaierror``) come as they are."""
    group = exc.__cause__
    errors = [exc]
    if isinstance(group, BaseExceptionGroup):
        errors = [e for e in group.exceptions if isinstance(e, OSError)] or errors
    texts = list(dict.fromkeys(_strerror(e) for e in errors))
    if len(texts) == 1:
        return texts[0]
    return "; ".join(e.strerror or str(e) for e in errors)


def _strerror(exc: OSError) -> str:
    """``Connection refused (errno 111)``: the C library's text of the error number
    (trio's own text also names the address, which the caller names already); a DNS
    error's text (its number is not an ``errno``); else ``str(exc)``."""
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror
    if exc.errno is not None and exc.strerror:
        return f"{os.strerror(exc.errno)} (errno {exc.errno})"
    return str(exc)


async def _open_stream(target: Target, ssl_context: ssl.SSLContext | None) -> trio.abc.Stream:
    context = await _tls_context(ssl_context) if target.secure else None
    try:
        tcp = await trio.open_tcp_stream(target.host, target.port)
    except OSError as exc:
        raise ConnectFailed(
            f"cannot connect to {target.host}:{target.port}: {_os_error_text(exc)} "
            f"({target.safe_url})",
            recoverable=True,
            stage="tcp",
        ) from exc
    if context is None:
        return tcp
    tls = trio.SSLStream(tcp, context, server_hostname=target.host, https_compatible=True)
    try:
        await tls.do_handshake()
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(tcp)
        cause = exc.__cause__
        verify_failed = isinstance(cause, ssl.SSLCertVerificationError)
        hint = ""
        if isinstance(cause, ssl.SSLError) and cause.reason in _PLAIN_SERVER_REASONS:
            hint = " (is it a plain ws:// server?)"
        raise ConnectFailed(
            f"TLS handshake with {target.host}:{target.port} failed: {cause or exc}{hint}",
            recoverable=not verify_failed,
            stage="tls",
        ) from exc
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return tls


@asynccontextmanager
async def open_connection(
    target: Target, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Connection]:
    """Connect to ``target`` over TCP (TLS for ``wss``) and yield a :class:`Connection`.

    TLS uses the shared :func:`default_ssl_context` (certificates and host name
    verified; built once per process, in a worker thread if not built yet) unless
    ``ssl_context`` is given (e.g. a private CA). The message size limit is
    ``target.max_message_size``. There is no timeout parameter: wrap the call in
    ``trio.fail_after``/``move_on_after``.

    Error handling: :class:`ConnectFailed` for DNS errors, refused or reset connections
    (recoverable) and TLS failures (certificate verification failures are not
    recoverable); then as :func:`connect_stream`.

    Resource handling and cancellation: as :func:`connect_stream`; the socket is closed
    when the context exits, whatever the outcome.
    """
    stream = await _open_stream(target, ssl_context)
    async with connect_stream(stream, target) as connection:
        yield connection
