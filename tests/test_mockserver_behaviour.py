"""Handshake routing, bad input, conversation items, dialects and faults (memory streams,
MockClock)."""

from __future__ import annotations

import base64
import logging
from typing import Any

import numpy as np
import pytest
import trio
import trio_websocket
from mockserver_helpers import (
    FAST,
    append_events,
    mem_connection,
    next_event,
    recv_until,
    send,
    speech_turn,
)

from orchestrator.audio import resample, silence, ulaw_encode
from orchestrator.mockserver import (
    Distribution,
    FaultConfig,
    LatencyModel,
    MockServer,
    ServerConfig,
)

KEY = "sk-secret-value-123"


def _server(**kw: Any) -> MockServer:
    kw.setdefault("port", 0)
    kw.setdefault("latency", FAST)
    return MockServer(ServerConfig(**kw))


async def _reject_status(
    server: MockServer, resource: str, headers: list[tuple[str, str]] | None = None
) -> int:
    statuses: list[int] = []
    try:
        async with mem_connection(server, resource, headers):
            pass
    except* trio_websocket.ConnectionRejected as group:
        statuses = [e.status_code for e in _leaves(group)]  # type: ignore[attr-defined]
    assert statuses, "handshake was not rejected"
    return statuses[0]


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


# -- handshake ----------------------------------------------------------------------------


