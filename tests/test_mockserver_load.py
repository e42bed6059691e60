"""Many concurrent connections on one server over real loopback sockets."""

from __future__ import annotations

import trio
import trio_websocket
from mockserver_helpers import append_events, fast_config, recv_until, speech_turn

from orchestrator.mockserver import MockServer


async def _one_turn(port: int, frames: list[str], results: list[str]) -> None:
    async with trio_websocket.open_websocket(
        "127.0.0.1", port, "/v1/realtime?model=gpt-realtime", use_ssl=False
    ) as ws:
        await recv_until(ws, "session.created")
        for frame in frames:
            await ws.send_message(frame)
        events = await recv_until(ws, "response.done")
        assert not [e for e in events if e["type"] == "error"]
        assert events[0]["type"] == "input_audio_buffer.speech_started"
        results.append(events[-1]["response"]["status"])


async def test_20_concurrent_audio_turns() -> None:
    server = MockServer(fast_config(seed=3))
    frames = append_events(speech_turn(), 100)
    results: list[str] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            async with trio.open_nursery() as clients:
                for _ in range(20):
                    clients.start_soon(_one_turn, port, frames, results)
            nursery.cancel_scope.cancel()
    assert results == ["completed"] * 20
    assert server.stats.crashes == 0
    assert server.stats.connections_accepted == 20
    assert not server.stats.client_errors
