"""Shared helpers for the mock server tests (not a conftest: imported explicitly)."""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import numpy as np
import orjson
import trio
import trio.testing
import trio_websocket

from orchestrator.audio import pcm16_to_b64, silence, speech_like
from orchestrator.mockserver import Distribution, LatencyModel, MockServer, ServerConfig
from orchestrator.mockserver.latency import ResponseTiming
from orchestrator.mockserver.responder import ResponseSpec

#: A fast, deterministic latency model for tests.
FAST = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:40"),
    response_words=Distribution.parse("fixed:6"),
    realtime_factor=0.0,
    transcription_ms=Distribution.parse("fixed:10"),
)


def fast_config(**kwargs: Any) -> ServerConfig:
    """A loopback, port-0 config with the fast latency model."""
    kwargs.setdefault("port", 0)
    kwargs.setdefault("latency", FAST)
    return ServerConfig(**kwargs)


@contextmanager
def server_in_thread(
    config: ServerConfig, *, start_timeout: float = 10.0
) -> Iterator[tuple[MockServer, int]]:
    """Run a MockServer in a background thread with its own ``trio.run``.

    Yields ``(server, port)``; on exit cancels the server and joins the thread.
    """
    server = MockServer(config)
    handoff: queue.Queue[Any] = queue.Queue()

    async def main() -> None:
        try:
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    port = await nursery.start(server.serve)
                    handoff.put((port, scope, trio.lowlevel.current_trio_token()))
        except BaseException as exc:  # hand startup failures to the test thread
            handoff.put(exc)
            raise

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    got = handoff.get(timeout=start_timeout)
    if isinstance(got, BaseException):
        raise got
    port, scope, token = got
    try:
        yield server, port
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(timeout=10)
        assert not thread.is_alive(), "mock server thread did not stop"


def speech_turn(
    speech_ms: int = 1200, *, lead_ms: int = 300, tail_ms: int = 600, seed: int = 1
) -> np.ndarray:
    """Silence, a speech-like utterance, silence (PCM16 24 kHz)."""
    return np.concatenate([silence(lead_ms), speech_like(speech_ms, seed=seed), silence(tail_ms)])


def append_events(audio: np.ndarray, chunk_ms: int = 100) -> list[str]:
    """``input_audio_buffer.append`` frames for ``audio`` in ``chunk_ms`` chunks."""
    per = 24 * chunk_ms
    return [
        orjson.dumps(
            {"type": "input_audio_buffer.append", "audio": pcm16_to_b64(audio[i : i + per])}
        ).decode()
        for i in range(0, audio.size, per)
    ]


async def recv_until(
    ws: trio_websocket.WebSocketConnection, stop_type: str, *, limit: int = 10_000
) -> list[dict[str, Any]]:
    """Receive events until one of type ``stop_type`` (inclusive)."""
    out: list[dict[str, Any]] = []
    for _ in range(limit):
        event = orjson.loads(await ws.get_message())
        out.append(event)
        if event["type"] == stop_type:
            return out
    raise AssertionError(f"no {stop_type} within {limit} events")


def send(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def user_text(text: str, **fields: Any) -> dict[str, Any]:
    """A user message item with one ``input_text`` part (``fields``: e.g. ``id``)."""
    return {
        **fields,
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }


async def add_user_text(ws: trio_websocket.WebSocketConnection, text: str) -> dict[str, Any]:
    """Create a user text item; return its ``conversation.item.added`` (``.done`` checked)."""
    await ws.send_message(send({"type": "conversation.item.create", "item": user_text(text)}))
    added = await next_event(ws)
    assert (await next_event(ws))["type"] == "conversation.item.done"
    return added


def response_spec(**kw: Any) -> ResponseSpec:
    """A small audio-message :class:`ResponseSpec` (four words, two audio chunks);
    ``kw`` overrides fields."""
    base: dict[str, Any] = dict(
        response_id="resp_1",
        conversation_id="conv_1",
        item_id="item_1",
        modality="audio",
        text="one two three four",
        tool_call=None,
        call_id="call_1",
        audio_chunks=["AAAA", "BBBB"],
        chunk_offset=0,
        chunk_ms=100,
        codec="pcm16",
        timing=ResponseTiming(created_s=0.01, first_delta_s=0.2, interval_s=0.05, words=4),
        response_object={"id": "resp_1", "output_modalities": ["audio"], "usage": None},
        input_tokens=10,
    )
    base.update(kw)
    return ResponseSpec(**base)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def collapse(names: list[str]) -> list[str]:
    """Collapse runs of repeated delta types into one entry (order check helper)."""
    out: list[str] = []
    for n in names:
        if out and out[-1] == n and n.endswith(".delta"):
            continue
        out.append(n)
    return out


@asynccontextmanager
async def mem_connection(
    server: MockServer,
    resource: str = "/v1/realtime?model=gpt-realtime",
    extra_headers: list[tuple[str, str]] | None = None,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A client websocket joined to ``server`` over a memory stream pair (MockClock-safe)."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_stream, server_stream)
        ws = await trio_websocket.wrap_client_stream(
            nursery, client_stream, "127.0.0.1", resource, extra_headers=extra_headers
        )
        try:
            yield ws
        finally:
            with trio.move_on_after(2):
                await ws.aclose()
            nursery.cancel_scope.cancel()


async def next_event(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    return orjson.loads(await ws.get_message())