async def test_handshake_paths_auth_and_dialect(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = _server(api_key=KEY)
    assert await _reject_status(server, "/v1/realtime?model=gpt-realtime") == 401
    assert (
        await _reject_status(
            server, "/v1/realtime?model=gpt-realtime", [("Authorization", "Bearer nope")]
        )
        == 401
    )
    assert (
        await _reject_status(server, "/v2/other?model=x", [("Authorization", f"Bearer {KEY}")])
        == 404
    )
    assert server.stats.connections_accepted == 0
    async with mem_connection(
        server, "/v1/realtime?model=gpt-realtime", [("Authorization", f"Bearer {KEY}")]
    ) as ws:
        created = await next_event(ws)
        assert created["session"]["type"] == "realtime"
    async with mem_connection(
        server, "/openai/v1/realtime?model=my-deploy", [("api-key", KEY)]
    ) as ws:
        assert (await next_event(ws))["session"]["model"] == "my-deploy"
    legacy = "/openai/realtime?api-version=2024-10-01-preview&deployment=gpt-4o-realtime-preview"
    async with mem_connection(
        server, legacy, [("api-key", KEY), ("OpenAI-Beta", "realtime=v1")]
    ) as ws:
        created = await next_event(ws)
        assert created["session"]["model"] == "gpt-4o-realtime-preview"
        assert created["session"]["input_audio_format"] == "pcm16"  # beta shape
        assert "audio" not in created["session"]
    assert await _reject_status(server, "/openai/realtime?deployment=x", [("api-key", KEY)]) == 400
    assert server.stats.rejected["unauthorized"] == 2
    assert KEY not in caplog.text


async def test_missing_model_is_refused_like_the_service(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with mem_connection(server, "/v1/realtime") as ws:
        event = await next_event(ws)
        assert event["error"]["code"] == "missing_model"
        with pytest.raises(trio_websocket.ConnectionClosed) as info:
            await ws.get_message()
        assert info.value.reason.code == 4000


async def test_reject_percent_gives_429(autojump_clock: trio.testing.MockClock) -> None:
    server = _server(faults=FaultConfig(reject_percent=100))
    assert await _reject_status(server, "/v1/realtime?model=gpt-realtime") == 429
    assert server.stats.faults["reject_429"] == 1


# -- bad input ----------------------------------------------------------------------------

BAD_FRAMES: list[tuple[str | bytes, str, str | None]] = [
    ("not json", "invalid_json", None),
    (b"\x00\x01", "invalid_event", None),
    ('{"type": "nope", "event_id": "e1"}', "invalid_value", "type"),
    ('{"event_id": "e1"}', "missing_required_parameter", "type"),
    ('{"type": 5}', "invalid_type", "type"),
    ('{"type": "response.create", "bogus": 1}', "unknown_parameter", "bogus"),
    ('{"type": "input_audio_buffer.append"}', "missing_required_parameter", "audio"),
    ('{"type": "input_audio_buffer.append", "audio": "@@@"}', "invalid_value", "audio"),
    ('{"type": "input_audio_buffer.append", "audio": 12}', "invalid_type", "audio"),
    (
        '{"type": "input_audio_buffer.commit", "event_id": "c1"}',
        "input_audio_buffer_commit_empty",
        None,
    ),
    (
        '{"type": "session.update", "session": {"instructions": "x"}}',
        "missing_required_parameter",
        "session.type",
    ),
    (
        '{"type": "session.update", "session": {"type": "realtime", "bogus_field": 1}}',
        "unknown_parameter",
        "session.bogus_field",
    ),
    (
        '{"type": "session.update", "session": {"type": "realtime", "turn_detection": null}}',
        "unknown_parameter",
        "session.turn_detection",
    ),
    (
        '{"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}}',
        "integer_below_min_value",
        "session.audio.input.format.rate",
    ),
    (
        '{"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": "high"}}}}}',
        "invalid_type",
        "session.audio.input.turn_detection.threshold",
    ),
    (
        '{"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "bob"}}}}',
        "invalid_value",
        "session.audio.output.voice",
    ),
    (
        '{"type": "conversation.item.create", "item": {"type": "message", "role": "robot", "content": []}}',
        "invalid_value",
        "item.role",
    ),
    (
        '{"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": []}, "previous_item_id": "nope"}',
        "item_create_invalid_previous_item_id",
        "previous_item_id",
    ),
    (
        '{"type": "conversation.item.retrieve", "item_id": "nope"}',
        "item_retrieve_invalid_item_id",
        None,
    ),
    (
        '{"type": "conversation.item.delete", "item_id": "nope"}',
        "item_delete_invalid_item_id",
        None,
    ),
    (
        '{"type": "conversation.item.truncate", "item_id": "nope", "content_index": 0, "audio_end_ms": 5}',
        "item_truncate_invalid_item_id",
        "item_id",
    ),
    ('{"type": "response.cancel"}', "response_cancel_not_active", None),
    (
        '{"type": "response.create", "response": {"output_modalities": ["video"]}}',
        "invalid_value",
        "response.output_modalities[0]",
    ),
]


async def test_bad_input_gets_real_errors_and_connection_survives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with mem_connection(server) as ws:
        await next_event(ws)
        for frame, code, param in BAD_FRAMES:
            await ws.send_message(frame)
            event = await next_event(ws)
            assert event["type"] == "error", frame
            err = event["error"]
            assert (err["code"], err["param"]) == (code, param), frame
            assert err["type"] == "invalid_request_error"
            assert err["message"]
        # the client's event_id is echoed
        await ws.send_message('{"type": "nope", "event_id": "evt_42"}')
        assert (await next_event(ws))["error"]["event_id"] == "evt_42"
        # the connection still works
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.done")
        assert events[-1]["response"]["status"] == "completed"
    assert sum(server.stats.client_errors.values()) == len(BAD_FRAMES) + 1
    assert server.stats.crashes == 0


async def test_commit_too_small_reports_buffered_ms(autojump_clock: trio.testing.MockClock) -> None:
    server = _server()
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message(
            send(
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
                }
            )
        )
        assert (await next_event(ws))["session"]["audio"]["input"]["turn_detection"] is None
        for frame in append_events(silence(96), 100):
            await ws.send_message(frame)
        await ws.send_message(send({"type": "input_audio_buffer.commit"}))
        err = (await next_event(ws))["error"]
        assert "buffer only has 96.00ms of audio" in err["message"]
        for frame in append_events(speech_turn(), 100):
            await ws.send_message(frame)
        await ws.send_message(send({"type": "input_audio_buffer.commit"}))
        committed = await next_event(ws)
        assert committed["type"] == "input_audio_buffer.committed"  # no VAD events without VAD
        added = await next_event(ws)
        assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]
        await next_event(ws)
        await ws.send_message(send({"type": "input_audio_buffer.clear"}))
        assert (await next_event(ws))["type"] == "input_audio_buffer.cleared"


