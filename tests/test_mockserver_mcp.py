"""Simulated MCP tools on the embedded server: configuration, approval rules, the
response plan of an MCP call (pure), and its timing on trio's MockClock."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from mockserver_helpers import (
    FAST,
    mem_connection,
    next_event,
    recv_until,
    response_spec,
    send,
    user_text,
)

from orchestrator.mockserver import ConfigError, MockServer, ServerConfig
from orchestrator.mockserver.config import DEFAULT_MCP_TOOLS, McpToolDef
from orchestrator.mockserver.errors import ClientError
from orchestrator.mockserver.mcp import (
    approval_response_item,
    mcp_output,
    needs_approval,
    offered,
)
from orchestrator.mockserver.responder import ResponseStream
from orchestrator.mockserver.spec import McpPlan, PlannedCall
from orchestrator.mockserver.tools import ToolCall

SEARCH, FETCH, TICKET = DEFAULT_MCP_TOOLS


def test_mcp_tool_option_parses_name_and_schema() -> None:
    tool = McpToolDef.parse('lookup:{"type": "object", "required": ["id"]}')
    assert (tool.name, tool.input_schema["required"]) == ("lookup", ["id"])
    assert McpToolDef.parse("ping").input_schema == {"type": "object", "properties": {}}
    with pytest.raises(ConfigError, match="'lookup': the schema is not valid JSON"):
        McpToolDef.parse("lookup:{nope")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        McpToolDef.parse("lookup:[1]")
    with pytest.raises(ConfigError, match="expected NAME"):
        McpToolDef.parse(":{}")
    with pytest.raises(ConfigError, match="given twice"):
        ServerConfig(mcp_tools=(McpToolDef("a"), McpToolDef("a")))


def test_allowed_tools_and_require_approval_forms() -> None:
    assert offered({"allowed_tools": ["fetch_page"]}, DEFAULT_MCP_TOOLS) == [FETCH]
    assert offered({"allowed_tools": {"read_only": False}}, DEFAULT_MCP_TOOLS) == [TICKET]
    assert offered({"allowed_tools": None}, DEFAULT_MCP_TOOLS) == list(DEFAULT_MCP_TOOLS)
    assert needs_approval({}, SEARCH)  # absent: "always", as the service does
    assert needs_approval({"require_approval": None}, SEARCH)
    assert not needs_approval({"require_approval": "never"}, SEARCH)
    by_name = {"require_approval": {"never": {"tool_names": ["search_docs"]}}}
    assert not needs_approval(by_name, SEARCH) and needs_approval(by_name, TICKET)
    read_only = {"require_approval": {"never": {"read_only": True}, "always": {}}}
    assert not needs_approval(read_only, FETCH) and needs_approval(read_only, TICKET)


def test_mcp_output_is_deterministic() -> None:
    call = ToolCall("search_docs", '{"query": "x"}')
    assert mcp_output(1, "docs", call) == mcp_output(1, "docs", call)
    assert mcp_output(1, "docs", call) != mcp_output(2, "docs", call)


def test_approval_response_checks_its_request() -> None:
    items = [{"id": "mcpr_1", "type": "mcp_approval_request"}]
    ok = approval_response_item(
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": False},
        items,
    )
    assert ok["approve"] is False and ok["id"].startswith("mcpa_")
    bad: list[tuple[dict[str, Any], str]] = [
        ({"approval_request_id": "mcpr_2", "approve": True}, "item.approval_request_id"),
        ({"approval_request_id": "mcpr_1", "approve": "yes"}, "item.approve"),
        ({"approve": True}, "item.approval_request_id"),
        ({"approval_request_id": "mcpr_1", "approve": True, "extra": 1}, "item.extra"),
    ]
    for raw, param in bad:
        with pytest.raises(ClientError) as info:
            approval_response_item({"type": "mcp_approval_response", **raw}, items)
        assert info.value.param == param


def _mcp_spec(error: str | None = None) -> Any:
    plan = McpPlan("docs", duration_s=0.5, output=None if error else '{"r": 1}', error=error)
    call = PlannedCall(ToolCall("search_docs", '{"query": "trio"}'), "mcp_1", "call_9", plan)
    return response_spec(mcp_calls=(call,))


def test_mcp_call_then_answer_plan() -> None:
    stream = ResponseStream(_mcp_spec(), ms_per_word=100)
    steps = list(stream.steps())
    etypes = [s.event["type"] for s in steps]
    at = {s.event["type"]: s.at for s in reversed(steps)}  # first occurrence
    assert etypes.index("response.mcp_call.in_progress") < etypes.index(
        "response.mcp_call.completed"
    )
    assert at["response.mcp_call.completed"] - at["response.mcp_call.in_progress"] == 0.5
    # the answer starts one created..first-delta time after the call finished
    first_audio = at["response.output_audio.delta"]
    assert first_audio == pytest.approx(at["response.mcp_call.completed"] + 0.2 - 0.01)
    marks = [s for s in steps if s.mark == "first_delta"]
    assert [m.event["type"] for m in marks] == ["response.output_audio.delta"]
    done = steps[-1].event["response"]
    assert [o["type"] for o in done["output"]] == ["mcp_call", "message"]
    assert done["output"][0]["output"] == '{"r": 1}'
    assert steps[-1].event["response"]["output"][1]["id"] == "item_1"
    assert stream.item_ids == ["mcp_1", "item_1"]


def test_mcp_call_cut_short_fails_and_has_no_output() -> None:
    stream = ResponseStream(_mcp_spec(), ms_per_word=100)
    for step in stream.steps():  # taking the next step means the previous one was sent
        if step.event["type"] == "response.mcp_call.completed":
            break  # due the call's duration later: the response is cancelled first
    closing = [s.event for s in stream.finish(1.0, "cancelled", None)]
    assert [e["type"] for e in closing] == [
        "response.mcp_call.failed",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
    ]
    assert closing[-1]["response"]["output"][0]["output"] is None


def test_failed_mcp_call_carries_the_error() -> None:
    steps = list(ResponseStream(_mcp_spec(error="boom"), ms_per_word=100).steps())
    etypes = [s.event["type"] for s in steps]
    assert "response.mcp_call.failed" in etypes and "response.mcp_call.completed" not in etypes
    item = steps[-1].event["response"]["output"][0]
    assert item["error"] == {"type": "tool_execution_error", "message": "boom"}


async def test_mcp_call_timing_on_the_fake_clock(autojump_clock: trio.testing.MockClock) -> None:
    server = MockServer(ServerConfig(port=0, latency=FAST, seed=3))
    tool = {
        "type": "mcp",
        "server_label": "docs",
        "server_url": "https://x.invalid",
        "require_approval": "never",
    }
    async with mem_connection(server) as ws:
        await next_event(ws)  # session.created
        await ws.send_message(
            send({"type": "session.update", "session": {"type": "realtime", "tools": [tool]}})
        )
        await recv_until(ws, "mcp_list_tools.completed")
        await ws.send_message(
            send({"type": "conversation.item.create", "item": user_text("fetch_page now")})
        )
        await recv_until(ws, "conversation.item.done")
        t0 = trio.current_time()
        await ws.send_message(send({"type": "response.create"}))
        seen: dict[str, float] = {}
        while "response.done" not in seen:
            event = await next_event(ws)
            seen.setdefault(event["type"], trio.current_time() - t0)
    assert seen["response.mcp_call_arguments.delta"] == pytest.approx(0.040)
    assert seen["response.mcp_call.completed"] - seen["response.mcp_call.in_progress"] == (
        pytest.approx(0.200)
    )
    # answer: another response.created -> first delta time (40 - 5 ms) after the call
    assert seen["response.output_audio.delta"] == pytest.approx(
        seen["response.mcp_call.completed"] + 0.035
    )
    record = server.groundtruth.records[-1]
    assert record["mcp_calls"][0]["name"] == "fetch_page"
    assert record["first_delta"]["actual"] - record["anchor_time"] == pytest.approx(
        seen["response.output_audio.delta"]
    )


def test_an_empty_or_null_tool_filter_narrows_nothing() -> None:
    everything = list(DEFAULT_MCP_TOOLS)
    assert offered({"allowed_tools": {}}, DEFAULT_MCP_TOOLS) == everything
    nulls = {"tool_names": None, "read_only": None}
    assert offered({"allowed_tools": nulls}, DEFAULT_MCP_TOOLS) == everything


def test_an_approval_request_is_answered_once() -> None:
    answer = {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": True}
    items = [{"id": "mcpr_1", "type": "mcp_approval_request"}, {**answer, "id": "mcpa_1"}]
    with pytest.raises(ClientError, match="already answered") as info:
        approval_response_item(answer, items)
    assert info.value.param == "item.approval_request_id"


def test_an_mcp_tools_authorization_is_never_echoed() -> None:
    from orchestrator.mockserver.session_tools import _mcp_tool

    tool = {"type": "mcp", "server_label": "docs", "authorization": "Bearer sk-secret"}
    kept = _mcp_tool(tool, "session.tools[0]")
    assert "authorization" not in kept and "sk-secret" not in repr(kept)
