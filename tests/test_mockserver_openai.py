"""Acceptance: the official ``openai`` client works against the mock server unchanged.

Every server event received is validated against the ``openai`` package's server-event
models for the dialect (GA: ``openai.types.realtime``; beta:
``openai.types.beta.realtime``) and decoded by our own protocol codec. The client is
asyncio, so these are sync tests running ``asyncio.run``; the trio server runs in a
background thread (port 0). Everything is guarded by timeouts.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import pytest
from mockserver_helpers import collapse, fast_config, server_in_thread, speech_turn, user_text

from orchestrator.mockserver import ToolRule
from orchestrator.protocol import Dialect, UnknownServerEvent, decode_server_event

openai = pytest.importorskip("openai")
pytest.importorskip("websockets")
pydantic = pytest.importorskip("pydantic")

from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent  # noqa: E402
from openai.types.realtime import RealtimeServerEvent as GAServerEvent  # noqa: E402

GA_ADAPTER: Any = pydantic.TypeAdapter(GAServerEvent)
BETA_ADAPTER: Any = pydantic.TypeAdapter(BetaServerEvent)
KEY = "sk-mock-test-key"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


class Recorder:
    """Receives raw frames from an openai connection, validates and keeps them."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect
        self.adapter = GA_ADAPTER if dialect is Dialect.GA else BETA_ADAPTER
        self.events: list[dict[str, Any]] = []

    async def next(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.recv_bytes(), 10)
        model = self.adapter.validate_json(raw)  # raises on any schema mismatch
        data = orjson.loads(raw)
        assert model.type == data["type"]
        ours = decode_server_event(raw, self.dialect)
        assert not isinstance(ours, UnknownServerEvent), data["type"]
        self.events.append(data)
        return data

    async def until(self, etype: str) -> list[dict[str, Any]]:
        got = []
        for _ in range(5000):
            event = await self.next()
            got.append(event)
            if event["type"] == etype:
                return got
        raise AssertionError(f"no {etype}")


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


AUDIO_RESPONSE_GA = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_audio_transcript.delta",
    "response.output_audio.delta",
]
AUDIO_TAIL_GA = [
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "conversation.item.done",
    "response.output_item.done",
    "response.done",
    "rate_limits.updated",
]