async def test_rejected_update_is_discarded_whole(autojump_clock: trio.testing.MockClock) -> None:
    server = _server()
    async with mem_connection(server) as ws:
        await next_event(ws)
        bad = {"type": "realtime", "instructions": "new", "audio": {"output": {"speed": 9}}}
        await ws.send_message(send({"type": "session.update", "session": bad}))
        assert (await next_event(ws))["error"]["code"] == "decimal_above_max_value"
        await ws.send_message(
            send({"type": "session.update", "session": {"type": "realtime", "tool_choice": "none"}})
        )
        session = (await next_event(ws))["session"]
        assert session["instructions"] != "new" and session["tool_choice"] == "none"


async def test_oversized_message_closes_1009(autojump_clock: trio.testing.MockClock) -> None:
    server = _server(max_message_size=4096)
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message("x" * 10_000)
        with pytest.raises(trio_websocket.ConnectionClosed) as info:
            await ws.get_message()
        assert info.value.reason.code == 1009
    assert server.stats.client_errors["message_too_big"] == 1


async def test_crashing_connection_does_not_affect_others(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.mockserver import state

    def boom(self: object, item_id: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(state.Conversation, "delete_item", boom)
    server = _server()
    async with mem_connection(server) as good, mem_connection(server) as bad:
        await next_event(good)
        await next_event(bad)
        await bad.send_message(send({"type": "conversation.item.delete", "item_id": "x"}))
        with pytest.raises(trio_websocket.ConnectionClosed):
            await bad.get_message()
        await good.send_message(send({"type": "response.create"}))
        assert (await recv_until(good, "response.done"))[-1]["response"]["status"] == "completed"
    assert server.stats.crashes == 1


# -- items --------------------------------------------------------------------------------


async def test_item_placement_retrieve_delete_truncate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with mem_connection(server) as ws:
        await next_event(ws)

        async def create(item: dict[str, Any], prev: str | None = None) -> dict[str, Any]:
            msg: dict[str, Any] = {"type": "conversation.item.create", "item": item}
            if prev is not None:
                msg["previous_item_id"] = prev
            await ws.send_message(send(msg))
            added = await next_event(ws)
            assert (await next_event(ws))["type"] == "conversation.item.done"
            return added

        a = await create(
            {
                "id": "item_a",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "a"}],
            }
        )
        assert a["previous_item_id"] is None and a["item"]["id"] == "item_a"
        b = await create(
            {
                "id": "b" * 32,
                "type": "message",
                "role": "system",
                "content": [{"type": "input_text", "text": "b"}],
            },
            "root",
        )
        assert b["previous_item_id"] is None
        c = await create(
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "c"}],
            },
            "item_a",
        )
        assert c["previous_item_id"] == "item_a"
        await ws.send_message(send({"type": "conversation.item.retrieve", "item_id": "item_a"}))
        got = await next_event(ws)
        assert got["type"] == "conversation.item.retrieved" and got["item"]["id"] == "item_a"
        await ws.send_message(
            send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": "item_a",
                    "content_index": 0,
                    "audio_end_ms": 0,
                }
            )
        )
        assert (await next_event(ws))["error"]["code"] == "unsupported_content_type"
        await ws.send_message(send({"type": "conversation.item.delete", "item_id": "item_a"}))
        deleted = await next_event(ws)
        assert (deleted["type"], deleted["item_id"]) == ("conversation.item.deleted", "item_a")
        # an assistant audio response can be truncated inside its generated audio only
        await ws.send_message(send({"type": "response.create"}))
        done = (await recv_until(ws, "response.done"))[-1]["response"]
        item_id = done["output"][0]["id"]
        total = 6 * 350  # FAST: 6 words
        await ws.send_message(
            send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": total + 50,
                }
            )
        )
        await next_event(ws)  # rate_limits.updated
        err = (await next_event(ws))["error"]
        assert (
            err["message"] == f"Audio content of {total}ms is already shorter than {total + 50}ms"
        )
        await ws.send_message(
            send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": 700,
                }
            )
        )
        truncated = await next_event(ws)
        assert (
            truncated["type"] == "conversation.item.truncated" and truncated["audio_end_ms"] == 700
        )
        await ws.send_message(send({"type": "conversation.item.retrieve", "item_id": item_id}))
        assert (await next_event(ws))["item"]["content"][0]["transcript"] == ""


