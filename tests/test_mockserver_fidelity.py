"""Fidelity of the embedded server in three harder corners (memory streams, MockClock):
parallel function calls in one response, truncating an assistant audio item while its
response is still streaming, and a server-VAD turn that ends while a response runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio_websocket
from mockserver_helpers import (
    add_user_text,
    append_events,
    mem_connection,
    next_event,
    recv_until,
    response_spec,
    send,
    speech_turn,
)

from orchestrator.mockserver import (
    Distribution,
    LatencyModel,
    MockServer,
    ServerConfig,
    ToolRule,
    read_groundtruth,
)
from orchestrator.mockserver.responder import PlannedCall, ResponseSpec, ResponseStream
from orchestrator.mockserver.tools import ToolCall, decide_tool_call, decide_tool_calls

MS = 1e-3

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME = {
    "type": "function",
    "name": "get_time",
    "parameters": {
        "type": "object",
        "properties": {"zone": {"type": "string"}},
        "required": ["zone"],
    },
}
RULES = (
    ToolRule(r"weather in paris", "get_weather", '{"city": "Paris"}'),
    ToolRule(r"weather in oslo", "get_weather", '{"city": "Oslo"}'),
    ToolRule(r"time in oslo", "get_time", '{"zone": "Europe/Oslo"}'),
)


def _model(**kw: Any) -> LatencyModel:
    base: dict[str, Any] = {
        "response_created_ms": Distribution.parse("fixed:5"),
        "first_delta_ms": Distribution.parse("fixed:100"),
        "delta_interval_ms": Distribution.parse("fixed:10"),
        "response_words": Distribution.parse("fixed:6"),
        "transcription_ms": Distribution.parse("fixed:10"),
    }
    base.update(kw)
    return LatencyModel(**base)


async def _user_text(ws: trio_websocket.WebSocketConnection, text: str) -> str:
    return str((await add_user_text(ws, text))["item"]["id"])


# -- 1. parallel function calls -------------------------------------------------------------


def test_decide_tool_calls_order_dedupe_and_single_call_cases() -> None:
    tools = [WEATHER, TIME]
    text = "weather in Paris, weather in Oslo and the time in Oslo? also weather in paris"
    assert decide_tool_calls(text, tools, "auto", RULES) == [
        ToolCall("get_weather", '{"city": "Paris"}'),  # rule order, each call once
        ToolCall("get_weather", '{"city": "Oslo"}'),
        ToolCall("get_time", '{"zone": "Europe/Oslo"}'),
    ]
    # rules first, then tools named in the text (in the session's tool order) that no
    # matching rule already called
    assert decide_tool_calls("get time and weather in Oslo", tools, "auto", RULES) == [
        ToolCall("get_weather", '{"city": "Oslo"}'),
        ToolCall("get_time", '{"zone":"example"}'),
    ]
    assert decide_tool_calls("get_time or get_weather", tools, "auto", ()) == [
        ToolCall("get_weather", '{"city":"example"}'),
        ToolCall("get_time", '{"zone":"example"}'),
    ]
    forced = {"type": "function", "name": "get_time"}
    assert decide_tool_calls(text, tools, forced, RULES) == [
        ToolCall("get_time", '{"zone": "Europe/Oslo"}')
    ]
    assert decide_tool_calls("hello", tools, "required", ()) == [
        ToolCall("get_weather", '{"city":"example"}')
    ]
    assert decide_tool_calls(text, tools, "none", RULES) == []
    assert decide_tool_call(text, tools, "auto", RULES) == ToolCall(
        "get_weather", '{"city": "Paris"}'
    )


def _spec(**kw: Any) -> ResponseSpec:
    """Two parallel calls: ``f`` (17 argument chars: 3 pieces), then ``g``."""
    calls: dict[str, Any] = dict(
        tool_call=ToolCall("f", '{"a": 1234567890}'),
        audio_chunks=["AAAA"],
        more_calls=(PlannedCall(ToolCall("g", "{}"), "item_2", "call_2"),),
    )
    return response_spec(**{**calls, **kw})


def test_plan_of_two_calls_one_item_each_on_one_delta_timeline() -> None:
    stream = ResponseStream(_spec(), ms_per_word=100)
    assert stream.n_deltas() == 4 and stream.item_ids == ["item_1", "item_2"]
    steps = list(stream.steps())
    per_call = [
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "conversation.item.done",
        "response.output_item.done",
    ]
    names = [s.event["type"] for s in steps]
    collapsed = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
    assert collapsed == ["response.created", *per_call, *per_call, "response.done"]
    by_item = [s for s in steps if "output_index" in s.event]
    assert [s.event["output_index"] for s in by_item] == [0] * 6 + [1] * 4
    assert {s.event.get("item_id", s.event.get("item", {}).get("id")) for s in by_item[6:]} == {
        "item_2"
    }
    deltas = [s for s in steps if s.delta_index is not None]
    assert [s.delta_index for s in deltas] == [0, 1, 2, 3]
    assert [round(s.at, 6) for s in deltas] == [0.2, 0.25, 0.3, 0.35]
    assert [s.mark for s in deltas] == ["first_delta", None, None, None]
    added_2 = next(
        s for s in steps if s.event["type"] == "response.output_item.added" and s.at > 0.2
    )
    assert round(added_2.at, 6) == 0.35  # the second item opens on the next delta slot
    done = steps[-1].event["response"]
    assert [(o["id"], o["call_id"], o["arguments"], o["status"]) for o in done["output"]] == [
        ("item_1", "call_1", '{"a": 1234567890}', "completed"),
        ("item_2", "call_2", "{}", "completed"),
    ]
    assert done["usage"]["output_token_details"]["text_tokens"] == 5  # 19 chars of arguments


def test_cancel_between_and_inside_calls_closes_exactly_what_was_opened() -> None:
    # steps: 0 created | call 1: 1 added, 2 conv.added, 3-5 deltas, 6 args.done,
    # 7 item.done, 8 output_item.done | call 2: 9 added, 10 conv.added, 11 delta, ...
    second = (PlannedCall(ToolCall("g", '{"b": 1}'), "item_2", "call_2"),)
    for generated, expect in (
        # the cancel meets call 1's output_item.done: it is still sent, as completed
        (9, [("item_1", "completed")]),
        # the cancel meets call 2's output_item.added: call 2 never appears
        (10, [("item_1", "completed")]),
        # the cancel meets call 2's only delta: its item closes incomplete, no arguments
        (12, [("item_1", "completed"), ("item_2", "incomplete")]),
    ):
        stream = ResponseStream(_spec(more_calls=second), ms_per_word=100)
        it = stream.steps()
        steps = [next(it) for _ in range(generated)]
        sent = steps[:-1]  # the last one is what the cancel met: never sent
        tail = stream.finish(1.0, "cancelled", {"type": "cancelled", "reason": "client_cancelled"})
        assert list(it) == []
        names = [s.event["type"] for s in sent + tail]
        for closing in (
            "response.function_call_arguments.done",
            "conversation.item.done",
            "response.output_item.done",
        ):
            assert names.count(closing) == len(expect), (generated, closing)
        assert names.count("response.output_item.added") == len(expect)
        output = tail[-1].event["response"]
        assert output["status"] == "cancelled"
        assert [(o["id"], o["status"]) for o in output["output"]] == expect
        if len(expect) == 2:
            assert output["output"][1]["arguments"] == ""


async def test_parallel_calls_on_the_wire_then_one_follow_up(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "gt.jsonl"
    server = MockServer(
        ServerConfig(port=0, latency=_model(), tool_rules=RULES, groundtruth_path=path)
    )
    async with mem_connection(server) as ws:
        await next_event(ws)
        session = {"type": "realtime", "tools": [WEATHER, TIME], "output_modalities": ["text"]}
        await ws.send_message(send({"type": "session.update", "session": session}))
        await next_event(ws)
        user = await _user_text(ws, "What's the weather in Paris and the time in Oslo?")
        t0 = trio.current_time()
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.done")
        rid = events[0]["response"]["id"]
        calls = [e["item"] for e in events if e["type"] == "response.output_item.added"]
        assert [c["type"] for c in calls] == ["function_call", "function_call"]
        for index, item in enumerate(calls):
            seq = [
                e["type"]
                for e in events
                if e.get("output_index") == index
                or (e["type"].startswith("conversation.item") and e["item"]["id"] == item["id"])
            ]
            n_deltas = seq.count("response.function_call_arguments.delta")
            assert n_deltas >= 2
            assert seq == [
                "response.output_item.added",
                "conversation.item.added",
                *["response.function_call_arguments.delta"] * n_deltas,
                "response.function_call_arguments.done",
                "conversation.item.done",
                "response.output_item.done",
            ]
        # strictly one call after the other: the second item opens after the first closed
        types = [e["type"] for e in events]
        first_done = types.index("response.output_item.done")
        assert types.index("response.output_item.added", first_done) > first_done
        assert [types.count(t) for t in ("response.created", "response.done")] == [1, 1]
        args = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        assert [(a["name"], a["arguments"], a["output_index"]) for a in args] == [
            ("get_weather", '{"city": "Paris"}', 0),
            ("get_time", '{"zone": "Europe/Oslo"}', 1),
        ]
        assert all(a["response_id"] == rid for a in args)
        assert len({a["call_id"] for a in args}) == 2 and len({c["id"] for c in calls}) == 2
        added = [e for e in events if e["type"] == "conversation.item.added"]
        assert added[0]["previous_item_id"] == user
        assert added[1]["previous_item_id"] == calls[0]["id"]
        done = events[-1]["response"]
        assert done["status"] == "completed"
        assert [(o["type"], o["id"], o["call_id"]) for o in done["output"]] == [
            ("function_call", c["id"], a["call_id"]) for c, a in zip(calls, args, strict=True)
        ]
        deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
        assert "".join(d["delta"] for d in deltas) == '{"city": "Paris"}{"zone": "Europe/Oslo"}'
        assert {d["call_id"] for d in deltas[:3]} == {args[0]["call_id"]}
        await next_event(ws)  # rate_limits.updated

        # both outputs, then exactly one response.create: the answer uses both
        for a, result in zip(args, ("Sunny, 21 C", "14:05"), strict=True):
            await ws.send_message(
                send(
                    {
                        "type": "conversation.item.create",
                        "item": {
                            "type": "function_call_output",
                            "call_id": a["call_id"],
                            "output": result,
                        },
                    }
                )
            )
            await recv_until(ws, "conversation.item.done")
        await ws.send_message(send({"type": "response.create"}))
        follow = await recv_until(ws, "response.done")
        text = follow[-1]["response"]["output"][0]["content"][0]["text"]
        assert text == "Here is what I found: Sunny, 21 C; 14:05"
    server.groundtruth.close()
    first, second = read_groundtruth(path)
    assert first["item_ids"] == [c["id"] for c in calls]
    assert first["tool_calls"] == [
        {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"name": "get_time", "arguments": '{"zone": "Europe/Oslo"}'},
    ]
    assert first["tool_call"] == first["tool_calls"][0]  # single-call readers keep working
    assert first["first_delta"]["intended"] - t0 == pytest.approx(100 * MS, abs=1e-9)
    assert first["first_delta"]["type"] == "response.function_call_arguments.delta"
    assert second["tool_calls"] == [] and second["tool_call"] is None


def test_read_groundtruth_fills_tool_calls_of_old_records(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    old = [
        {"response_id": "r1", "tool_call": {"name": "f", "arguments": "{}"}},
        {"tool_call": None},
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in old))
    records = read_groundtruth(path)
    assert [r["tool_calls"] for r in records] == [[{"name": "f", "arguments": "{}"}], []]


async def test_single_call_keeps_its_shape(autojump_clock: trio.testing.MockClock) -> None:
    server = MockServer(ServerConfig(port=0, latency=_model(), tool_rules=RULES))
    async with mem_connection(server) as ws:
        await next_event(ws)
        session = {"type": "realtime", "tools": [WEATHER, TIME]}
        await ws.send_message(send({"type": "session.update", "session": session}))
        await next_event(ws)
        await _user_text(ws, "weather in Oslo?")
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.done")
    assert {e["output_index"] for e in events if "output_index" in e} == {0}
    assert [e["type"] for e in events].count("response.output_item.added") == 1
    assert len(events[-1]["response"]["output"]) == 1


# -- 2. truncating a streaming audio item ---------------------------------------------------


def _truncate(item_id: str, ms: int, event_id: str | None = None) -> str:
    msg: dict[str, Any] = {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": ms,
    }
    if event_id:
        msg["event_id"] = event_id
    return send(msg)


async def test_truncate_while_the_response_streams(autojump_clock: trio.testing.MockClock) -> None:
    # real-time pacing: one 100 ms chunk every 100 ms, 10 words = 3500 ms of audio
    model = _model(
        delta_interval_ms=None, realtime_factor=1.0, response_words=Distribution.parse("fixed:10")
    )
    server = MockServer(ServerConfig(port=0, latency=model))
    async with mem_connection(server) as ws:
        await next_event(ws)
        await _user_text(ws, "Tell me a story")
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.content_part.added")
        item_id = events[-1]["item_id"]
        while sum(e["type"] == "response.output_audio.delta" for e in events) < 5:
            events.append(await next_event(ws))
        # past the end of what was sent so far (500 ms): the real error, nothing changes
        await ws.send_message(_truncate(item_id, 600, "t1"))
        await ws.send_message(_truncate(item_id, 300, "t2"))
        got = [await next_event(ws), await next_event(ws)]
        assert [e["type"] for e in got] == ["error", "conversation.item.truncated"]
        assert got[0]["error"]["message"] == "Audio content of 500ms is already shorter than 600ms"
        assert got[0]["error"]["event_id"] == "t1"
        assert (got[1]["item_id"], got[1]["audio_end_ms"]) == (item_id, 300)
        # the response goes on (a truncate is not a cancel) ...
        rest = await recv_until(ws, "response.done")
        names = [e["type"] for e in rest]
        assert names.count("response.output_audio.delta") == 30
        streamed = "".join(
            e["delta"]
            for e in events + rest
            if e["type"] == "response.output_audio_transcript.delta"
        )
        # ... the transcript stream closes with what was streamed, but every later
        # snapshot of the item holds no text the user did not hear
        assert (
            next(e for e in rest if e["type"] == "response.output_audio_transcript.done")[
                "transcript"
            ]
            == streamed
            and len(streamed.split()) == 10
        )
        part = next(e for e in rest if e["type"] == "response.content_part.done")["part"]
        assert part == {"type": "audio", "transcript": ""}
        item_done = next(e for e in rest if e["type"] == "conversation.item.done")["item"]
        assert item_done["content"] == [{"type": "output_audio", "transcript": ""}]
        assert rest[-1]["response"]["status"] == "completed"
        assert rest[-1]["response"]["output"][0]["content"][0]["transcript"] == ""
        await next_event(ws)  # rate_limits.updated
        await ws.send_message(send({"type": "conversation.item.retrieve", "item_id": item_id}))
        assert (await next_event(ws))["item"]["content"][0]["transcript"] == ""
        # the item keeps the length it was cut to
        await ws.send_message(_truncate(item_id, 400))
        err = (await next_event(ws))["error"]
        assert err["message"] == "Audio content of 300ms is already shorter than 400ms"


async def test_truncate_streaming_text_item_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    model = _model(delta_interval_ms=Distribution.parse("fixed:100"))
    server = MockServer(ServerConfig(port=0, latency=model))
    async with mem_connection(server) as ws:
        await next_event(ws)
        await _user_text(ws, "hi")
        await ws.send_message(
            send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        )
        events = await recv_until(ws, "response.output_text.delta")
        await ws.send_message(_truncate(events[-1]["item_id"], 0))
        while (event := await next_event(ws))["type"] != "error":
            assert event["type"] == "response.output_text.delta"
        assert event["error"]["code"] == "unsupported_content_type"


async def test_truncate_then_cancel_leaves_no_unheard_text(
    autojump_clock: trio.testing.MockClock,
) -> None:
    model = _model(delta_interval_ms=None, realtime_factor=1.0)
    server = MockServer(ServerConfig(port=0, latency=model))
    async with mem_connection(server) as ws:
        await next_event(ws)
        await _user_text(ws, "Tell me a story")
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.output_audio.delta")
        item_id = events[-1]["item_id"]
        await ws.send_message(_truncate(item_id, 50))
        await ws.send_message(send({"type": "response.cancel"}))
        rest = await recv_until(ws, "response.done")
    assert [e["type"] for e in rest][0] == "conversation.item.truncated"
    assert "error" not in [e["type"] for e in rest]
    done = rest[-1]["response"]
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    assert done["output"][0]["content"] == [{"type": "output_audio", "transcript": ""}]


# -- 3. a VAD turn that ends while a response runs -----------------------------------------


async def _pace(ws: trio_websocket.WebSocketConnection, frames: list[str]) -> None:
    start = trio.current_time()
    for i, frame in enumerate(frames):
        await trio.sleep_until(start + i * 0.1)
        await ws.send_message(frame)


async def test_turn_ending_during_a_response_is_answered_after_it(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "gt.jsonl"
    model = _model(
        delta_interval_ms=None, realtime_factor=1.0, response_words=Distribution.parse("fixed:10")
    )
    server = MockServer(ServerConfig(port=0, latency=model, groundtruth_path=path))
    async with mem_connection(server) as ws:
        await next_event(ws)
        td = {"type": "server_vad", "interrupt_response": False, "create_response": True}
        session = {"type": "realtime", "audio": {"input": {"turn_detection": td}}}
        await ws.send_message(send({"type": "session.update", "session": session}))
        await next_event(ws)
        await _user_text(ws, "Tell me a story")
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.created")
        async with trio.open_nursery() as nursery:
            # a 2.1 s turn, spoken while the 3.5 s answer streams
            nursery.start_soon(_pace, ws, append_events(speech_turn(1200), 100))
            events += await recv_until(ws, "response.done")
            t_done = trio.current_time()
            events += await recv_until(ws, "response.done")
    names = [e["type"] for e in events]
    committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
    first_done = names.index("response.done")
    assert names.index("input_audio_buffer.speech_stopped") < first_done  # turn ended mid-answer
    assert events[first_done]["response"]["status"] == "completed"  # not interrupted
    created = [i for i, n in enumerate(names) if n == "response.created"]
    assert len(created) == 2 and created[1] > first_done
    assert names[first_done + 1 : created[1]] == ["rate_limits.updated"]
    assert events[-1]["response"]["status"] == "completed"
    server.groundtruth.close()
    first, second = read_groundtruth(path)
    assert (second["anchor"], second["input_item_id"]) == ("queued_turn", committed["item_id"])
    assert second["anchor_time"] == pytest.approx(t_done, abs=1e-9)
    assert second["created"]["actual"] - t_done == pytest.approx(5 * MS, abs=1e-9)


async def test_turn_ending_before_the_barge_in_cancel_completes_is_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    model = _model(delta_interval_ms=None, realtime_factor=1.0)
    server = MockServer(ServerConfig(port=0, latency=model))
    async with mem_connection(server) as ws:
        await next_event(ws)
        await _user_text(ws, "Tell me a story")
        await ws.send_message(send({"type": "response.create"}))
        events = await recv_until(ws, "response.output_audio.delta")
        # the whole turn at once: speech starts and stops within one burst of frames
        for frame in append_events(speech_turn(600), 100):
            await ws.send_message(frame)
        events += await recv_until(ws, "response.done")
        assert events[-1]["response"]["status_details"]["reason"] == "turn_detected"
        events += await recv_until(ws, "response.done")
    names = [e["type"] for e in events]
    assert names.count("response.created") == 2 and names.count("input_audio_buffer.committed") == 1
    assert events[-1]["response"]["status"] == "completed"
