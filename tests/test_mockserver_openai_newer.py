"""Acceptance with the official ``openai`` client: what current production clients send.

- explicit ``null`` on optional fields is "not given" (PROTOCOL_NOTES §8): a
  ``response.create`` carrying ``"instructions": null`` (as livekit-agents sends it)
  gives ``response.created``, in GA and beta;
- the newer GA fields (openai package models): ``reasoning`` and
  ``parallel_tool_calls`` (session and ``response.create``), transcription ``delay`` /
  ``keywords`` / ``languages``, MCP tool ``allowed_callers`` / ``defer_loading`` /
  ``tunnel_id`` are accepted, validated and echoed in ``session.updated``;
- wrong types are still refused with the real error text.

Every server event is validated against the package's server-event models.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from mockserver_helpers import fast_config, server_in_thread, user_text

openai = pytest.importorskip("openai")
pytest.importorskip("websockets")
pydantic = pytest.importorskip("pydantic")

from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent  # noqa: E402
from openai.types.realtime import RealtimeServerEvent as GAServerEvent  # noqa: E402

GA_ADAPTER: Any = pydantic.TypeAdapter(GAServerEvent)
BETA_ADAPTER: Any = pydantic.TypeAdapter(BetaServerEvent)
KEY = "sk-mock-test-key"
MCP_TOOL = {
    "type": "mcp",
    "server_label": "deepwiki",
    "tunnel_id": "tun_123",
    "allowed_callers": ["direct"],
    "defer_loading": True,
    "require_approval": "never",
}
NEWER_SESSION = {
    "type": "realtime",
    "reasoning": {"effort": "low"},
    "parallel_tool_calls": False,
    "tools": [MCP_TOOL],
    "audio": {
        "input": {
            "transcription": {
                "model": "gpt-realtime-whisper",
                "delay": "minimal",
                "keywords": ["Zurich", "Nakamura"],
                "languages": ["en", "de"],
            }
        }
    },
}
#: a response.create as widely used frameworks send it: unset optional fields as null
NULL_RESPONSE = {
    "instructions": None,
    "metadata": {"client_event_id": "ev_1"},
    "conversation": None,
    "tools": None,
    "tool_choice": None,
    "max_output_tokens": None,
    "input": None,
}


async def _next(conn: Any, adapter: Any) -> dict[str, Any]:
    raw = await asyncio.wait_for(conn.recv_bytes(), 10)
    model = adapter.validate_json(raw)  # raises on any schema mismatch
    data: dict[str, Any] = orjson.loads(raw)
    assert model.type == data["type"]
    return data


async def _until(conn: Any, adapter: Any, *etypes: str) -> dict[str, Any]:
    for _ in range(5000):
        event = await _next(conn, adapter)
        if event["type"] in etypes:
            return event
    raise AssertionError(f"none of {etypes}")


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _ga_flow(port: int) -> None:
    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        assert (await _next(conn, GA_ADAPTER))["type"] == "session.created"

        await conn.session.update(session=NEWER_SESSION)  # type: ignore[arg-type]
        updated = (await _until(conn, GA_ADAPTER, "session.updated", "error"))["session"]
        assert updated["reasoning"] == {"effort": "low"}
        assert updated["parallel_tool_calls"] is False
        assert updated["tools"] == [MCP_TOOL]
        transcription = updated["audio"]["input"]["transcription"]
        assert transcription["delay"] == "minimal"
        assert transcription["keywords"] == ["Zurich", "Nakamura"]
        assert transcription["languages"] == ["en", "de"]

        # explicit nulls on a session.update: "not given", nothing changes
        await conn.send_raw(
            orjson.dumps(
                {
                    "type": "session.update",
                    "event_id": None,
                    "session": {
                        "type": "realtime",
                        "instructions": None,
                        "reasoning": None,
                        "tools": None,
                        "audio": {"output": {"voice": None, "speed": None}},
                    },
                }
            ).decode()
        )
        again = (await _until(conn, GA_ADAPTER, "session.updated", "error"))["session"]
        assert again == updated

        # response.create with explicit nulls (and the newer fields) is answered
        await conn.conversation.item.create(item=user_text("Hi"))  # type: ignore[arg-type]
        await conn.response.create(
            response={**NULL_RESPONSE, "reasoning": {"effort": "high"}, "parallel_tool_calls": True}  # type: ignore[typeddict-item]
        )
        created = await _until(conn, GA_ADAPTER, "response.created", "error")
        assert created["type"] == "response.created", created
        assert created["response"]["metadata"] == {"client_event_id": "ev_1"}
        await _until(conn, GA_ADAPTER, "response.done")

        # wrong types and values are still refused, with the real text
        refusals = [
            (
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "parallel_tool_calls": "yes"},
                },
                "invalid_type",
                "Invalid type for 'session.parallel_tool_calls': expected a boolean, "
                "but got a string instead.",
            ),
            (
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "reasoning": {"effort": "max"}},
                },
                "invalid_value",
                "Invalid value: 'max'. Supported values are: 'minimal', 'low', 'medium', "
                "'high', and 'xhigh'.",
            ),
            (
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "tools": [{**MCP_TOOL, "defer_loading": 1}]},
                },
                "invalid_type",
                "Invalid type for 'session.tools[0].defer_loading': expected a boolean, "
                "but got an integer instead.",
            ),
            (
                {"type": "response.create", "response": {"instructions": 5}},
                "invalid_type",
                "Invalid type for 'response.instructions': expected a string, "
                "but got an integer instead.",
            ),
            (
                {"type": "conversation.item.retrieve", "item_id": None},
                "invalid_type",
                "Invalid type for 'item_id': expected a string, but got null instead.",
            ),
        ]
        for event, code, message in refusals:
            await conn.send_raw(orjson.dumps({**event, "event_id": "ev_bad"}).decode())
            err = (await _until(conn, GA_ADAPTER, "error"))["error"]
            assert (err["code"], err["message"], err["event_id"]) == (code, message, "ev_bad")


def test_openai_ga_client_newer_fields_and_nulls() -> None:
    with server_in_thread(fast_config(api_key=KEY)) as (server, port):
        _run(_ga_flow(port))
    assert server.stats.crashes == 0


async def _beta_flow(port: int) -> None:
    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        assert (await _next(conn, BETA_ADAPTER))["type"] == "session.created"
        conversation = await _next(conn, BETA_ADAPTER)
        assert conversation["type"] == "conversation.created"
        await conn.send(
            {
                "type": "session.update",
                "session": {"instructions": None, "voice": None, "turn_detection": None},
            }  # type: ignore[typeddict-item]
        )
        updated = (await _until(conn, BETA_ADAPTER, "session.updated", "error"))["session"]
        assert updated["turn_detection"] is None  # a null that means "off" keeps its meaning
        assert updated["voice"] == "alloy"
        await conn.conversation.item.create(item=user_text("Hi"))  # type: ignore[arg-type]
        await conn.response.create(response={**NULL_RESPONSE, "voice": None})  # type: ignore[typeddict-item]
        created = await _until(conn, BETA_ADAPTER, "response.created", "error")
        assert created["type"] == "response.created", created
        assert created["response"]["metadata"] == {"client_event_id": "ev_1"}
        await _until(conn, BETA_ADAPTER, "response.done")
        # the GA-only fields are not beta parameters
        await conn.send(
            {"type": "session.update", "session": {"parallel_tool_calls": True}}  # type: ignore[typeddict-item]
        )
        err = (await _until(conn, BETA_ADAPTER, "error"))["error"]
        assert err["message"] == "Unknown parameter: 'session.parallel_tool_calls'."


def test_openai_beta_client_conversation_created_and_nulls() -> None:
    with server_in_thread(fast_config(api_key=KEY)) as (server, port):
        _run(_beta_flow(port))
    assert server.stats.crashes == 0
