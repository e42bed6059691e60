"""The orchestrator's session against the embedded server's simulated MCP tools, on
trio's MockClock: MCP calls are recorded per turn (name, server label, status,
approval) with ``mcp_call_ms``, and approval requests are answered from the tool
registry's ``approve_mcp`` (default approve) like function calls, with the follow-up
``response.create`` after the answer."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from session_helpers import memory_factory, server_config

from orchestrator import protocol as P
from orchestrator.metrics.records import record_from_dict, record_to_dict
from orchestrator.mockserver import Distribution, FaultConfig, LatencyModel
from orchestrator.session import SessionSpec, ToolRegistry, open_session

URL = "https://mcp.example.invalid/sse"  # never contacted


def _spec(require_approval: Any, registry: ToolRegistry | None, **server: Any) -> SessionSpec:
    tool = P.McpTool(server_label="docs", server_url=URL, require_approval=require_approval)
    config = P.SessionConfig(instructions="x", tools=[tool])
    return SessionSpec(
        connect=memory_factory(server_config(**server)), config=config, tools=registry
    )


async def test_mcp_call_is_recorded_with_its_duration(autojump_clock: object) -> None:
    async with open_session(_spec("never", ToolRegistry())) as session:
        turn = await session.say_text("please search_docs for trio")
    assert turn.status == "completed" and turn.tool_calls == []
    record = turn.record
    (call,) = record.mcp_calls
    assert (call.name, call.server_label, call.status, call.approval) == (
        "search_docs",
        "docs",
        "completed",
        None,
    )
    assert call.duration_ms == pytest.approx(200.0)
    assert record.mcp_call_ms == pytest.approx(200.0)  # the server's fixed:200 call
    assert turn.transcript  # the answer after the call
    again = record_from_dict(record_to_dict(record))
    assert again is not None and again.mcp_calls == record.mcp_calls  # type: ignore[union-attr]


async def test_failed_mcp_call_is_recorded(autojump_clock: object) -> None:
    latency = LatencyModel(
        mcp_call_ms=Distribution.parse("fixed:50"), first_delta_ms=Distribution.parse("fixed:100")
    )
    faults = FaultConfig(mcp_failure_probability=1.0)
    spec = _spec("never", None, faults=faults, latency=latency)
    async with open_session(spec) as session:
        turn = await session.say_text("fetch_page please")
    (call,) = turn.record.mcp_calls
    assert (call.name, call.status) == ("fetch_page", "failed")
    assert call.duration_ms == pytest.approx(50.0)


@pytest.mark.parametrize("approve", [True, False], ids=["approved", "denied"])
async def test_approval_request_is_answered(approve: bool, autojump_clock: object) -> None:
    registry = ToolRegistry(approve_mcp=approve)
    with trio.fail_after(60):  # the approval round never leaves the turn waiting
        async with open_session(_spec("always", registry)) as session:
            turn = await session.say_text("create_ticket for the outage")
    assert turn.status == "completed" and len(turn.response_ids) == 2  # request, then answer
    answer = "approved" if approve else "denied"
    expected = [("create_ticket", "approval_requested", answer)]
    if approve:
        expected.append(("create_ticket", "completed", "approved"))
    assert [(c.name, c.status, c.approval) for c in turn.record.mcp_calls] == expected
    assert turn.transcript


async def test_no_registry_leaves_approval_unanswered(autojump_clock: object) -> None:
    with trio.fail_after(60):  # an unanswered request ends the turn, never hangs it
        async with open_session(_spec("always", None)) as session:
            turn = await session.say_text("create_ticket now")
    assert turn.status == "completed" and len(turn.response_ids) == 1
    assert [(c.status, c.approval) for c in turn.record.mcp_calls] == [("approval_requested", None)]


async def test_the_tool_listing_does_not_end_the_wait_for_a_greeting(
    autojump_clock: object,
) -> None:
    """The server lists an MCP server's tools (an ``mcp_list_tools`` item) before its
    greeting: that is bookkeeping, not conversation, so the greeting is still awaited,
    measured, and not recorded as a turn."""
    spec = _spec("never", ToolRegistry(), greeting="Hello, how can I help?")
    async with open_session(spec) as session:
        assert await session.wait_for_greeting(5.0)
    assert session.result is not None
    assert session.result.greeting_ms is not None
    assert session.turns == []
