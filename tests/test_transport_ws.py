"""Transport against real trio-websocket servers.

Rules (as trio-websocket's own tests): loopback only, port 0, a ``fail_after`` guard on
every real-socket test, and the autojump MockClock over ``memory_stream_pair`` /
``lockstep_stream_pair`` for anything timed.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket, wrap_server_stream

from orchestrator.protocol.dialect import Dialect
from orchestrator.transport import (
    CLOSE_GRACE,
    MAX_MESSAGE_SIZE,
    ConnectFailed,
    HandshakeRejected,
    Target,
    TransportClosed,
    build_target,
    connect_stream,
    open_connection,
)
from orchestrator.transport.connection import _os_error_text

KEY = "sk-live-SECRET-0123456789"
GUARD = 5.0

Handler = Callable[[WebSocketRequest], Awaitable[None]]


@asynccontextmanager
async def ws_server(handler: Handler) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_websocket, handler, "127.0.0.1", 0, ssl_context=None, handler_nursery=nursery
            )
        )
        yield server.port
        nursery.cancel_scope.cancel()


def _target(port: int, **kwargs: object) -> Target:
    return build_target(
        provider="custom", url=f"ws://127.0.0.1:{port}/v1", model="m", api_key=KEY, env={}, **kwargs
    )  # type: ignore[arg-type]


def _request_headers(request: WebSocketRequest) -> dict[str, str]:
    return {k.decode().lower(): v.decode() for k, v in request.headers}


def _assert_no_key(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)
        assert KEY not in repr(text)


async def test_text_frames_headers_and_connection_info() -> None:
    seen: dict[str, object] = {}

    async def handler(request: WebSocketRequest) -> None:
        seen["path"] = request.path
        seen["headers"] = _request_headers(request)
        ws = await request.accept(extra_headers=[(b"x-request-id", b"req_123")])
        message = await ws.get_message()
        seen["type"] = type(message)
        await ws.send_message(f"echo:{message}")
        await ws.get_message()  # until the client closes

    with trio.fail_after(GUARD):
        async with ws_server(handler) as port, open_connection(_target(port)) as conn:
            with pytest.raises(TypeError, match="takes str"):
                await conn.send(b'{"type":"x"}')  # type: ignore[arg-type]
            await conn.send('{"type":"session.update"}')
            assert await conn.receive() == 'echo:{"type":"session.update"}'
            assert ("x-request-id", "req_123") in conn.response_headers
            assert conn.local.startswith("127.0.0.1:")
            assert conn.remote == f"127.0.0.1:{port}"
            assert conn.closed is None
            _assert_no_key(conn)
    assert seen["type"] is str  # a TEXT frame on the wire
    assert seen["path"] == "/v1/realtime?model=m"
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers["authorization"] == f"Bearer {KEY}"
    assert "openai-beta" not in headers


@pytest.mark.parametrize(
    ("kwargs", "expected", "absent"),
    [
        (
            {"dialect": Dialect.BETA},
            {"authorization": f"Bearer {KEY}", "openai-beta": "realtime=v1"},
            ["api-key"],
        ),
        ({"auth": "api-key"}, {"api-key": KEY}, ["authorization", "openai-beta"]),
        ({"headers": {"X-Trace": "t1"}}, {"x-trace": "t1"}, ["openai-beta"]),
    ],
)
async def test_server_sees_headers_per_dialect_and_auth(
    kwargs: dict[str, object], expected: dict[str, str], absent: list[str]
) -> None:
    seen: dict[str, str] = {}

    async def handler(request: WebSocketRequest) -> None:
        seen.update(_request_headers(request))
        ws = await request.accept()
        await ws.get_message()

    with trio.fail_after(GUARD):
        async with ws_server(handler) as port, open_connection(_target(port, **kwargs)):
            pass
    for name, value in expected.items():
        assert seen[name] == value
    for name in absent:
        assert name not in seen


async def test_azure_target_sends_api_key_to_the_server() -> None:
    seen: dict[str, object] = {}

    async def handler(request: WebSocketRequest) -> None:
        seen["path"] = request.path
        seen["headers"] = _request_headers(request)
        ws = await request.accept()
        await ws.get_message()

    with trio.fail_after(GUARD):
        async with ws_server(handler) as port:
            azure = build_target(
                provider="azure",
                url=f"http://127.0.0.1:{port}",
                model="dep",
                env={"AZURE_OPENAI_API_KEY": KEY},
            )
            async with open_connection(azure):
                pass
    assert seen["path"] == "/openai/v1/realtime?model=dep"
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers["api-key"] == KEY and "authorization" not in headers


@pytest.mark.parametrize(
    ("status", "recoverable"), [(401, False), (403, False), (429, True), (503, True)]
)
async def test_handshake_rejection(
    status: int, recoverable: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def handler(request: WebSocketRequest) -> None:
        body = f'{{"error":{{"message":"Incorrect API key provided: {KEY}"}}}}'.encode()
        await request.reject(status, extra_headers=[(b"Retry-After", b"2")], body=body)

    with trio.fail_after(GUARD):
        async with ws_server(handler) as port:
            with pytest.raises(HandshakeRejected) as info:
                async with open_connection(_target(port)):
                    pytest.fail("handshake must not succeed")
    exc = info.value
    assert exc.status_code == status
    assert exc.recoverable is recoverable
    assert exc.retry_after == 2.0
    assert "Incorrect API key provided: ***" in exc.body_excerpt
    assert exc.__context__ is None and exc.__cause__ is None
    _assert_no_key(exc, exc.body_excerpt, exc.args)
    for record in caplog.records:
        _assert_no_key(record.getMessage())


@pytest.mark.parametrize(
    ("code", "recoverable"),
    [
        (1000, False),
        (1001, True),
        (1011, True),
        (1013, True),
        (1008, False),
        (3000, False),
        (4000, False),
    ],
)
async def test_close_codes_are_mapped_and_reasons_redacted(
    code: int, recoverable: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message('{"type":"error"}')
        await ws.aclose(code, f"invalid_request_error.invalid_api_key {KEY}")

    with trio.fail_after(GUARD):
        async with ws_server(handler) as port, open_connection(_target(port)) as conn:
            assert await conn.receive() == '{"type":"error"}'  # frames before the close arrive
            with pytest.raises(TransportClosed) as info:
                await conn.receive()
            with pytest.raises(TransportClosed):
                await conn.send("{}")
            assert conn.closed is not None and conn.closed.code == code
    exc = info.value
    assert (exc.code, exc.recoverable) == (code, recoverable)
    assert exc.reason == "invalid_request_error.invalid_api_key ***"
    _assert_no_key(exc, exc.args, conn.closed)
    client_records = [r for r in caplog.records if not r.getMessage().startswith("server-")]
    assert any("websocket closed" in r.getMessage() for r in client_records)  # trio-websocket's
    for record in client_records:
        _assert_no_key(record.getMessage())


async def test_transport_closed_raised_in_body_is_not_wrapped() -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.aclose(1001, "Your session hit the maximum duration of 60 minutes.")

    with trio.fail_after(GUARD):
        async with ws_server(handler) as port:
            with pytest.raises(TransportClosed) as info:
                async with open_connection(_target(port)) as conn:
                    await conn.receive()
    assert info.value.code == 1001 and info.value.recoverable


async def test_connection_refused_is_recoverable_connect_failed() -> None:
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with trio.fail_after(GUARD), pytest.raises(ConnectFailed) as info:
        async with open_connection(_target(port)):
            pytest.fail("must not connect")
    assert info.value.recoverable
    _assert_no_key(info.value)
    # the OS error is kept; TCP failed, so no handshake was tried
    assert str(info.value).startswith(f"cannot connect to 127.0.0.1:{port}: Connection refused")
    assert info.value.stage == "tcp" and info.value.before_handshake


def test_os_error_text_of_every_address_tried() -> None:
    def attempts(*errors: OSError) -> OSError:
        exc = OSError("all attempts to connect to localhost:1 failed")
        exc.__cause__ = ExceptionGroup("all attempts", list(errors))
        return exc

    refused4 = ConnectionRefusedError(
        111, "Error connecting to ('127.0.0.1', 1): Connection refused"
    )
    refused6 = ConnectionRefusedError(111, "Error connecting to ('::1', 1): Connection refused")
    unreachable = OSError(101, "Error connecting to ('::1', 1): Network is unreachable")
    assert _os_error_text(attempts(refused4, refused6)) == "Connection refused (errno 111)"
    assert _os_error_text(attempts(unreachable, refused4)) == (
        "Error connecting to ('::1', 1): Network is unreachable; "
        "Error connecting to ('127.0.0.1', 1): Connection refused"
    )
    dns = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert _os_error_text(dns) == "Name or service not known"


async def test_wss_to_a_plain_ws_server_hints_at_it() -> None:
    async def handler(request: WebSocketRequest) -> None:
        await request.accept()

    with trio.fail_after(GUARD):
        async with ws_server(handler) as port:
            tls = Target(url=f"wss://127.0.0.1:{port}/v1/realtime", api_key=None)
            with pytest.raises(ConnectFailed, match="TLS handshake") as info:
                async with open_connection(tls):
                    pytest.fail("must not connect")
    assert info.value.stage == "tls" and info.value.before_handshake
    # OpenSSL before 3.2 says WRONG_VERSION_NUMBER for plain bytes (later ones may differ)
    if ssl.OPENSSL_VERSION_INFO < (3, 2):
        assert str(info.value).endswith("(is it a plain ws:// server?)")


async def test_server_hanging_up_before_upgrade_does_not_hang() -> None:
    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        await stream.aclose()

    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, hang_up, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            with pytest.raises(ConnectFailed, match="before completing the upgrade") as info:
                async with open_connection(_target(port)):
                    pytest.fail("must not connect")
            assert info.value.recoverable
            assert info.value.stage == "upgrade" and not info.value.before_handshake
            # wss to a plaintext server: TLS fails, recoverable
            tls = Target(url=f"wss://127.0.0.1:{port}/v1/realtime", api_key=None)
            assert tls.secure
            with pytest.raises(ConnectFailed, match="TLS handshake"):
                async with open_connection(tls):
                    pytest.fail("must not connect")
            nursery.cancel_scope.cancel()


# ---- memory streams on the fake clock -------------------------------------------------


def _mem_target() -> Target:
    return Target(url="ws://mock.invalid/v1/realtime?model=m", api_key=None)


async def test_memory_stream_pair_exact_timing(autojump_clock: trio.testing.MockClock) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()

    async def server() -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, server_stream)
            assert request.path == "/v1/realtime?model=m"
            ws = await request.accept()
            await trio.sleep(1.5)
            await ws.send_message('{"type":"session.created"}')
            assert await ws.get_message() == "hi"
            await ws.aclose(1000)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        async with connect_stream(client_stream, _mem_target()) as conn:
            assert conn.remote == "StapledStream"
            assert await conn.receive() == '{"type":"session.created"}'
            assert trio.current_time() == 1.5
            await conn.send("hi")
            with pytest.raises(TransportClosed) as info:
                await conn.receive()
            assert info.value.code == 1000 and not info.value.recoverable
            await conn.aclose()
            await conn.aclose()  # idempotent


async def test_drop_without_close_frame_is_1006(autojump_clock: trio.testing.MockClock) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()

    async def server() -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, server_stream)
            await request.accept()
            await trio.sleep(0.25)
            await server_stream.aclose()  # TCP reset, no close frame

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        async with connect_stream(client_stream, _mem_target()) as conn:
            with pytest.raises(TransportClosed) as info:
                await conn.receive()
            assert trio.current_time() == 0.25
    assert (info.value.code, info.value.recoverable) == (1006, True)


async def test_aclose_waits_at_most_the_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    accepted = trio.Event()

    async def server() -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, server_stream)
            await request.accept()
            accepted.set()
            nursery.cancel_scope.cancel()  # stop reading: our close frame is never answered
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        async with connect_stream(client_stream, _mem_target()) as conn:
            await accepted.wait()
            start = trio.current_time()
        assert trio.current_time() - start == CLOSE_GRACE
        assert conn.closed is not None
        nursery.cancel_scope.cancel()


async def test_cancelled_send_aborts_connection(autojump_clock: trio.testing.MockClock) -> None:
    client_stream, server_stream = trio.testing.lockstep_stream_pair()

    async def server() -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, server_stream)
            await request.accept()
            nursery.cancel_scope.cancel()  # stop reading: lockstep send_all now blocks
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        async with connect_stream(client_stream, _mem_target()) as conn:
            with trio.move_on_after(1.0) as scope:
                await conn.send("x" * 1000)
            assert scope.cancelled_caught
            with pytest.raises(TransportClosed) as info:
                await conn.receive()
            assert info.value.code == 1006 and info.value.recoverable
            with pytest.raises(TransportClosed):
                await conn.send("again")
        nursery.cancel_scope.cancel()


async def test_raw_rejection_without_length_ended_by_eof(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    target = Target(url="ws://mock.invalid:8080/v1/realtime", api_key=None)
    request: list[bytes] = []

    async def server() -> None:
        request.append(await server_stream.receive_some())
        await server_stream.send_all(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno access"
        )
        await server_stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        with pytest.raises(HandshakeRejected) as info:
            async with connect_stream(client_stream, target):
                pytest.fail("must not connect")
    assert info.value.status_code == 403 and not info.value.recoverable
    assert info.value.body_excerpt == "no access"
    head = request[0].split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"get /v1/realtime http/1.1\r\n")
    assert b"\r\nhost: mock.invalid:8080" in head


async def test_large_messages_and_binary_frames(autojump_clock: trio.testing.MockClock) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    big = '{"delta":"' + "A" * (2 * 2**20) + '"}'  # over trio-websocket's 1 MiB default

    async def server() -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, server_stream, max_message_size=2**26)
            ws = await request.accept()
            await ws.send_message(b"\x00binary")
            await ws.send_message(big)
            await ws.send_message("x" * (MAX_MESSAGE_SIZE + 1))
            with pytest.raises(ConnectionClosed) as info:
                await ws.get_message()
            assert info.value.reason is not None and info.value.reason.code == 1009

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        async with connect_stream(client_stream, _mem_target()) as conn:
            assert await conn.receive() == big  # the binary frame was skipped
            assert conn.binary_frames_ignored == 1
            with pytest.raises(TransportClosed) as info:
                await conn.receive()
            assert (info.value.code, info.value.recoverable) == (1009, False)


async def test_unix_socket_stream_endpoints() -> None:
    """A Unix socket (here an unnamed ``socketpair``) connects; its ends are named
    ``unix:PATH`` (``unix:`` unnamed), not taken for an IP address."""
    a, b = trio.socket.socketpair()
    server_stream, client_stream = trio.SocketStream(a), trio.SocketStream(b)

    async def server() -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, server_stream)
            ws = await request.accept()
            await ws.send_message('{"type":"session.created"}')
            with pytest.raises(ConnectionClosed):
                await ws.get_message()  # until the client closes

    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            async with connect_stream(client_stream, _mem_target()) as conn:
                assert (conn.local, conn.remote) == ("unix:", "unix:")
                assert await conn.receive() == '{"type":"session.created"}'
