"""Simulated MCP tools with the official ``openai`` client (GA and beta).

A session with an MCP tool gets its tool list (``mcp_list_tools.*`` and an
``mcp_list_tools`` item); a user text naming a tool makes the server call it
(``response.mcp_call_arguments.*``, ``response.mcp_call.*``, an ``mcp_call`` item with
its deterministic output) and then answer with audio; with ``require_approval`` the
response asks first (``mcp_approval_request``) and the approved call runs in the next
response, a denied one never runs. Every GA event is validated against the package's
server-event models; the server never contacts ``server_url``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from mockserver_helpers import fast_config, server_in_thread, user_text

from orchestrator.mockserver import FaultConfig, read_groundtruth
from orchestrator.mockserver.config import DEFAULT_MCP_TOOLS

openai = pytest.importorskip("openai")
pytest.importorskip("websockets")
pydantic = pytest.importorskip("pydantic")

from openai.types.realtime import RealtimeServerEvent as GAServerEvent  # noqa: E402

GA_ADAPTER: Any = pydantic.TypeAdapter(GAServerEvent)
KEY = "sk-mock-test-key"
#: never contacted: a name that cannot resolve
URL = "https://mcp.example.invalid/sse"


def _mcp(require_approval: Any) -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "docs",
        "server_url": URL,
        "require_approval": require_approval,
    }


async def _send(conn: Any, event: dict[str, Any]) -> None:
    """Send ``event`` as it is (the beta connection has no ``send_raw``; its ``send``
    would drop what the beta models do not know)."""
    text = orjson.dumps(event).decode()
    if hasattr(conn, "send_raw"):
        await conn.send_raw(text)
    else:
        await conn._connection.send(text)


async def _next(conn: Any, validate: bool) -> dict[str, Any]:
    raw = await asyncio.wait_for(conn.recv_bytes(), 10)
    if validate:
        GA_ADAPTER.validate_json(raw)  # raises on any schema mismatch
    event: dict[str, Any] = orjson.loads(raw)
    assert event["type"] != "error", event
    return event


async def _until(conn: Any, etype: str, validate: bool) -> list[dict[str, Any]]:
    out = []
    for _ in range(5000):
        out.append(await _next(conn, validate))
        if out[-1]["type"] == etype:
            return out
    raise AssertionError(f"no {etype}")


async def _ask(conn: Any, text: str, validate: bool) -> list[dict[str, Any]]:
    await _send(conn, {"type": "conversation.item.create", "item": user_text(text)})
    await _send(conn, {"type": "response.create"})
    return await _until(conn, "response.done", validate)


async def _approve(conn: Any, request_id: str, approve: bool, validate: bool) -> list[Any]:
    item = {"type": "mcp_approval_response", "approval_request_id": request_id, "approve": approve}
    await _send(conn, {"type": "conversation.item.create", "item": item})
    # beta: conversation.item.created (it has no .done)
    added = await _until(
        conn, "conversation.item.done" if validate else "conversation.item.created", validate
    )
    assert added[-1]["item"]["approve"] is approve
    await _send(conn, {"type": "response.create"})
    return await _until(conn, "response.done", validate)


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def _flow(port: int, *, beta: bool) -> None:
    validate = not beta
    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    realtime = client.beta.realtime if beta else client.realtime
    async with realtime.connect(model="gpt-realtime") as conn:
        session: dict[str, Any] = {"tools": [_mcp("never")]}
        if not beta:
            session["type"] = "realtime"
        await _send(conn, {"type": "session.update", "session": session})
        listing = await _until(conn, "session.updated", validate)
        done = await _until(
            conn, "conversation.item.created" if beta else "conversation.item.done", validate
        )
        if not beta:
            assert _types(done) == [
                "conversation.item.added",
                "mcp_list_tools.in_progress",
                "mcp_list_tools.completed",
                "conversation.item.done",
            ]
            tools = done[-1]["item"]["tools"]
            assert [t["name"] for t in tools] == [t.name for t in DEFAULT_MCP_TOOLS]
        else:  # beta has no mcp_list_tools.* events; the item is still created
            assert done[-1]["item"]["type"] == "mcp_list_tools"
        assert listing

        # no approval needed: the call runs, then the answer speaks
        events = await _ask(conn, "please search_docs for trio", validate)
        final = events[-1]["response"]
        assert [o["type"] for o in final["output"]] == ["mcp_call", "message"]
        call = final["output"][0]
        assert call["name"] == "search_docs" and call["server_label"] == "docs"
        assert orjson.loads(call["output"])["tool"] == "search_docs"
        types = _types(events)
        if not beta:
            order = [
                "response.mcp_call_arguments.delta",
                "response.mcp_call_arguments.done",
                "response.mcp_call.in_progress",
                "response.mcp_call.completed",
                "response.output_audio.delta",
            ]
            assert [types.index(t) for t in order] == sorted(types.index(t) for t in order)
            assert final["output"][1]["content"][0]["transcript"]
        else:
            assert "response.audio.delta" in types
            assert not any("mcp_call" in t for t in types)

        # approval asked: the response ends with the request; approve -> the call runs
        session = {"tools": [{**_mcp("always"), "server_label": "tickets"}]}
        if not beta:
            session["type"] = "realtime"
        await _send(conn, {"type": "session.update", "session": session})
        await _until(conn, "session.updated", validate)
        asked = (await _ask(conn, "create_ticket please", validate))[-1]["response"]
        assert [o["type"] for o in asked["output"]] == ["mcp_approval_request"]
        request = asked["output"][0]
        assert (request["name"], request["server_label"]) == ("create_ticket", "tickets")
        ran = (await _approve(conn, request["id"], True, validate))[-1]["response"]
        assert [o["type"] for o in ran["output"]] == ["mcp_call", "message"]
        assert ran["output"][0]["approval_request_id"] == request["id"]
        assert ran["output"][0]["output"]

        # denied: no call, only the answer
        asked = (await _ask(conn, "create_ticket again", validate))[-1]["response"]
        denied = await _approve(conn, asked["output"][0]["id"], False, validate)
        assert [o["type"] for o in denied[-1]["response"]["output"]] == ["message"]


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_openai_client_mcp_listed_and_called(beta: bool, tmp_path: Any) -> None:
    path = tmp_path / "gt.jsonl"
    with server_in_thread(fast_config(api_key=KEY, groundtruth_path=path)) as (server, port):
        asyncio.run(asyncio.wait_for(_flow(port, beta=beta), 30))
    assert server.stats.crashes == 0
    calls = [c for r in read_groundtruth(path) for c in r.get("mcp_calls", [])]
    assert [(c["name"], c["status"]) for c in calls] == [
        ("search_docs", "completed"),
        ("create_ticket", "approval_requested"),
        ("create_ticket", "completed"),
        ("create_ticket", "approval_requested"),
    ]
    assert calls[2]["approval_request_id"] is not None


async def _failing(port: int) -> list[dict[str, Any]]:
    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        session = {"type": "realtime", "tools": [_mcp("never")]}
        await _send(conn, {"type": "session.update", "session": session})
        await _until(conn, "session.updated", True)
        return await _ask(conn, "fetch_page of the docs", True)


def test_mcp_call_failure_is_a_seeded_fault() -> None:
    config = fast_config(api_key=KEY, faults=FaultConfig(mcp_failure_probability=1.0))
    with server_in_thread(config) as (_server, port):
        events = asyncio.run(asyncio.wait_for(_failing(port), 30))
    types = _types(events)
    assert "response.mcp_call.failed" in types and "response.mcp_call.completed" not in types
    call = events[-1]["response"]["output"][0]
    assert call["error"]["type"] == "tool_execution_error" and call["output"] is None