async def test_active_response_conflict_and_out_of_band(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server()
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message(send({"type": "response.create"}))
        await ws.send_message(send({"type": "response.create", "event_id": "second"}))
        events = await recv_until(ws, "response.done")
        errors = [e for e in events if e["type"] == "error"]
        assert len(errors) == 1
        assert errors[0]["error"]["code"] == "conversation_already_has_active_response"
        assert errors[0]["error"]["event_id"] == "second"
        assert sum(e["type"] == "response.created" for e in events) == 1
        await next_event(ws)  # rate limits
        oob = {
            "conversation": "none",
            "metadata": {"topic": "summary"},
            "output_modalities": ["text"],
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "summarize"}],
                }
            ],
        }
        await ws.send_message(send({"type": "response.create", "response": oob}))
        events = await recv_until(ws, "response.done")
        names = [e["type"] for e in events]
        assert "conversation.item.added" not in names and "response.output_text.delta" in names
        assert events[-1]["response"]["conversation_id"] is None
        assert events[-1]["response"]["metadata"] == {"topic": "summary"}


async def test_max_output_tokens_gives_incomplete(autojump_clock: trio.testing.MockClock) -> None:
    server = _server()
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message(
            send(
                {
                    "type": "response.create",
                    "response": {"max_output_tokens": 2, "output_modalities": ["text"]},
                }
            )
        )
        done = (await recv_until(ws, "response.done"))[-1]["response"]
        assert done["status"] == "incomplete"
        assert done["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
        assert len(done["output"][0]["content"][0]["text"].split()) == 2


async def test_g711_ulaw_in_and_out(autojump_clock: trio.testing.MockClock) -> None:
    server = _server()
    async with mem_connection(server) as ws:
        await next_event(ws)
        fmt = {"type": "audio/pcmu"}
        await ws.send_message(
            send(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "audio": {"input": {"format": fmt}, "output": {"format": fmt}},
                    },
                }
            )
        )
        assert (await next_event(ws))["session"]["audio"]["output"]["format"] == fmt
        audio8k = resample(speech_turn(), 24000, 8000)
        for i in range(0, audio8k.size, 800):
            payload = base64.b64encode(
                np.asarray(ulaw_encode(audio8k[i : i + 800]), np.uint8).tobytes()
            ).decode()
            await ws.send_message(send({"type": "input_audio_buffer.append", "audio": payload}))
        events = await recv_until(ws, "response.done")
        names = [e["type"] for e in events]
        assert names[0] == "input_audio_buffer.speech_started"
        deltas = [e["delta"] for e in events if e["type"] == "response.output_audio.delta"]
        assert {len(base64.b64decode(d)) for d in deltas} == {800}  # 100 ms at 8 kHz, 1 byte/sample


