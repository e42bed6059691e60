"""Barge-in: the user talks over the assistant.

The client stops its simulated playback at the moment it learns of the interruption
(server VAD ``speech_started``, or its own planned start without server VAD), truncates
the assistant item at the position actually played (capped at the audio received, never
``audio_end_ms=0``, never an item without audio), and cancels the response only when it
is active and the server will not cancel it itself. The truncate goes out once the
response is over: an item still being generated cannot be cut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator import protocol as P

from .turns import Turn
from .waiters import Waiter

if TYPE_CHECKING:
    from .actor import Session

__all__ = ["BargeInMixin", "turn_detection"]

_SERVER_VAD_TYPES = ("server_vad", "semantic_vad")


def turn_detection(config: Any) -> Any:
    """The ``turn_detection`` of a session config, None when off or unset."""
    try:
        td = config.audio.input.turn_detection
    except AttributeError:
        return None
    return None if td is P.NULL else td


class BargeInMixin:
    """Interruption handling of :class:`~orchestrator.session.actor.Session`."""

    def _server_vad(self: Session) -> bool:
        td = turn_detection(self.state.session)
        if td is None:
            td = turn_detection(self._configs[-1] if self._configs else None)
        return getattr(td, "type", None) in _SERVER_VAD_TYPES

    def _server_interrupts(self: Session) -> bool:
        td = turn_detection(self.state.session)
        return (
            getattr(td, "type", None) in _SERVER_VAD_TYPES
            and getattr(td, "interrupt_response", None) is not False
        )

    def _interrupt(self: Session, t: float, *, by_server: bool) -> None:
        """The user talks over the assistant at ``t``: stop playback, truncate what was not
        heard, cancel the response if the server will not."""
        state = self.state
        item_id = self.playback.current_item(t) or state.audio_item_id
        active = state.active_response_id
        played = self.playback.played_ms(item_id, t) if item_id else 0.0
        self.playback.stop(t)
        cur = self._current
        target = active
        if target is None and item_id is not None and item_id in state.items:
            target = state.items[item_id].response_id
        if (
            cur is not None
            and cur.timer.planned_barge_in is not None
            and cur.interrupts is None
            and target is not None
        ):
            cur.interrupts = target
            resp = state.responses.get(target)
            if resp is not None and resp.done:
                last_at = self._last_audio_at
                stop = last_at if last_at is not None and state.audio_response_id == target else t
                cur.timer.mark_barge_in_stop(stop)
            else:
                self._barge = (cur, target)
                self._barge_last_delta = None
        truncate = None
        if item_id is not None:
            point = state.truncate_point(item_id, played)
            if point is not None:
                index = state.audio_content_index if item_id == state.audio_item_id else 0
                truncate = P.ConversationItemTruncate(
                    item_id=item_id,
                    content_index=index,
                    audio_end_ms=point,
                    event_id=P.new_id("event_"),
                )
        cancel = None
        if active is not None and not (by_server and self._server_interrupts()):
            cancel = P.ResponseCancel(event_id=P.new_id("event_"))
        if (truncate is not None or cancel is not None) and self._nursery is not None:
            self._nursery.start_soon(self._cut, active, cancel, truncate, cur)

    async def _cut(
        self: Session, active: str | None, cancel: Any, truncate: Any, turn: Turn | None
    ) -> None:
        """Cancel (if we must), wait until the active response is over, then truncate:
        an item still being generated cannot be cut, a finished one can."""
        waiter = None
        if active is not None and truncate is not None:
            waiter = Waiter(
                lambda ev: type(ev) is P.ResponseDone and ev.response.id == active,
                None,
                "interrupt",
            )
            self._waiters.append(waiter)
        try:
            if cancel is not None:
                await self._enqueue(cancel, turn)
            if waiter is not None:
                resp = self.state.responses.get(active or "")
                if resp is not None and not resp.done:
                    await waiter.event.wait()
                if waiter.error is not None:
                    return  # the connection went away: nothing left to cut
        finally:
            if waiter is not None:
                self._remove_waiter(waiter)
        if truncate is not None and truncate.item_id in self.state.items:
            await self._enqueue(truncate, turn)
