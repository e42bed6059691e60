"""The shapes of a response's streamed events and output items (GA-shaped dicts without
``event_id``), for :class:`~.responder.ResponseStream`, which decides their order and
timing. Pure functions; the shapes are the ``openai`` package's server-event models.

Items: a ``message``, a ``function_call``, an ``mcp_call`` (simulated MCP call: its
``output``, or ``error`` as a ``tool_execution_error``, once finished) or an
``mcp_approval_request`` (the arguments are known when it opens; no deltas).
"""

from __future__ import annotations

from typing import Any

from .spec import PlannedCall


def content_event(
    etype: str, ids: dict[str, Any], output_index: int, **fields: Any
) -> dict[str, Any]:
    """An event about content part 0 of the item in ``ids`` (deltas, ``.done``, parts)."""
    return {**ids, "type": etype, "output_index": output_index, "content_index": 0, **fields}


def call_item(planned: PlannedCall) -> dict[str, Any]:
    """The new (``in_progress``) output item of a tool call or approval request."""
    call, mcp = planned.call, planned.mcp
    if mcp is None:
        return {
            "id": planned.item_id,
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": planned.call_id,
            "arguments": "",
        }
    base = {"id": planned.item_id, "server_label": mcp.server_label, "name": call.name}
    if mcp.approval:
        return {**base, "type": "mcp_approval_request", "arguments": call.arguments}
    return {
        **base,
        "type": "mcp_call",
        "arguments": "",
        "approval_request_id": mcp.approval_request_id,
        "error": None,
        "output": None,
    }


def final_call_item(
    item: dict[str, Any], planned: PlannedCall, status: str, arguments: str, ran: bool
) -> dict[str, Any]:
    """The closing snapshot of a call item: ``arguments`` streamed; an MCP call that
    ``ran`` to its end carries its output or error."""
    out = dict(item)
    mcp = planned.mcp
    if mcp is None:
        out["status"] = status
        out["arguments"] = arguments
    elif not mcp.approval:
        out["arguments"] = arguments
        if ran:
            out["output"] = mcp.output
            if mcp.error is not None:
                out["error"] = {"type": "tool_execution_error", "message": mcp.error}
    return out


def arguments_delta(
    planned: PlannedCall, ids: dict[str, Any], output_index: int, piece: str, padding: str
) -> dict[str, Any]:
    """A piece of a call's arguments (function or MCP)."""
    if planned.mcp is None:
        return {
            **ids,
            "type": "response.function_call_arguments.delta",
            "output_index": output_index,
            "call_id": planned.call_id,
            "delta": piece,
            "obfuscation": padding,
        }
    return {
        **ids,
        "type": "response.mcp_call_arguments.delta",
        "output_index": output_index,
        "delta": piece,
        "obfuscation": padding,
    }


def arguments_done(
    planned: PlannedCall, ids: dict[str, Any], output_index: int, arguments: str
) -> dict[str, Any]:
    """The end of a call's arguments (function or MCP)."""
    if planned.mcp is None:
        return {
            **ids,
            "type": "response.function_call_arguments.done",
            "output_index": output_index,
            "call_id": planned.call_id,
            "name": planned.call.name,
            "arguments": arguments,
        }
    return {
        **ids,
        "type": "response.mcp_call_arguments.done",
        "output_index": output_index,
        "arguments": arguments,
    }


def mcp_call_event(phase: str, item_id: str, output_index: int) -> dict[str, Any]:
    """``response.mcp_call.in_progress`` / ``.completed`` / ``.failed``."""
    return {"type": f"response.mcp_call.{phase}", "item_id": item_id, "output_index": output_index}
