"""Every entry of the client-event dispatch table, driven with a real client event.

Each case sends the event over a memory stream pair (MockClock) and checks its
effect on the wire; :func:`test_every_entry_has_a_case` keeps the cases and
:data:`~orchestrator.mockserver.dispatch.DISPATCH` in step, so a new entry needs a
test here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket

from orchestrator.audio import silence
from orchestrator.mockserver import Distribution, LatencyModel, MockServer, ServerConfig
from orchestrator.mockserver.dispatch import CLIENT_EVENTS, DISPATCH, check_event
from orchestrator.mockserver.errors import ClientError
from tests.mockserver_helpers import (
    add_user_text,
    append_events,
    mem_connection,
    next_event,
    recv_until,
    send,
    speech_turn,
)

WS = trio_websocket.WebSocketConnection

MODEL = LatencyModel(
    response_created_ms=Distribution.parse("fixed:5"),
    first_delta_ms=Distribution.parse("fixed:200"),
    response_words=Distribution.parse("fixed:6"),
    realtime_factor=1.0,
    transcription_ms=Distribution.parse("fixed:10"),
)


async def _session_update(ws: WS) -> None:
    await ws.send_message(
        send(
            {"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}}
        )
    )
    event = await next_event(ws)
    assert event["type"] == "session.updated"
    assert event["session"]["instructions"] == "Be brief."


async def _append(ws: WS) -> None:
    for frame in append_events(speech_turn(900, lead_ms=200, tail_ms=800), 100):
        await ws.send_message(frame)
    got = [e["type"] for e in await recv_until(ws, "input_audio_buffer.committed")]
    assert got[:3] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]


async def _commit(ws: WS) -> None:
    for frame in append_events(silence(300), 100):
        await ws.send_message(frame)
    await ws.send_message(send({"type": "input_audio_buffer.commit"}))
    committed = await next_event(ws)
    assert committed["type"] == "input_audio_buffer.committed"
    added = await next_event(ws)
    assert added["type"] == "conversation.item.added"
    assert added["item"]["id"] == committed["item_id"]
    assert added["item"]["role"] == "user"


async def _clear(ws: WS) -> None:
    for frame in append_events(silence(300), 100):
        await ws.send_message(frame)
    await ws.send_message(send({"type": "input_audio_buffer.clear"}))
    assert (await next_event(ws))["type"] == "input_audio_buffer.cleared"
    # nothing left to commit
    await ws.send_message(send({"type": "input_audio_buffer.commit"}))
    error = await next_event(ws)
    assert error["type"] == "error"
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"


async def _item_create(ws: WS) -> None:
    added = await add_user_text(ws, "hello there")
    assert added["item"]["content"][0]["text"] == "hello there"
    assert added["item"]["role"] == "user"


async def _item_retrieve(ws: WS) -> None:
    added = await add_user_text(ws, "remember me")
    item_id = added["item"]["id"]
    await ws.send_message(send({"type": "conversation.item.retrieve", "item_id": item_id}))
    event = await next_event(ws)
    assert event["type"] == "conversation.item.retrieved"
    assert event["item"]["id"] == item_id


async def _item_truncate(ws: WS) -> None:
    await ws.send_message(send({"type": "response.create"}))
    done = (await recv_until(ws, "response.done"))[-1]
    item_id = done["response"]["output"][0]["id"]
    await ws.send_message(
        send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 100,
            }
        )
    )
    event = (await recv_until(ws, "conversation.item.truncated"))[-1]
    assert (event["item_id"], event["audio_end_ms"]) == (item_id, 100)


async def _item_delete(ws: WS) -> None:
    added = await add_user_text(ws, "forget me")
    item_id = added["item"]["id"]
    await ws.send_message(send({"type": "conversation.item.delete", "item_id": item_id}))
    event = await next_event(ws)
    assert event["type"] == "conversation.item.deleted"
    assert event["item_id"] == item_id
    await ws.send_message(send({"type": "conversation.item.retrieve", "item_id": item_id}))
    assert (await next_event(ws))["type"] == "error"


async def _response_create(ws: WS) -> None:
    await ws.send_message(send({"type": "response.create"}))
    events = await recv_until(ws, "response.done")
    assert events[0]["type"] == "response.created"
    assert events[-1]["response"]["status"] == "completed"
    assert events[-1]["response"]["id"] == events[0]["response"]["id"]


async def _response_cancel(ws: WS) -> None:
    await ws.send_message(send({"type": "response.create"}))
    created = await next_event(ws)
    assert created["type"] == "response.created"
    await ws.send_message(
        send({"type": "response.cancel", "response_id": created["response"]["id"]})
    )
    done = (await recv_until(ws, "response.done"))[-1]
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "client_cancelled"


async def _output_audio_clear(ws: WS) -> None:
    # a no-op on a websocket: no error, no event; the next event answers the next request
    await ws.send_message(send({"type": "output_audio_buffer.clear"}))
    await _session_update(ws)


async def _transcription_update(ws: WS) -> None:
    # a transcription session: the VAD turn is transcribed and never answered
    session = {"input_audio_transcription": {"model": "whisper-1"}}
    await ws.send_message(send({"type": "transcription_session.update", "session": session}))
    event = await next_event(ws)
    assert event["type"] == "transcription_session.updated"
    assert event["session"]["input_audio_transcription"]["model"] == "whisper-1"
    for frame in append_events(speech_turn(900, lead_ms=200, tail_ms=800), 100):
        await ws.send_message(frame)
    got = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
    assert not any(e["type"].startswith("response.") for e in got)


CASES: dict[str, Callable[[WS], Awaitable[None]]] = {
    "session.update": _session_update,
    "transcription_session.update": _transcription_update,
    "input_audio_buffer.append": _append,
    "input_audio_buffer.commit": _commit,
    "input_audio_buffer.clear": _clear,
    "conversation.item.create": _item_create,
    "conversation.item.retrieve": _item_retrieve,
    "conversation.item.truncate": _item_truncate,
    "conversation.item.delete": _item_delete,
    "response.create": _response_create,
    "response.cancel": _response_cancel,
    "output_audio_buffer.clear": _output_audio_clear,
}


def test_every_entry_has_a_case() -> None:
    assert set(CASES) == set(DISPATCH) == set(CLIENT_EVENTS)


@pytest.mark.parametrize("etype", sorted(DISPATCH))
async def test_dispatch_entry(etype: str, autojump_clock: trio.testing.MockClock) -> None:
    server = MockServer(ServerConfig(port=0, latency=MODEL))
    with trio.fail_after(60):
        async with mem_connection(server) as ws:
            assert (await next_event(ws))["type"] == "session.created"
            await CASES[etype](ws)
    assert server.stats.client_errors.get("unknown_parameter", 0) == 0


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({}, "missing_required_parameter"),
        ({"type": 5}, "invalid_type"),
        ({"type": "nope"}, "invalid_value"),
        ({"type": "input_audio_buffer.clear", "extra": 1}, "unknown_parameter"),
    ],
)
def test_check_event_refuses_bad_envelopes(data: dict[str, Any], code: str) -> None:
    with pytest.raises(ClientError) as info:
        check_event(data)
    assert info.value.code == code


def test_check_event_drops_unset_nulls() -> None:
    etype, data, entry = check_event({"type": "response.create", "response": None})
    assert etype == "response.create" and entry is DISPATCH[etype]
    assert "response" not in data
