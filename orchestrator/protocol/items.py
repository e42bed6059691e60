"""Conversation items and their content parts (GA-shaped).

Item classes carry their wire ``type`` as a field with a fixed default, so a decoded item
can be re-sent unchanged. Content part types use the GA names: ``input_text``,
``input_audio``, ``input_image`` (user/system), ``output_text``, ``output_audio``
(assistant), and ``text`` / ``audio`` in ``response.content_part.*`` parts. The beta
dialect's ``text`` / ``audio`` assistant content is renamed by the codec. Audio stays a
base64 ``str``.
"""

from __future__ import annotations

from typing import Any

import attrs

from .common import b64_repr

__all__ = [
    "ContentPart",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "Item",
    "McpApprovalRequestItem",
    "McpApprovalResponseItem",
    "McpCallItem",
    "McpError",
    "McpListToolsItem",
    "McpToolInfo",
    "MessageItem",
    "UnknownItem",
]


@attrs.frozen(kw_only=True)
class ContentPart:
    """One piece of a message: text, audio (base64) and/or its transcript, or an image."""

    type: str
    text: str | None = None
    audio: str | None = attrs.field(default=None, repr=b64_repr)
    transcript: str | None = None
    image_url: str | None = None
    detail: str | None = None


@attrs.frozen(kw_only=True)
class MessageItem:
    """A ``message`` item; ``role`` is ``user``, ``assistant`` or ``system``.

    ``status`` is ``completed``, ``incomplete`` or ``in_progress``.
    """

    id: str | None = None
    type: str = "message"
    object: str | None = None
    status: str | None = None
    role: str | None = None
    content: list[ContentPart] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class FunctionCallItem:
    """A ``function_call`` item produced by the model; ``arguments`` is JSON text."""

    id: str | None = None
    type: str = "function_call"
    object: str | None = None
    status: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


@attrs.frozen(kw_only=True)
class FunctionCallOutputItem:
    """A ``function_call_output`` item: the result of a call, sent by the client."""

    id: str | None = None
    type: str = "function_call_output"
    object: str | None = None
    status: str | None = None
    call_id: str | None = None
    output: str | None = None


@attrs.frozen(kw_only=True)
class McpToolInfo:
    """A tool listed by an MCP server."""

    name: str
    input_schema: Any = None
    description: str | None = None
    annotations: Any = None


@attrs.frozen(kw_only=True)
class McpError:
    """Why an MCP call failed: ``protocol_error``, ``tool_execution_error`` or ``http_error``."""

    type: str
    message: str | None = None
    code: int | None = None


@attrs.frozen(kw_only=True)
class McpListToolsItem:
    """An ``mcp_list_tools`` item (GA only)."""

    id: str | None = None
    type: str = "mcp_list_tools"
    server_label: str | None = None
    tools: list[McpToolInfo] | None = None


@attrs.frozen(kw_only=True)
class McpCallItem:
    """An ``mcp_call`` item (GA only)."""

    id: str | None = None
    type: str = "mcp_call"
    server_label: str | None = None
    name: str | None = None
    arguments: str | None = None
    approval_request_id: str | None = None
    output: str | None = None
    error: McpError | None = None


@attrs.frozen(kw_only=True)
class McpApprovalRequestItem:
    """An ``mcp_approval_request`` item (GA only)."""

    id: str | None = None
    type: str = "mcp_approval_request"
    server_label: str | None = None
    name: str | None = None
    arguments: str | None = None


@attrs.frozen(kw_only=True)
class McpApprovalResponseItem:
    """An ``mcp_approval_response`` item (GA only)."""

    id: str | None = None
    type: str = "mcp_approval_response"
    approval_request_id: str | None = None
    approve: bool | None = None
    reason: str | None = None


@attrs.frozen(kw_only=True)
class UnknownItem:
    """An item whose ``type`` this library does not model; ``raw`` is re-sent unchanged."""

    type: str | None
    raw: dict[str, Any]


Item = (
    MessageItem
    | FunctionCallItem
    | FunctionCallOutputItem
    | McpListToolsItem
    | McpCallItem
    | McpApprovalRequestItem
    | McpApprovalResponseItem
    | UnknownItem
)
"""Any conversation item."""
