"""Simulated MCP tools: listing, call decisions, approvals and results.

The server never contacts an MCP tool's ``server_url`` (nor any connector or tunnel):
every MCP server of a session offers the configured tool list
(:attr:`~.config.ServerConfig.mcp_tools`, ``--mcp-tool NAME[:JSON-SCHEMA]``, default
:data:`~.config.DEFAULT_MCP_TOOLS`), narrowed by the tool's ``allowed_tools``.

- Listing: when ``session.update`` adds an MCP server (a ``server_label`` not listed on
  this connection yet), :func:`.mcp_listing.list_mcp_tools` sends
  ``conversation.item.added`` of an ``mcp_list_tools`` item (no tools yet),
  ``mcp_list_tools.in_progress``, ``mcp_list_tools.completed`` and
  ``conversation.item.done`` with the tool list (the tools of :func:`offered`).
- Calls are decided by the tool rules exactly as function calls are
  (:mod:`.tools`): each listed MCP tool takes part under its own name, after the
  function tools (a function of the same name wins); ``tool_choice``
  ``{"type": "mcp", "name": N}`` forces it.
- Approval (``require_approval``; absent means ``"always"``, as the service does):
  ``"always"`` / ``"never"`` or ``{"always": {"tool_names": [...], "read_only": b},
  "never": {...}}`` (a tool matched by ``never`` needs none; otherwise one matched by
  ``always`` or by no filter needs it). A call that needs approval becomes an
  ``mcp_approval_request`` output item, and the response ends. The client answers with
  ``conversation.item.create`` of an ``mcp_approval_response`` (checked by
  :func:`approval_response_item`); the next response (its ``response.create``, as after
  function outputs) runs the approved call, or answers without it when denied.
- Results are deterministic: the output is derived from the seed, the server label, the
  tool name and the arguments (:func:`mcp_output`); the duration is drawn from
  ``LatencyModel.mcp_call_ms``; ``FaultConfig.mcp_failure_probability`` makes a call
  fail with a ``tool_execution_error``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import orjson

from orchestrator.protocol import new_id

from .config import McpToolDef
from .errors import ClientError, invalid_type, missing_parameter, unknown_parameter
from .spec import McpPlan, PlannedCall, new_call_id
from .tools import ToolCall

#: what an injected MCP call failure says
MCP_FAILED_MESSAGE = "The MCP tool call failed. (injected fault)"


def _filter_matches(f: object, tool: McpToolDef) -> bool:
    if not isinstance(f, dict):
        return False
    names = f.get("tool_names")
    read_only = f.get("read_only")
    if names is None and read_only is None:
        return False
    return (names is None or tool.name in names) and (
        read_only is None or read_only == tool.read_only
    )


def offered(server: Mapping[str, Any], defs: Sequence[McpToolDef]) -> list[McpToolDef]:
    """The tools the MCP server ``server`` (a session tool) offers: ``defs`` narrowed by
    its ``allowed_tools`` (a list of names, or a filter object; an empty filter, or one of
    nulls, narrows nothing)."""
    allowed = server.get("allowed_tools")
    if isinstance(allowed, list):
        return [d for d in defs if d.name in allowed]
    if isinstance(allowed, dict) and any(v is not None for v in allowed.values()):
        return [d for d in defs if _filter_matches(allowed, d)]
    return list(defs)  # no filter, or an empty one (its nulls mean "not given")


def needs_approval(server: Mapping[str, Any], tool: McpToolDef) -> bool:
    """Whether a call of ``tool`` on ``server`` asks for approval first."""
    require = server.get("require_approval", "always")
    if require is None or require == "always":
        return True
    if require == "never":
        return False
    assert isinstance(require, dict)  # checked by the session validation
    return not _filter_matches(require.get("never"), tool)


def mcp_servers(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The MCP tools (servers) among a session's or response's ``tools``."""
    return [t for t in tools if isinstance(t, dict) and t.get("type") == "mcp"]


def as_functions(
    tools: Sequence[dict[str, Any]], defs: Sequence[McpToolDef]
) -> tuple[list[dict[str, Any]], dict[str, tuple[dict[str, Any], McpToolDef]]]:
    """``tools`` with every offered MCP tool added as a function-shaped tool (for the
    tool rules), and MCP tool name -> (its server, its definition) for the names that
    are not function tools."""
    functions = {t.get("name") for t in tools if t.get("type", "function") == "function"}
    views = list(tools)
    by_name: dict[str, tuple[dict[str, Any], McpToolDef]] = {}
    for server in mcp_servers(tools):
        for tool in offered(server, defs):
            if tool.name in functions or tool.name in by_name:
                continue
            by_name[tool.name] = (server, tool)
            views.append({"type": "function", "name": tool.name, "parameters": tool.input_schema})
    return views, by_name


def mcp_output(seed: int, server_label: str, call: ToolCall) -> str:
    """The deterministic result text of an MCP call."""
    key = f"{seed}:{server_label}:{call.name}:{call.arguments}".encode()
    digest = hashlib.sha256(key).hexdigest()[:12]
    return orjson.dumps({"tool": call.name, "result": f"result-{digest}"}).decode()


