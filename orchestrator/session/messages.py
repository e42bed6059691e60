"""What travels on the session's channels (plain values; an utterance can be awaited).

- ``utter`` (the driver -> the audio-in task): :class:`Utterance`;
- ``out`` (every producer -> the link's sender): :class:`Out`;
- ``calls`` (``SessionCore`` -> tool task): :class:`ToolJob`;
- ``actions`` (``SessionCore`` -> effects task): :class:`Cut`, :class:`FollowUp`,
  :class:`LocalInterrupt`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import trio

if TYPE_CHECKING:
    from .state import ToolCall
    from .turns import Turn

__all__ = ["Action", "Cut", "FollowUp", "LocalInterrupt", "Out", "ToolJob", "Utterance"]


@attrs.define(eq=False)
class Utterance:
    """One source to stream: ``tail`` keeps silence flowing after it until
    ``stop_tail`` (server VAD saw the end of speech). It ends exactly once: done when
    its last frame is queued, or failed (``SessionEnded``) when the session ends
    first; :meth:`wait` returns or raises accordingly."""

    source: Any
    turn: Turn | None
    start_at: float | None
    tail: bool
    stop_tail: trio.Event = attrs.field(factory=trio.Event)
    _done: trio.Event = attrs.field(factory=trio.Event)
    _error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        """End the utterance (first call wins) and wake :meth:`wait`."""
        if self._done.is_set():
            return
        self._error = error
        self._done.set()

    async def wait(self) -> None:
        """Wait until the last frame is queued; raise the error it failed with.

        Cancellation: raises ``Cancelled``; the utterance goes on."""
        await self._done.wait()
        if self._error is not None:
            raise self._error


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


@attrs.frozen
class ToolJob:
    """Run ``call`` (of ``turn``) on the connection of ``epoch``."""

    call: ToolCall
    turn: Turn
    epoch: int


@attrs.frozen
class Cut:
    """After a barge-in: send ``cancel`` (if any), wait until response ``active`` is
    over, then send ``truncate`` (if any): an item still being generated cannot be cut."""

    active: str | None
    cancel: Any
    truncate: Any
    turn: Turn | None


@attrs.frozen
class FollowUp:
    """Request the follow-up response of ``turn`` (all its tool outputs were sent)."""

    turn: Turn


@attrs.frozen
class LocalInterrupt:
    """Without server VAD, the client itself interrupts the assistant at trio time ``at``
    (the planned start of a barge-in)."""

    at: float


Action = Cut | FollowUp | LocalInterrupt
