"""The tool executor task: runs function calls as soon as their arguments are done,
concurrently, sends each ``function_call_output``, and sends exactly one follow-up
``response.create`` once the response is done *and* all its outputs are sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import trio

from orchestrator import protocol as P
from orchestrator.metrics.records import ErrorRecord

from .turns import Turn

if TYPE_CHECKING:
    from .actor import Session

__all__ = ["Batch", "ToolExecMixin"]


@attrs.define(eq=False)
class Batch:
    """Function calls of one response: outputs pending, response done. Dropped once
    its follow-up is sent."""

    turn: Turn
    pending: int = 0
    response_done: bool = False


class ToolExecMixin:
    """Tool execution of :class:`~orchestrator.session.actor.Session`."""

    async def _tool_executor(self: Session) -> None:
        async with trio.open_nursery() as nursery:
            async for call, turn in self._tool_rx:
                nursery.start_soon(self._run_tool, call, turn)

    async def _run_tool(self: Session, call: Any, turn: Turn) -> None:
        registry = self.spec.tools
        assert registry is not None
        epoch = self._epoch
        outcome = await registry.call(call.name, call.arguments)
        if epoch != self._epoch:
            return  # the connection this call belonged to is gone
        turn.timer.tool_result(call.call_id, ok=outcome.ok, error=outcome.error)
        if not outcome.ok:
            self._add_error(
                ErrorRecord(
                    code="tool_error",
                    message=outcome.error or "",
                    event_type="tool",
                    t_s=trio.current_time() - self._run_t0,
                ),
                turn,
            )
        item = P.FunctionCallOutputItem(call_id=call.call_id, output=outcome.output)
        await self._enqueue(P.ConversationItemCreate(item=item), turn)
        batch = self._batches.get(call.response_id or "")
        if batch is not None:
            batch.pending -= 1
            self._maybe_followup(call.response_id)

    def _maybe_followup(self: Session, rid: str) -> None:
        batch = self._batches.get(rid)
        if batch is None or not batch.response_done or batch.pending:
            return
        del self._batches[rid]
        if batch.turn.status == "open" and self._nursery is not None and not self._closing:
            self._nursery.start_soon(self._send_create, batch.turn, None)

    async def _send_create(self: Session, turn: Turn, params: Any) -> str:
        event = P.ResponseCreate(response=params, event_id=P.new_id("event_"))
        self._claims.append((event.event_id, turn))
        await self._enqueue(event, turn)
        return event.event_id or ""
