"""A bounded, lossy event subscription: the receiver never waits for a subscriber."""

from __future__ import annotations

from typing import Any

import trio

__all__ = ["Subscription"]


class Subscription:
    """Server events for one consumer, through a bounded channel.

    :meth:`offer` (called by the receiver) never blocks: once the buffer is half full,
    audio deltas are dropped (they are the bulk, and their content is in the
    conversation state anyway); once it is full, every event is dropped. Drops are
    counted in ``dropped_audio`` / ``dropped_other``. Iterate with ``async for``;
    iteration ends when the session ends or the subscription is closed.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"subscription capacity must be >= 1, got {capacity}")
        self._tx, self._rx = trio.open_memory_channel[Any](capacity)
        self._half = max(1, capacity // 2)
        self._buffered = 0  # events sent and not yet received (no stats object per offer)
        self.dropped_audio = 0
        self.dropped_other = 0

    @property
    def dropped_total(self) -> int:
        return self.dropped_audio + self.dropped_other

    def offer(self, event: Any, is_audio: bool) -> None:
        """Hand ``event`` over without waiting (or count it as dropped)."""
        if is_audio and self._buffered >= self._half:
            self.dropped_audio += 1
            return
        try:
            self._tx.send_nowait(event)
        except trio.WouldBlock:
            if is_audio:
                self.dropped_audio += 1
            else:
                self.dropped_other += 1
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass
        else:
            self._buffered += 1

    def close(self) -> None:
        """End iteration after the buffered events."""
        self._tx.close()

    async def receive(self) -> Any:
        """The next event. Raises ``trio.EndOfChannel`` when the subscription ended.

        Cancellation: either returns an event or raises ``Cancelled`` and loses none.
        """
        event = await self._rx.receive()
        self._buffered -= 1
        return event

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
