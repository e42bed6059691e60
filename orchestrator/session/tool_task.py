"""The tool task: runs function calls as soon as their arguments are done, concurrently,
and sends each ``function_call_output``; answers MCP approval requests the same way,
with an ``mcp_approval_response`` (the registry's ``approve_mcp``). The follow-up
``response.create`` is the core's decision (once the response is done and every output
or answer is out), carried out by the effects task."""

from __future__ import annotations

import trio

from orchestrator import protocol as P
from orchestrator.metrics.records import ErrorRecord

from .core import SessionCore
from .messages import Out, ToolJob
from .tools import ToolRegistry

__all__ = ["ToolTask"]


class ToolTask:
    """Reads :class:`ToolJob` s from ``calls``; each runs in this task's own nursery.

    Resource handling: closes ``calls`` and its ``out`` clone when it ends; cancelling
    it cancels the calls in flight (their outputs are never sent). A call whose
    connection was lost meanwhile is dropped (its output would answer nothing). Tool
    failures never raise: :meth:`ToolRegistry.call` turns them into error outputs."""

    def __init__(
        self,
        core: SessionCore,
        registry: ToolRegistry | None,
        calls: trio.MemoryReceiveChannel[ToolJob],
        out: trio.MemorySendChannel[Out],
    ) -> None:
        self._core = core
        self._registry = registry
        self._calls = calls
        self._out = out

    async def run(self) -> None:
        with self._calls, self._out:
            async with trio.open_nursery() as nursery:
                async for job in self._calls:
                    nursery.start_soon(self._run_one, job)

    async def _run_one(self, job: ToolJob) -> None:
        registry = self._registry
        assert registry is not None  # the core queues calls only when there is one
        core = self._core
        call, turn = job.call, job.turn
        if call.kind == "mcp_approval":
            if job.epoch != core.epoch:
                return  # the request was made on a connection that is gone
            answer = P.McpApprovalResponseItem(
                approval_request_id=call.call_id, approve=registry.approve_mcp
            )
            await self._out.send(Out(P.ConversationItemCreate(item=answer), turn))
            core.tool_output_sent(job)
            return
        outcome = await registry.call(call.name, call.arguments)
        if job.epoch != core.epoch:
            return  # the connection this call belonged to is gone
        turn.timer.tool_result(
            call.call_id, ok=outcome.ok, error=outcome.error, failure=outcome.failure
        )
        if not outcome.ok:
            core.add_error(
                ErrorRecord(
                    code="tool_error",
                    message=outcome.error or "",
                    event_type="tool",
                    t_s=trio.current_time() - core.book.run_t0,
                ),
                turn,
            )
        item = P.FunctionCallOutputItem(call_id=call.call_id, output=outcome.output)
        await self._out.send(Out(P.ConversationItemCreate(item=item), turn))
        core.tool_output_sent(job)