@attrs.frozen
class McpDecision:
    """An MCP call decided for a response: the call, its server's label, whether it
    asks for approval first, and the approved request it carries out."""

    call: ToolCall
    server_label: str
    approval: bool = False
    approval_request_id: str | None = None


def decide_mcp(
    calls: Sequence[ToolCall], by_name: Mapping[str, tuple[dict[str, Any], McpToolDef]]
) -> tuple[list[ToolCall], list[McpDecision]]:
    """Split decided calls into function calls and MCP calls (with their approval)."""
    functions: list[ToolCall] = []
    mcp: list[McpDecision] = []
    for call in calls:
        found = by_name.get(call.name)
        if found is None:
            functions.append(call)
        else:
            server, tool = found
            mcp.append(McpDecision(call, server["server_label"], needs_approval(server, tool)))
    return functions, mcp


def approved(context: Sequence[dict[str, Any]], response: dict[str, Any]) -> list[McpDecision]:
    """The call an ``mcp_approval_response`` approves (none when denied)."""
    if not response.get("approve"):
        return []
    rid = response.get("approval_request_id")
    for item in context:
        if item.get("type") == "mcp_approval_request" and item.get("id") == rid:
            call = ToolCall(item["name"], item.get("arguments") or "{}")
            return [McpDecision(call, item["server_label"], approval_request_id=rid)]
    return []


def plan_mcp_calls(
    decided: Sequence[McpDecision],
    *,
    seed: int,
    duration_s: Callable[[], float],
    fails: Callable[[], bool],
) -> list[PlannedCall]:
    """The planned MCP calls (or approval requests) of a response, with their drawn
    duration, deterministic output and injected failure."""
    planned = []
    for d in decided:
        if d.approval:
            plan = McpPlan(d.server_label, approval=True)
        elif fails():
            plan = McpPlan(
                d.server_label,
                approval_request_id=d.approval_request_id,
                duration_s=duration_s(),
                error=MCP_FAILED_MESSAGE,
            )
        else:
            plan = McpPlan(
                d.server_label,
                approval_request_id=d.approval_request_id,
                duration_s=duration_s(),
                output=mcp_output(seed, d.server_label, d.call),
            )
        item_id = new_id("mcpr_" if d.approval else "mcp_")
        planned.append(PlannedCall(d.call, item_id, new_call_id(), plan))
    return planned


def mcp_record(planned: PlannedCall) -> dict[str, Any]:
    """A planned MCP call as ground truth records it: name, server label, arguments,
    ``status`` (``approval_requested`` / ``completed`` / ``failed``), the approved
    request it carries out, the drawn duration (ms) and the output."""
    mcp = planned.mcp
    assert mcp is not None
    status = "approval_requested" if mcp.approval else "failed" if mcp.error else "completed"
    return {
        "name": planned.call.name,
        "server_label": mcp.server_label,
        "arguments": planned.call.arguments,
        "item_id": planned.item_id,
        "status": status,
        "approval_request_id": mcp.approval_request_id,
        "duration_ms": mcp.duration_s * 1000.0,
        "output": mcp.output,
    }


def approval_response_item(raw: dict[str, Any], items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Validate a client ``mcp_approval_response`` item against the conversation
    ``items``: the stored item. Raises :class:`ClientError` naming the bad field."""
    for key in raw:
        if key not in ("id", "type", "object", "approval_request_id", "approve", "reason"):
            raise unknown_parameter(f"item.{key}")
    rid = raw.get("approval_request_id")
    if rid is None:
        raise missing_parameter("item.approval_request_id")
    if not isinstance(rid, str):
        raise invalid_type("item.approval_request_id", "a string", rid)
    approve = raw.get("approve")
    if approve is None:
        raise missing_parameter("item.approve")
    if not isinstance(approve, bool):
        raise invalid_type("item.approve", "a boolean", approve)
    reason = raw.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise invalid_type("item.reason", "a string", reason)
    if not any(i.get("type") == "mcp_approval_request" and i.get("id") == rid for i in items):
        raise ClientError(
            "invalid_value",
            f"Invalid 'item.approval_request_id': no MCP approval request '{rid}' "
            "in the conversation.",
            "item.approval_request_id",
        )
    if any(
        i.get("type") == "mcp_approval_response" and i.get("approval_request_id") == rid
        for i in items
    ):
        raise ClientError(
            "invalid_value",
            f"Invalid 'item.approval_request_id': MCP approval request '{rid}' was already "
            "answered.",
            "item.approval_request_id",
        )
    item_id = raw.get("id") or new_id("mcpa_")
    if not isinstance(item_id, str):
        raise invalid_type("item.id", "a string", item_id)
    return {
        "id": item_id,
        "type": "mcp_approval_response",
        "approval_request_id": rid,
        "approve": approve,
        "reason": reason,
    }
