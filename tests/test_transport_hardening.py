"""Transport hardening (issue #8): one shared TLS context, a per-target message size
limit, non-HTTP answers to the upgrade, and one warning per connection for binary frames.

Rules as in ``test_transport_ws.py``: loopback only, port 0, a ``fail_after`` guard on
every real-socket test, the autojump MockClock over memory streams for the rest, and no
timed assertions (only exact fake times).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from functools import partial

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, wrap_server_stream

from orchestrator.transport import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_MESSAGE_SIZE,
    ConnectFailed,
    Secret,
    Target,
    TransportClosed,
    build_target,
    connect_stream,
    default_ssl_context,
    open_connection,
)
from orchestrator.transport import connection as connection_module

KEY = "sk-live-SECRET-0123456789"
GUARD = 5.0


def _assert_no_key(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)
        assert KEY not in repr(text)


# ---- one SSL context per process ------------------------------------------------------


@pytest.fixture
def context_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Forget the cached default context and count ``ssl.create_default_context`` calls."""
    monkeypatch.setattr(connection_module, "_default_context", None)
    calls: list[int] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        calls.append(1)
        time.sleep(0.01)  # widen the race window for concurrent first calls
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    return calls


async def test_many_wss_opens_build_the_ssl_context_once(context_builds: list[int]) -> None:
    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.aclose()  # the TLS handshake fails: the context was used

    failures: list[ConnectFailed] = []

    async def open_once(target: Target) -> None:
        with pytest.raises(ConnectFailed) as info:
            async with open_connection(target):
                pytest.fail("must not connect")
        failures.append(info.value)

    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, hang_up, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            target = Target(url=f"wss://127.0.0.1:{port}/v1/realtime")
            async with trio.open_nursery() as opens:
                for _ in range(20):
                    opens.start_soon(open_once, target)
            for _ in range(5):  # and later reconnects
                await open_once(target)
            nursery.cancel_scope.cancel()
    assert len(failures) == 25
    assert all("TLS handshake" in str(f) and f.recoverable for f in failures)
    assert len(context_builds) == 1
    assert default_ssl_context() is default_ssl_context()
    assert len(context_builds) == 1


