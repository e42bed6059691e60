"""The effects task: what the core decided to send while handling an event, which it
cannot send itself (it never awaits): truncate and cancel after a barge-in, the
follow-up ``response.create`` after tool outputs, the client's own interruption at a
planned instant when there is no server VAD."""

from __future__ import annotations

from typing import Any

import trio

from orchestrator import protocol as P

from .core import SessionCore
from .errors import LinkLost, SessionEnded
from .messages import Action, Cut, FollowUp, LocalInterrupt, Out
from .waiters import Waiter, await_waiter

__all__ = ["Effects"]


class Effects:
    """Reads actions from ``actions``; each runs in this task's own nursery (a cut waits
    for its response to end without holding up the next action).

    Resource handling: closes ``actions`` and its ``out`` clone when it ends; cancelling
    it drops the actions in flight. A cut whose connection is lost meanwhile sends
    nothing more (the item is gone with the connection)."""

    def __init__(
        self,
        core: SessionCore,
        actions: trio.MemoryReceiveChannel[Action],
        out: trio.MemorySendChannel[Out],
    ) -> None:
        self._core = core
        self._actions = actions
        self._out = out

    async def run(self) -> None:
        with self._actions, self._out:
            async with trio.open_nursery() as nursery:
                async for action in self._actions:
                    nursery.start_soon(self._do, action)

    async def _do(self, action: Action) -> None:
        core = self._core
        if isinstance(action, FollowUp):
            await self._out.send(Out(core.response_create(action.turn, None), action.turn))
        elif isinstance(action, LocalInterrupt):
            await trio.sleep_until(action.at)
            core.interrupt(trio.current_time(), by_server=False)
        else:
            await self._cut(action)

    async def _cut(self, cut: Cut) -> None:
        """Cancel (if we must), wait until the active response is over, then truncate."""
        core = self._core
        active = cut.active
        resp = core.state.responses.get(active or "")
        if cut.truncate is not None and resp is not None and not resp.done:
            # registered before the cancel goes out, so its response.done cannot be missed
            waiter = Waiter(
                lambda ev: type(ev) is P.ResponseDone and ev.response.id == active,
                None,
                "interrupt",
            )
            try:
                await await_waiter(core, waiter, lambda: self._send(cut.cancel, cut))
            except (LinkLost, SessionEnded):
                return  # the connection went away: nothing left to cut
        else:
            await self._send(cut.cancel, cut)
        if cut.truncate is not None and cut.truncate.item_id in core.state.items:
            await self._send(cut.truncate, cut)

    async def _send(self, event: Any, cut: Cut) -> None:
        if event is not None:
            await self._out.send(Out(event, cut.turn))