async def test_semantic_vad_and_scripted_transcripts_drive_tools(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from orchestrator.mockserver import ToolRule

    rules = (ToolRule("book (a|the) table", "book_table", '{"guests": 2}'),)
    server = _server(tool_rules=rules, spoken_transcripts=("Please book a table for two.",))
    tool = {
        "type": "function",
        "name": "book_table",
        "parameters": {"type": "object", "properties": {}},
    }
    async with mem_connection(server) as ws:
        await next_event(ws)
        session = {
            "type": "realtime",
            "tools": [tool],
            "audio": {
                "input": {
                    "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
                    "transcription": {"model": "gpt-4o-transcribe"},
                }
            },
        }
        await ws.send_message(send({"type": "session.update", "session": session}))
        assert (await next_event(ws))["session"]["audio"]["input"]["turn_detection"][
            "eagerness"
        ] == "high"
        for frame in append_events(speech_turn(tail_ms=800), 100):
            await ws.send_message(frame)
        events = await recv_until(ws, "response.done")
        call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert (call["name"], call["arguments"]) == ("book_table", '{"guests": 2}')
        while not any(
            e["type"] == "conversation.item.input_audio_transcription.completed" for e in events
        ):
            events.append(await next_event(ws))
        event = next(
            e
            for e in events
            if e["type"] == "conversation.item.input_audio_transcription.completed"
        )
        assert event["transcript"] == "Please book a table for two."
        assert event["usage"]["type"] == "tokens"


# -- faults -------------------------------------------------------------------------------


async def _close_code(
    ws: trio_websocket.WebSocketConnection,
) -> tuple[int, str | None, list[dict[str, Any]]]:
    events = []
    try:
        while True:
            events.append(await next_event(ws))
    except trio_websocket.ConnectionClosed as exc:
        return exc.reason.code, exc.reason.reason, events


async def test_fault_close_after_responses(autojump_clock: trio.testing.MockClock) -> None:
    server = _server(faults=FaultConfig(close_after_responses=1))
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message(send({"type": "response.create"}))
        code, reason, events = await _close_code(ws)
    assert code == 1011 and reason is not None and reason.startswith("fault:")
    assert events[-1]["type"] == "rate_limits.updated"


async def test_fault_close_after_seconds_and_session_expiry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(faults=FaultConfig(close_after_s=3.0))
    async with mem_connection(server) as ws:
        t0 = trio.current_time()
        code, reason, _ = await _close_code(ws)
        assert code == 1011 and trio.current_time() - t0 == pytest.approx(3.0)
    server = _server(faults=FaultConfig(session_max_s=120))
    async with mem_connection(server) as ws:
        code, reason, events = await _close_code(ws)
    assert code == 1001
    assert events[-1]["error"]["code"] == "session_expired"
    assert reason == "Your session hit the maximum duration of 2 minutes."


async def test_fault_error_stall_and_drop(autojump_clock: trio.testing.MockClock) -> None:
    model = LatencyModel(
        first_delta_ms=Distribution.parse("fixed:50"),
        delta_interval_ms=Distribution.parse("fixed:10"),
        response_words=Distribution.parse("fixed:10"),
    )
    server = _server(latency=model, faults=FaultConfig(error_probability=1.0))
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.done")
        assert any(e["type"] == "error" and e["error"]["type"] == "server_error" for e in events)
        assert events[-1]["response"]["status"] == "failed"
        assert events[-1]["response"]["status_details"]["type"] == "failed"

    server = _server(latency=model, faults=FaultConfig(stall_probability=1.0, stall_ms=1500))
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message(send({"type": "response.create"}))
        times = []
        while (event := await next_event(ws))["type"] != "response.done":
            if event["type"] == "response.output_audio.delta":
                times.append(trio.current_time())
        gaps = sorted(round(b - a, 6) for a, b in zip(times, times[1:], strict=False))
        assert gaps[-1] == pytest.approx(1.51) and gaps[0] == pytest.approx(0.01)

    server = _server(latency=model, faults=FaultConfig(close_probability=1.0))
    async with mem_connection(server) as ws:
        await next_event(ws)
        await ws.send_message(send({"type": "response.create"}))
        code, reason, events = await _close_code(ws)
        assert code == 1011 and "response.done" not in [e["type"] for e in events]
    assert server.stats.faults["close_probability"] == 1


async def test_beta_dialect_event_names(autojump_clock: trio.testing.MockClock) -> None:
    server = _server()
    async with mem_connection(server, extra_headers=[("OpenAI-Beta", "realtime=v1")]) as ws:
        session = (await next_event(ws))["session"]
        assert session["turn_detection"]["silence_duration_ms"] == 200
        assert (await next_event(ws))["type"] == "conversation.created"  # beta only
        await ws.send_message(
            send(
                {
                    "type": "session.update",
                    "session": {
                        "modalities": ["text"],
                        "temperature": 0.7,
                        "input_audio_format": "g711_alaw",
                    },
                }
            )
        )
        updated = (await next_event(ws))["session"]
        assert (updated["modalities"], updated["temperature"], updated["input_audio_format"]) == (
            ["text"],
            0.7,
            "g711_alaw",
        )
        await ws.send_message(send({"type": "session.update", "session": {"type": "realtime"}}))
        assert (await next_event(ws))["error"]["param"] == "session.type"
        await ws.send_message(send({"type": "response.create"}))
        names = [e["type"] for e in await recv_until(ws, "response.done")]
        assert "response.text.delta" in names and "response.text.done" in names
        assert names[:2] == ["response.created", "rate_limits.updated"]


async def test_server_pings_are_answered(autojump_clock: trio.testing.MockClock) -> None:
    server = _server(ping_interval_s=20.0)
    async with mem_connection(server) as ws:
        await next_event(ws)
        await trio.sleep(65)
        await ws.send_message(send({"type": "response.create"}))
        assert (await recv_until(ws, "response.done"))[-1]["response"]["status"] == "completed"
    assert server.stats.pongs_received == 3