async def test_prebuilt_context_is_used_without_a_thread(
    context_builds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    context = default_ssl_context()  # what the supervisor does before a run
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname

    async def no_thread(*args: object, **kwargs: object) -> object:
        raise AssertionError("the prebuilt context must not be built again in a thread")

    monkeypatch.setattr(trio.to_thread, "run_sync", no_thread)
    port = _unused_port()
    with trio.fail_after(GUARD), pytest.raises(ConnectFailed):
        async with open_connection(Target(url=f"wss://127.0.0.1:{port}/v1/realtime")):
            pytest.fail("must not connect")
    assert len(context_builds) == 1


def test_default_ssl_context_is_built_once_across_threads(context_builds: list[int]) -> None:
    start = threading.Barrier(8)
    got: list[ssl.SSLContext] = []

    def worker() -> None:
        start.wait()
        got.append(default_ssl_context())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(c is got[0] for c in got)
    assert len(context_builds) == 1


def _unused_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- message size limit -----------------------------------------------------------------


def test_max_message_size_defaults_and_validation() -> None:
    assert MAX_MESSAGE_SIZE == DEFAULT_MAX_MESSAGE_SIZE == 4 * 2**20
    target = Target(url="ws://127.0.0.1:1/v1/realtime")
    assert target.max_message_size == MAX_MESSAGE_SIZE
    custom = build_target(
        provider="custom", url="ws://127.0.0.1:1/v1", model="m", env={}, max_message_size=2**20
    )
    assert custom.max_message_size == 2**20
    assert build_target(provider="custom", url="ws://h/v1", model="m", env={}).max_message_size
    for bad in (0, -1, True, 1.5, "4"):
        with pytest.raises(ValueError, match="max_message_size"):
            Target(url="ws://127.0.0.1:1/v1/realtime", max_message_size=bad)  # type: ignore[arg-type]


def _mem_target(**kwargs: object) -> Target:
    return Target(url="ws://mock.invalid/v1/realtime?model=m", **kwargs)  # type: ignore[arg-type]


async def test_server_message_over_the_limit_names_the_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    limit = 64 * 2**10

    async def server() -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, server_stream, max_message_size=2**26)
            ws = await request.accept()
            await ws.send_message("a" * limit)  # exactly the limit: accepted
            await ws.send_message("b" * (limit + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason is not None and closed.value.reason.code == 1009

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        async with connect_stream(client_stream, _mem_target(max_message_size=limit)) as conn:
            assert await conn.receive() == "a" * limit
            with pytest.raises(TransportClosed) as info:
                await conn.receive()
    err = info.value
    assert (err.code, err.recoverable) == (1009, False)
    assert "message too big (limit 64 KiB)" in str(err)
    assert "server sent" in err.reason


async def test_default_limit_and_the_servers_own_1009_keep_their_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    server_reason = f"Exceeded maximum message size: {2**20} bytes"  # the server's limit

    async def server() -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, server_stream, max_message_size=2**26)
            ws = await request.accept()
            await ws.send_message("c" * (2 * 2**20))  # over trio-websocket's 1 MiB default
            await ws.aclose(1009, server_reason)  # "your message was too big for me"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        async with connect_stream(client_stream, _mem_target()) as conn:
            assert len(await conn.receive()) == 2 * 2**20
            with pytest.raises(TransportClosed) as info:
                await conn.receive()
    assert info.value.code == 1009
    assert info.value.reason == server_reason
    assert "limit 4 MiB" not in str(info.value)


# ---- a non-HTTP answer to the upgrade ---------------------------------------------------


NOT_HTTP = [
    (b"SSH-2.0-OpenSSH_9.6\r\n", "'SSH-2.0-OpenSSH_9.6'", "not valid HTTP"),
    (b"HELLO\r\n\r\n", "'HELLO'", "not valid HTTP"),
    (b"\x00\x01\x02binary", "'\\x00\\x01\\x02binary'", "not valid HTTP"),
    (b"HTTP/1.1 abc\r\n\r\n", "'HTTP/1.1 abc'", "not valid HTTP"),
    (
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        "'HTTP/1.1 101 Switching Protocols'",
        "a 101 that is not a valid websocket handshake",
    ),
    (f"ECHO {KEY}\r\n".encode(), "'ECHO ***'", "not valid HTTP"),
]


def _check_not_http(err: ConnectFailed, began: str, what: str) -> None:
    assert err.recoverable
    text = str(err)
    assert "the server's answer to the websocket upgrade was" in text
    assert what in text and f"it began {began}" in text
    assert "role=CLIENT" not in text
    _assert_no_key(err)
    assert err.__cause__ is None and err.__context__ is None  # no library text attached


@pytest.mark.parametrize(("reply", "began", "what"), NOT_HTTP)
@pytest.mark.parametrize("close", [True, False], ids=["then-close", "stay-open"])
async def test_non_http_answer_over_memory_streams_fails_at_once(
    autojump_clock: trio.testing.MockClock, reply: bytes, began: str, what: str, close: bool
) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()

    async def server() -> None:
        await server_stream.receive_some()
        await server_stream.send_all(reply)
        if close:
            await server_stream.aclose()
        else:
            await trio.sleep_forever()

    target = _mem_target(api_key=Secret(KEY))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        with pytest.raises(ConnectFailed) as info:
            async with connect_stream(client_stream, target):
                pytest.fail("must not connect")
        assert trio.current_time() == 0  # refused on the bytes, not on a timeout or EOF
        nursery.cancel_scope.cancel()
    _check_not_http(info.value, began, what)


@pytest.mark.parametrize(("reply", "began", "what"), NOT_HTTP[:2])
async def test_non_http_answer_over_loopback_tcp(reply: bytes, began: str, what: str) -> None:
    async def answer(stream: trio.SocketStream) -> None:
        await stream.send_all(reply)  # an SSH server speaks first
        await trio.sleep_forever()

    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, answer, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            target = build_target(
                provider="custom", url=f"ws://127.0.0.1:{port}/v1", model="m", api_key=KEY, env={}
            )
            with pytest.raises(ConnectFailed) as info:
                async with open_connection(target):
                    pytest.fail("must not connect")
            nursery.cancel_scope.cancel()
    _check_not_http(info.value, began, what)


def test_header_values_are_checked_without_quoting_them() -> None:
    url = "ws://127.0.0.1:1/v1/realtime"
    with pytest.raises(ValueError, match="line break") as info:
        Target(url=url, headers=(("x-relay-token", f"{KEY}\r\nx-evil: 1"),))
    _assert_no_key(info.value)
    with pytest.raises(ValueError, match="not a valid header name"):
        Target(url=url, headers=(("bad name", "v"),))
    assert Target(url=url, headers=(("x-ok", "a b\tc"),)).headers == (("x-ok", "a b\tc"),)


# ---- binary frames ------------------------------------------------------------------------


async def test_binary_frames_warn_once_per_connection(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator.transport.connection")

    async def one_connection() -> int:
        client_stream, server_stream = trio.testing.memory_stream_pair()

        async def server() -> None:
            async with trio.open_nursery() as nursery:
                request = await wrap_server_stream(nursery, server_stream)
                ws = await request.accept()
                for i in range(50):
                    await ws.send_message(bytes([i]) * 10)
                await ws.send_message("text")
                with pytest.raises(ConnectionClosed):
                    await ws.get_message()  # until the client's close

        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            async with connect_stream(client_stream, _mem_target()) as conn:
                assert await conn.receive() == "text"
                return conn.binary_frames_ignored

    assert await one_connection() == 50
    binary = [r for r in caplog.records if "binary frame" in r.getMessage()]
    warnings = [r for r in binary if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "binary frame #1" in warnings[0].getMessage()
    assert all(r.levelno == logging.DEBUG for r in binary if r not in warnings)
    assert len(binary) == 50
    caplog.clear()
    assert await one_connection() == 50  # a new connection warns again, once
    assert [r.levelno for r in caplog.records if "binary frame" in r.getMessage()].count(
        logging.WARNING
    ) == 1
