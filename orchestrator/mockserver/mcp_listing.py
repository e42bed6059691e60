"""MCP tool listing on a connection: when ``session.update`` adds an MCP server, the
server announces the tools it offers (the simulation itself is in :mod:`.mcp`)."""

from __future__ import annotations

from typing import Any

from orchestrator.protocol import new_id

from .mcp import mcp_servers, offered
from .port import ConnectionPort


async def list_mcp_tools(actor: ConnectionPort) -> None:
    """List the tools of every MCP server of the session not listed on this connection
    yet (see :mod:`.mcp`). Waits on the outbox only."""
    conv = actor.conv
    listed = {i.get("server_label") for i in conv.items if i.get("type") == "mcp_list_tools"}
    for server in mcp_servers(conv.session.get("tools") or ()):
        label = server["server_label"]
        if label in listed:
            continue
        listed.add(label)
        item: dict[str, Any] = {
            "id": new_id("mcpl_"),
            "type": "mcp_list_tools",
            "server_label": label,
            "tools": [],
        }
        prev = conv.insert(item)
        await actor.emit(
            {"type": "conversation.item.added", "previous_item_id": prev, "item": item}
        )
        await actor.emit({"type": "mcp_list_tools.in_progress", "item_id": item["id"]})
        tools = [t.listed() for t in offered(server, actor.config.mcp_tools)]
        done = {**item, "tools": tools}
        conv.replace(done)
        await actor.emit({"type": "mcp_list_tools.completed", "item_id": item["id"]})
        await actor.emit({"type": "conversation.item.done", "previous_item_id": prev, "item": done})
