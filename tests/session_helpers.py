"""Helpers for the session tests (imported explicitly; not a conftest).

- :func:`memory_factory`: a ``SessionSpec.connect`` factory joining the client to the
  embedded mock server over ``trio.testing.memory_stream_pair()`` (one fresh server
  connection per call; works on ``MockClock``).
- :class:`ScriptedConnection`: a test-only fake transport that plays a list of server
  frames (e.g. a capture) and records what the client sent.
- :func:`shared_dir`: where ``../shared`` (captures) lives; tests skip when absent.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import trio
import trio.testing

from orchestrator.mockserver import Distribution, LatencyModel, MockServer, ServerConfig
from orchestrator.protocol import (
    NULL,
    AudioConfig,
    AudioInput,
    Dialect,
    SessionConfig,
    decode_client_event,
)
from orchestrator.scenario import voice_session_config
from orchestrator.session.spec import SessionSpec
from orchestrator.transport import Target, TransportClosed, connect_stream

URL = "ws://127.0.0.1/v1/realtime?model=gpt-realtime"

#: A session config turning server VAD off (manual commits).
NO_VAD = SessionConfig(audio=AudioConfig(input=AudioInput(turn_detection=NULL)))

#: JSON schema of the ``get_weather`` tool the tests register.
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

#: Deterministic latency model: ttfa 300 ms, audio streamed at 2x real time.
FIXED = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:300"),
    response_words=Distribution.parse("fixed:8"),
    realtime_factor=2.0,
    transcription_ms=Distribution.parse("fixed:50"),
)


def shared_dir() -> Path | None:
    """``$ORCHESTRATOR_SHARED`` or ``<repo>/../shared``; None when it does not exist."""
    env = os.environ.get("ORCHESTRATOR_SHARED")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return path if path.is_dir() else None


def server_config(**kwargs: Any) -> ServerConfig:
    kwargs.setdefault("port", 0)
    kwargs.setdefault("latency", FIXED)
    return ServerConfig(**kwargs)


@asynccontextmanager
async def voice_server(
    config: ServerConfig, **defaults: Any
) -> AsyncIterator[Callable[..., SessionSpec]]:
    """A factory of session specs for the built-in voice conversation, each session's
    connection served over a memory stream pair by one mock server with ``config``,
    whose clock starts now (faults timed from the start); ``defaults`` are spec fields
    every spec gets unless the call overrides them. The server's tasks live in this
    block, not in the session (a cancelled session still gets the server's close
    answer); leaving the block ends them."""
    server = MockServer(config, started_at=trio.current_time())
    target = Target(url=URL, dialect=Dialect.GA)
    async with trio.open_nursery() as nursery:

        @asynccontextmanager
        async def connect() -> AsyncIterator[Any]:
            client, far = trio.testing.memory_stream_pair()
            nursery.start_soon(server.serve_stream, far)
            async with connect_stream(client, target) as conn:
                yield conn

        def make_spec(**fields: Any) -> SessionSpec:
            spec_fields = {**defaults, **fields}
            return SessionSpec(connect=connect, config=voice_session_config(), **spec_fields)

        yield make_spec
        nursery.cancel_scope.cancel()


def memory_factory(
    config: ServerConfig,
    *,
    server: MockServer | None = None,
    target: Target | None = None,
    opened: list[Any] | None = None,
) -> Callable[[], Any]:
    """A connect factory: each call serves one mock-server connection over a memory
    stream pair (``server`` shares counters across reconnects)."""
    tgt = target or Target(url=URL, dialect=Dialect.GA)
    srv = server or MockServer(config)

    @asynccontextmanager
    async def factory() -> AsyncIterator[Any]:
        client, far = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(srv.serve_stream, far)
            try:
                async with connect_stream(client, tgt) as conn:
                    if opened is not None:
                        opened.append(conn)
                    yield conn
            finally:
                nursery.cancel_scope.cancel()

    return factory


class ScriptedConnection:
    """A fake connection: ``receive`` returns ``frames`` in order, then waits until the
    connection is closed (or raises ``TransportClosed(close_code)`` when ``close_code``
    is given). Every sent text is decoded and kept in ``sent``. ``drained`` is set once
    every frame was handed out and the receiver asked for more (so all were processed).
    ``on_send`` may return extra frames to deliver (a reactive script)."""

    def __init__(
        self,
        frames: Iterable[str],
        *,
        close_code: int | None = None,
        on_send: Callable[[Any], Iterable[str]] | None = None,
    ) -> None:
        self._tx, self._rx = trio.open_memory_channel[str](100_000)
        for frame in frames:
            self._tx.send_nowait(frame)
        self.close_code = close_code
        self.on_send = on_send
        self.sent: list[Any] = []
        self.closed: tuple[int, str] | None = None
        self.drained = trio.Event()

    async def send(self, text: str) -> None:
        if self.closed is not None:
            raise TransportClosed(1000, "closed")
        await trio.lowlevel.checkpoint()
        event = decode_client_event(text, Dialect.GA)
        self.sent.append(event)
        if self.on_send is not None:
            for reply in self.on_send(event):
                self._tx.send_nowait(reply)

    async def receive(self) -> str:
        try:
            return self._rx.receive_nowait()
        except trio.WouldBlock:
            pass
        except trio.EndOfChannel:
            raise TransportClosed(*(self.closed or (1006, ""))) from None
        self.drained.set()
        if self.close_code is not None:
            raise TransportClosed(self.close_code, "scripted close")
        try:
            return await self._rx.receive()
        except trio.EndOfChannel:
            raise TransportClosed(*(self.closed or (1006, ""))) from None

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        if self.closed is None:
            self.closed = (code, reason)
        self._tx.close()
        await trio.lowlevel.checkpoint()


def scripted_factory(conn: ScriptedConnection) -> Callable[[], Any]:
    @asynccontextmanager
    async def factory() -> AsyncIterator[ScriptedConnection]:
        yield conn

    return factory


def frame(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()
