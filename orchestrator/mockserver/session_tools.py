"""Checks of tool definitions (function and MCP tools), ``tool_choice`` and
``tracing``; used by ``session.update`` and ``response.create``. Pure functions."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .errors import (
    invalid_type,
    missing_parameter,
)
from .session_checks import (
    _bool,
    _enum,
    _keys,
    _list,
    _obj,
    _str,
    _str_list,
)


def tools_list(v: object, p: str) -> list[dict[str, Any]]:
    """Validate a ``tools`` array (function and MCP tools)."""
    if not isinstance(v, list):
        raise invalid_type(p, "an array", v)
    out = []
    for i, raw in enumerate(v):
        tp = f"{p}[{i}]"
        t = _obj(raw, tp)
        kind = _enum(t.get("type", "function"), f"{tp}.type", ("function", "mcp"))
        if kind == "function":
            _keys(t, ("type", "name", "description", "parameters"), tp)
            if "name" not in t:
                raise missing_parameter(f"{tp}.name")
            tool: dict[str, Any] = {"type": "function", "name": _str(t["name"], f"{tp}.name")}
            if "description" in t:
                tool["description"] = _str(t["description"], f"{tp}.description")
            if "parameters" in t:
                tool["parameters"] = _obj(t["parameters"], f"{tp}.parameters")
            out.append(tool)
        else:
            out.append(_mcp_tool(t, tp))
    return out


def _allowed_tools(v: object, p: str) -> object:
    return _str_list(v, p) if isinstance(v, list) else _obj(v, p)


def _require_approval(v: object, p: str) -> object:
    return _enum(v, p, ("always", "never")) if isinstance(v, str) else _obj(v, p)


def _allowed_callers(v: object, p: str) -> object:
    return [_enum(x, f"{p}[{i}]", ("direct", "programmatic")) for i, x in enumerate(_list(v, p))]


#: an MCP tool's fields and their checks (``openai.types.realtime`` ``Mcp`` tool param);
#: the last four may be ``null`` (the openai models have them ``Optional``)
_MCP_FIELDS: dict[str, Callable[[object, str], object]] = {
    "type": _str,
    "server_label": _str,
    "server_url": _str,
    "connector_id": _str,
    "tunnel_id": _str,
    "authorization": _str,
    "server_description": _str,
    "defer_loading": _bool,
    "headers": _obj,
    "allowed_tools": _allowed_tools,
    "require_approval": _require_approval,
    "allowed_callers": _allowed_callers,
}
_MCP_NULLABLE = ("headers", "allowed_tools", "require_approval", "allowed_callers")


def _mcp_tool(t: dict[str, Any], tp: str) -> dict[str, Any]:
    """Validate an MCP tool (the newer ``allowed_callers`` / ``defer_loading`` /
    ``tunnel_id`` included); it is stored and echoed as sent, but for its
    ``authorization`` (a secret: never echoed, never logged)."""
    _keys(t, tuple(_MCP_FIELDS), tp)
    if "server_label" not in t:
        raise missing_parameter(f"{tp}.server_label")
    for key, check in _MCP_FIELDS.items():
        if key in t and not (t[key] is None and key in _MCP_NULLABLE):
            check(t[key], f"{tp}.{key}")
    kept = copy.deepcopy(t)
    kept.pop("authorization", None)
    return kept


def tool_choice(v: object, p: str) -> str | dict[str, Any]:
    """Validate ``tool_choice``."""
    if isinstance(v, str):
        return _enum(v, p, ("auto", "none", "required"))
    c = _obj(v, p)
    kind = _enum(c.get("type"), f"{p}.type", ("function", "mcp"))
    if kind == "function":
        _keys(c, ("type", "name"), p)
        return {"type": "function", "name": _str(c.get("name"), f"{p}.name")}
    return copy.deepcopy(c)


def _tracing(v: object, p: str) -> object:
    if v is None or v == "auto":
        return v
    t = _obj(v, p)
    _keys(t, ("workflow_name", "group_id", "metadata"), p)
    return copy.deepcopy(t)
