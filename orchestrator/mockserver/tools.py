"""Deterministic tool-call decisions.

A response calls a function tool when (in this order):

1. ``tool_choice`` names a function (``{"type": "function", "name": ...}``): that one;
2. a configured :class:`~orchestrator.mockserver.config.ToolRule` matches the user's
   text (or the transcript of a spoken turn) and the tool is offered;
3. name matching is on and an offered tool's name occurs in the text (``get_weather``
   matches "get_weather" or "get weather", case-insensitively);
4. ``tool_choice == "required"``: the first offered tool.

``tool_choice == "none"`` or no offered function tools means no call. Arguments come
from the rule, otherwise placeholder values for the tool schema's required properties.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import orjson

from .config import ToolRule


@attrs.frozen
class ToolCall:
    """A decided function call: tool name and its JSON arguments text."""

    name: str
    arguments: str


_PLACEHOLDERS: dict[str, Any] = {
    "string": "example",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
    "object": {},
}


def placeholder_arguments(parameters: object) -> str:
    """JSON arguments filling each required property of a JSON schema with a placeholder
    (the first enum value when the property has one)."""
    if not isinstance(parameters, dict):
        return "{}"
    props = parameters.get("properties")
    required = parameters.get("required")
    if not isinstance(props, dict) or not isinstance(required, list):
        return "{}"
    args: dict[str, Any] = {}
    for name in required:
        spec = props.get(name)
        if not isinstance(name, str) or not isinstance(spec, dict):
            continue
        enum = spec.get("enum")
        if isinstance(enum, list) and enum:
            args[name] = enum[0]
            continue
        kind = spec.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        args[name] = _PLACEHOLDERS.get(kind if isinstance(kind, str) else "string", "example")
    return orjson.dumps(args).decode()


def _mentions(text: str, name: str) -> bool:
    low = text.lower()
    n = name.lower()
    return n in low or n.replace("_", " ") in low or n.replace("-", " ") in low


def decide_tool_call(
    text: str,
    tools: Sequence[dict[str, Any]],
    tool_choice: object,
    rules: Sequence[ToolRule],
    *,
    name_matching: bool = True,
) -> ToolCall | None:
    """Decide whether the answer to ``text`` is a function call (see module docstring)."""
    functions = {
        t["name"]: t
        for t in tools
        if isinstance(t, dict)
        and t.get("type", "function") == "function"
        and isinstance(t.get("name"), str)
    }
    if not functions or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        forced = functions.get(str(tool_choice.get("name")))
        if forced is not None:
            for rule in rules:
                if rule.tool == forced["name"] and rule.matches(text):
                    return ToolCall(forced["name"], rule.arguments)
            return ToolCall(forced["name"], placeholder_arguments(forced.get("parameters")))
    for rule in rules:
        if rule.tool in functions and rule.matches(text):
            return ToolCall(rule.tool, rule.arguments)
    if name_matching:
        for name, tool in functions.items():
            if _mentions(text, name):
                return ToolCall(name, placeholder_arguments(tool.get("parameters")))
    if tool_choice == "required":
        name, tool = next(iter(functions.items()))
        return ToolCall(name, placeholder_arguments(tool.get("parameters")))
    return None
