"""What travels on the session's channels (plain values, no behaviour).

- ``out`` (every producer -> the link's sender): :class:`Out`;
- ``calls`` (``SessionCore`` -> tool task): :class:`ToolJob`;
- ``actions`` (``SessionCore`` -> effects task): :class:`Cut`, :class:`FollowUp`,
  :class:`LocalInterrupt`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .state import ToolCall
    from .turns import Turn

__all__ = ["Action", "Cut", "FollowUp", "LocalInterrupt", "Out", "ToolJob"]


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