async def _ga_flow(port: int) -> None:
    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        rec = Recorder(conn, Dialect.GA)
        created = await rec.next()
        assert created["type"] == "session.created"
        session = created["session"]
        td = session["audio"]["input"]["turn_detection"]
        assert (
            td["type"],
            td["threshold"],
            td["prefix_padding_ms"],
            td["silence_duration_ms"],
        ) == (
            "server_vad",
            0.5,
            300,
            200,
        )
        assert session["model"] == "gpt-realtime" and session["expires_at"] > 0

        # session.update
        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": "Be brief.",
                "tools": [WEATHER_TOOL],
                "audio": {"input": {"transcription": {"model": "whisper-1"}}},
            }
        )
        updated = await rec.next()
        assert updated["type"] == "session.updated"
        assert updated["session"]["instructions"] == "Be brief."
        assert updated["session"]["audio"]["input"]["transcription"] == {
            "model": "whisper-1",
            "language": None,
            "prompt": None,
        }

        # text turn, audio out
        await conn.conversation.item.create(item=user_text("Hello there"))
        await conn.response.create()
        turn = await rec.until("rate_limits.updated")
        names = collapse([e["type"] for e in turn])
        assert names[:2] == ["conversation.item.added", "conversation.item.done"]
        assert names[2:8] == AUDIO_RESPONSE_GA
        assert names[-7:] == AUDIO_TAIL_GA
        deltas = [e for e in turn if e["type"] == "response.output_audio.delta"]
        assert all(len(base64.b64decode(d["delta"])) % 2 == 0 for d in deltas)
        done = turn[-2]["response"]
        assert done["status"] == "completed" and done["usage"]["total_tokens"] > 0
        transcript = "".join(
            e["delta"] for e in turn if e["type"] == "response.output_audio_transcript.delta"
        )
        assert done["output"][0]["content"][0]["transcript"] == transcript

        # audio turn with server VAD (+ input transcription)
        audio = speech_turn()
        for i in range(0, audio.size, 2400):
            chunk = audio[i : i + 2400]
            await conn.input_audio_buffer.append(audio=base64.b64encode(chunk.tobytes()).decode())
        turn = await rec.until("response.done")
        names = collapse([e["type"] for e in turn])
        assert names[:5] == [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
        ]
        assert turn[0]["audio_start_ms"] == 0  # 300 ms lead minus 300 ms prefix padding
        assert "conversation.item.input_audio_transcription.completed" in names
        assert turn[-1]["response"]["status"] == "completed"
        await rec.until("rate_limits.updated")

        # tool call round (the rule matches the text; the tool is offered by the session)
        await conn.conversation.item.create(item=user_text("What is the weather in London?"))
        await conn.response.create(response={"output_modalities": ["text"]})
        turn = await rec.until("response.done")
        args_done = next(e for e in turn if e["type"] == "response.function_call_arguments.done")
        assert args_done["name"] == "get_weather"
        assert orjson.loads(args_done["arguments"]) == {"city": "London"}
        assert "response.function_call_arguments.delta" in collapse([e["type"] for e in turn])
        await rec.until("rate_limits.updated")
        await conn.conversation.item.create(
            item={
                "type": "function_call_output",
                "call_id": args_done["call_id"],
                "output": "Foggy, 12 C",
            }
        )
        await conn.response.create()
        turn = await rec.until("response.done")
        assert "Foggy, 12 C" in turn[-1]["response"]["output"][0]["content"][0]["transcript"]
        await rec.until("rate_limits.updated")

        # cancel
        await conn.conversation.item.create(item=user_text("Tell me a story"))
        await conn.response.create(response={"metadata": {"req": "r1"}})
        created_evt = await rec.until("response.created")
        assert created_evt[-1]["response"]["metadata"] == {"req": "r1"}
        await conn.response.cancel()
        turn = await rec.until("response.done")
        done = turn[-1]["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        assert done["metadata"] == {"req": "r1"}

        # nothing active any more: the real error
        await conn.response.cancel(event_id="evt_cancel_2")
        err = await rec.until("error")
        assert err[-1]["error"]["code"] == "response_cancel_not_active"
        assert err[-1]["error"]["event_id"] == "evt_cancel_2"


def test_openai_ga_client_full_session() -> None:
    rules = (
        ToolRule(
            pattern=r"weather in (london)", tool="get_weather", arguments='{"city": "London"}'
        ),
    )
    config = fast_config(api_key=KEY, tool_rules=rules, latency=_slow_enough())
    with server_in_thread(config) as (server, port):
        _run(_ga_flow(port))
    assert server.stats.crashes == 0
    assert server.stats.responses_done["cancelled"] == 1


def _slow_enough() -> Any:
    # deltas paced (10 ms apart) so that a cancel sent after response.created lands mid-response
    from orchestrator.mockserver import Distribution, LatencyModel

    return LatencyModel(
        response_created_ms=Distribution.parse("fixed:5"),
        first_delta_ms=Distribution.parse("fixed:200"),
        delta_interval_ms=Distribution.parse("fixed:10"),
        response_words=Distribution.parse("fixed:8"),
        transcription_ms=Distribution.parse("fixed:10"),
    )


async def _beta_flow(port: int) -> None:
    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        rec = Recorder(conn, Dialect.BETA)
        created = await rec.next()
        assert created["type"] == "session.created"
        assert created["session"]["modalities"] == ["audio", "text"]
        assert created["session"]["input_audio_format"] == "pcm16"
        assert created["session"]["temperature"] == 0.8
        conversation = await rec.next()  # beta only, right after session.created
        assert conversation["type"] == "conversation.created"
        assert conversation["conversation"]["object"] == "realtime.conversation"
        assert conversation["conversation"]["id"].startswith("conv_")
        await conn.session.update(
            session={
                "instructions": "Be brief.",
                "tools": [WEATHER_TOOL],
                "input_audio_transcription": {"model": "whisper-1"},
            }
        )
        assert (await rec.next())["type"] == "session.updated"

        # text turn, audio out
        await conn.conversation.item.create(item=user_text("Hi"))
        await conn.response.create()
        turn = await rec.until("response.done")
        names = collapse([e["type"] for e in turn])
        assert names[:3] == ["conversation.item.created", "response.created", "rate_limits.updated"]
        assert "response.audio.delta" in names and "response.audio_transcript.delta" in names
        assert "conversation.item.done" not in names
        assert turn[-1]["response"]["output"][0]["object"] == "realtime.item"
        assert turn[-1]["response"]["output"][0]["content"][0]["type"] == "audio"

        # audio turn with server VAD
        audio = speech_turn()
        for i in range(0, audio.size, 2400):
            await conn.input_audio_buffer.append(
                audio=base64.b64encode(audio[i : i + 2400].tobytes()).decode()
            )
        turn = await rec.until("response.done")
        names = collapse([e["type"] for e in turn])
        assert names[:4] == [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.created",
        ]

        # tool call round by name matching
        await conn.conversation.item.create(item=user_text("call get_weather please"))
        await conn.response.create()
        turn = await rec.until("response.done")
        args_done = next(e for e in turn if e["type"] == "response.function_call_arguments.done")
        assert args_done["name"] == "get_weather"
        assert orjson.loads(args_done["arguments"]) == {"city": "example"}
        await conn.conversation.item.create(
            item={
                "type": "function_call_output",
                "call_id": args_done["call_id"],
                "output": "Sunny",
            }
        )
        await conn.response.create(response={"modalities": ["text"]})
        turn = await rec.until("response.done")
        assert "response.text.delta" in [e["type"] for e in turn]
        assert "Sunny" in turn[-1]["response"]["output"][0]["content"][0]["text"]

        # cancel
        await conn.response.create()
        await rec.until("response.created")
        await conn.response.cancel()
        turn = await rec.until("response.done")
        assert turn[-1]["response"]["status_details"]["reason"] == "client_cancelled"


def test_openai_beta_client_full_session() -> None:
    with server_in_thread(fast_config(api_key=KEY, latency=_slow_enough())) as (server, port):
        _run(_beta_flow(port))
    assert server.stats.crashes == 0


TIME_TOOL = {
    "type": "function",
    "name": "get_time",
    "description": "Local time in a zone",
    "parameters": {
        "type": "object",
        "properties": {"zone": {"type": "string"}},
        "required": ["zone"],
    },
}


async def _ga_parallel_and_truncate_flow(port: int) -> None:
    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        rec = Recorder(conn, Dialect.GA)
        await rec.until("session.created")
        await conn.session.update(session={"type": "realtime", "tools": [WEATHER_TOOL, TIME_TOOL]})
        await rec.until("session.updated")

        # two parallel function calls in one response
        await conn.conversation.item.create(
            item=user_text("The weather in London and the time there?")
        )
        await conn.response.create()
        turn = await rec.until("response.done")
        args = [e for e in turn if e["type"] == "response.function_call_arguments.done"]
        assert [(a["name"], a["output_index"]) for a in args] == [
            ("get_weather", 0),
            ("get_time", 1),
        ]
        assert len({a["call_id"] for a in args}) == 2 and len({a["item_id"] for a in args}) == 2
        output = turn[-1]["response"]["output"]
        assert [(o["type"], o["call_id"]) for o in output] == [
            ("function_call", a["call_id"]) for a in args
        ]
        await rec.until("rate_limits.updated")
        for a, result in zip(args, ("Foggy, 12 C", "09:30"), strict=True):
            await conn.conversation.item.create(
                item={"type": "function_call_output", "call_id": a["call_id"], "output": result}
            )
            await rec.until("conversation.item.done")
        await conn.response.create()
        turn = await rec.until("response.done")
        transcript = turn[-1]["response"]["output"][0]["content"][0]["transcript"]
        assert "Foggy, 12 C" in transcript and "09:30" in transcript
        await rec.until("rate_limits.updated")

        # truncate the answer while it is still streaming, then cancel it
        await conn.conversation.item.create(item=user_text("Tell me a story"))
        await conn.response.create()
        got = await rec.until("response.output_audio.delta")
        item_id = got[-1]["item_id"]
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=50)
        got = await rec.until("conversation.item.truncated")
        assert (got[-1]["item_id"], got[-1]["audio_end_ms"]) == (item_id, 50)
        assert "response.done" not in [e["type"] for e in got]  # still streaming
        await conn.response.cancel()
        done = (await rec.until("response.done"))[-1]["response"]
        assert done["status"] == "cancelled"
        assert done["output"][0]["content"][0]["transcript"] == ""


def test_openai_ga_client_parallel_calls_and_streaming_truncate() -> None:
    rules = (
        ToolRule(pattern=r"weather in london", tool="get_weather", arguments='{"city": "London"}'),
        ToolRule(pattern=r"time there", tool="get_time", arguments='{"zone": "Europe/London"}'),
    )
    from orchestrator.mockserver import Distribution, LatencyModel

    latency = LatencyModel(
        response_created_ms=Distribution.parse("fixed:5"),
        first_delta_ms=Distribution.parse("fixed:20"),
        response_words=Distribution.parse("fixed:8"),
        speech_ms_per_word=100,
        realtime_factor=1.0,  # 100 ms audio chunks every 100 ms: long enough to truncate
    )
    config = fast_config(api_key=KEY, tool_rules=rules, latency=latency)
    with server_in_thread(config) as (server, port):
        _run(_ga_parallel_and_truncate_flow(port))
    assert server.stats.crashes == 0
    assert server.stats.responses_done["cancelled"] == 1
