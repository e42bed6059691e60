"""The sender task: one writer per connection, stamping the send time of every event
(turn anchors, tool round trips) and the lateness of every audio frame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from orchestrator import protocol as P
from orchestrator.transport import TransportError

from .spec import ConnectionLike
from .turns import Turn

if TYPE_CHECKING:
    from .actor import Session

__all__ = ["Out", "SenderMixin"]


class Out:
    """One client event on its way to the socket. Audio frames carry their planned
    send time and the connection epoch they were made for (stale ones are dropped)."""

    __slots__ = ("audio", "epoch", "event", "planned", "turn")

    def __init__(
        self,
        event: Any,
        turn: Turn | None,
        *,
        planned: float | None = None,
        audio: bool = False,
        epoch: int = 0,
    ) -> None:
        self.event = event
        self.turn = turn
        self.planned = planned
        self.audio = audio
        self.epoch = epoch


class SenderMixin:
    """Sending half of :class:`~orchestrator.session.actor.Session`."""

    async def _sender(self: Session, conn: ConnectionLike) -> None:
        encode = P.encode_client_event
        dialect = self.dialect
        try:
            async for out in self._send_rx:
                if out.audio and out.epoch != self._epoch:
                    self.frames_dropped += 1
                    continue
                await conn.send(encode(out.event, dialect))
                self._on_sent(out, trio.current_time())
        except TransportError as exc:
            self._link_lost(exc)

    def _on_sent(self: Session, out: Out, t: float) -> None:
        turn = out.turn
        if out.audio:
            if out.planned is not None:
                late = (t - out.planned) * 1000.0
                self.lateness_ms.append(late)
                if turn is not None:
                    turn.timer.add_lateness(late)
            return
        if turn is not None:
            turn.timer.on_sent(out.event, t)

    async def _enqueue(self: Session, event: Any, turn: Turn | None) -> None:
        await self._send_tx.send(Out(event, turn))

    async def _send_direct(
        self: Session, conn: ConnectionLike, event: Any, turn: Turn | None
    ) -> None:
        await conn.send(P.encode_client_event(event, self.dialect))
        self._on_sent(Out(event, turn), trio.current_time())
