"""Tool registry: the handlers a session runs for the model's function calls.

A tool is an async function, a sync function (run in a worker thread with
``trio.to_thread.run_sync`` so it cannot stall the session's event loop), or a canned
result. :meth:`ToolRegistry.call` never raises for a tool's own failure: an exception,
bad JSON arguments, an unknown tool name or a missed deadline become an error payload
(``{"error": "..."}``) that is sent back as the ``function_call_output``, exactly as a
production agent would report a broken tool to the model.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import orjson
import trio

from orchestrator.metrics.failure import Failure
from orchestrator.protocol import FunctionTool

__all__ = ["Tool", "ToolOutcome", "ToolRegistry"]

ToolHandler = Callable[..., Awaitable[Any]] | Callable[..., Any]

_NO_RESULT = object()


def _no_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


@attrs.frozen(kw_only=True)
class Tool:
    """One function tool. Exactly one of ``handler`` (called with the parsed JSON
    arguments as keyword arguments) or ``result`` (a canned answer) is used;
    ``deadline`` (seconds, None = the registry's) bounds one call."""

    name: str
    handler: ToolHandler | None = None
    result: Any = _NO_RESULT
    description: str | None = None
    parameters: Mapping[str, Any] = attrs.field(factory=_no_parameters)
    deadline: float | None = None

    def __attrs_post_init__(self) -> None:
        if (self.handler is None) == (self.result is _NO_RESULT):
            raise ValueError(f"tool {self.name!r}: give exactly one of handler= or result=")


@attrs.frozen(kw_only=True)
class ToolOutcome:
    """What one call produced: ``output`` is the string sent as ``function_call_output``;
    ``ok`` is False when it is an error payload (``error`` says why; ``failure`` holds the
    exception, with a traceback excerpt, when the handler raised)."""

    output: str
    ok: bool = True
    error: str | None = None
    failure: Failure | None = None


def _encode(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _failure(message: str, failure: Failure | None = None) -> ToolOutcome:
    return ToolOutcome(output=_encode({"error": message}), ok=False, error=message, failure=failure)


@attrs.define(eq=False)
class ToolRegistry:
    """Named tools plus a default per-call ``deadline`` in seconds; ``approve_mcp``: the
    answer to the server's MCP approval requests (``mcp_approval_response``)."""

    deadline: float = 10.0
    tools: dict[str, Tool] = attrs.field(factory=dict)
    approve_mcp: bool = True

    def add(
        self,
        name: str,
        handler: ToolHandler | None = None,
        *,
        result: Any = _NO_RESULT,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> Tool:
        """Register a tool (replacing one of the same name) and return it."""
        tool = Tool(
            name=name,
            handler=handler,
            result=result,
            description=description,
            parameters=parameters if parameters is not None else _no_parameters(),
            deadline=deadline,
        )
        self.tools[name] = tool
        return tool

    def function_tools(self) -> list[Any]:
        """The registry as protocol ``FunctionTool`` objects for a session config."""
        return [
            FunctionTool(name=t.name, description=t.description, parameters=dict(t.parameters))
            for t in self.tools.values()
        ]

    async def call(self, name: str, arguments: str) -> ToolOutcome:
        """Run tool ``name`` with the JSON ``arguments`` string from the model.

        Never raises for the tool's failure (see the module docstring). Cancellation:
        raises ``Cancelled``; an abandoned sync handler's thread keeps running to its end
        but its result is discarded.
        """
        tool = self.tools.get(name)
        if tool is None:
            return _failure(f"unknown tool {name!r}")
        try:
            parsed = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError as exc:
            return _failure(f"arguments of {name!r} are not valid JSON: {exc}")
        if not isinstance(parsed, dict):
            return _failure(f"arguments of {name!r} must be a JSON object")
        if tool.handler is None:
            return ToolOutcome(output=_encode(tool.result))
        deadline = tool.deadline if tool.deadline is not None else self.deadline
        handler = tool.handler
        with trio.move_on_after(deadline) as scope:
            try:
                if inspect.iscoroutinefunction(handler):
                    value = await handler(**parsed)
                else:
                    value = await trio.to_thread.run_sync(
                        functools.partial(handler, **parsed), abandon_on_cancel=True
                    )
                return ToolOutcome(output=_encode(value))
            except trio.Cancelled:
                raise
            except Exception as exc:  # a broken tool is data, not a crash
                # the model gets the message only; the record keeps the traceback
                failure = Failure.from_exception(exc, f"tool {name}")
                return _failure(str(failure), failure)
        assert scope.cancelled_caught
        return _failure(f"tool {name!r} missed its deadline of {deadline:g}s")
