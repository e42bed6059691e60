"""Deterministic tool-call decisions.

A response calls function tools when (in this order):

1. ``tool_choice`` names a function (``{"type": "function", "name": ...}``): that one
   only (one call);
2. otherwise every match, in a deterministic order (parallel tool calls, as the real
   service makes them): first each configured
   :class:`~orchestrator.mockserver.config.ToolRule` whose pattern matches the user's
   text (or the transcript of a spoken turn) and whose tool is offered, in rule order;
   then, with name matching on, each offered tool whose name occurs in the text
   (``get_weather`` matches "get_weather" or "get weather", case-insensitively), in the
   session's tool order, unless a matching rule already called that tool. Identical
   calls (same name and arguments) are made once;
3. no match and ``tool_choice == "required"``: the first offered tool.

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


def decide_tool_calls(
    text: str,
    tools: Sequence[dict[str, Any]],
    tool_choice: object,
    rules: Sequence[ToolRule],
    *,
    name_matching: bool = True,
) -> list[ToolCall]:
    """Decide the function calls answering ``text``, in order (see module docstring);
    an empty list means the answer is a message."""
    functions = {
        t["name"]: t
        for t in tools
        if isinstance(t, dict)
        and t.get("type", "function") == "function"
        and isinstance(t.get("name"), str)
    }
    if not functions or tool_choice == "none":
        return []
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        forced = functions.get(str(tool_choice.get("name")))
        if forced is not None:
            for rule in rules:
                if rule.tool == forced["name"] and rule.matches(text):
                    return [ToolCall(forced["name"], rule.arguments)]
            return [ToolCall(forced["name"], placeholder_arguments(forced.get("parameters")))]
    calls: list[ToolCall] = []
    for rule in rules:
        if rule.tool in functions and rule.matches(text):
            call = ToolCall(rule.tool, rule.arguments)
            if call not in calls:
                calls.append(call)
    if name_matching:
        called = {c.name for c in calls}
        for name, tool in functions.items():
            if name not in called and _mentions(text, name):
                calls.append(ToolCall(name, placeholder_arguments(tool.get("parameters"))))
    if not calls and tool_choice == "required":
        name, tool = next(iter(functions.items()))
        calls.append(ToolCall(name, placeholder_arguments(tool.get("parameters"))))
    return calls


def decide_tool_call(
    text: str,
    tools: Sequence[dict[str, Any]],
    tool_choice: object,
    rules: Sequence[ToolRule],
    *,
    name_matching: bool = True,
) -> ToolCall | None:
    """The first call :func:`decide_tool_calls` would make, or None."""
    calls = decide_tool_calls(text, tools, tool_choice, rules, name_matching=name_matching)
    return calls[0] if calls else None
