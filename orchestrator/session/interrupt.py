"""Barge-in, decided without I/O: the user talks over the assistant.

The client stops its simulated playback at the moment it learns of the interruption
(server VAD ``speech_started``, or its own planned start without server VAD), truncates
the assistant item at the position actually played (capped at the audio received, never
``audio_end_ms=0``, never an item without audio), and cancels the response only when it
is active and the server will not cancel it itself. The truncate goes out once the
response is over (the effects task waits for that): an item still being generated
cannot be cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator import protocol as P

from .messages import Cut
from .playback import PlaybackClock
from .state import ConversationState

__all__ = ["plan_cut", "server_interrupts", "server_vad", "turn_detection"]

_SERVER_VAD_TYPES = ("server_vad", "semantic_vad")


def turn_detection(config: Any) -> Any:
    """The ``turn_detection`` of a session config, None when off or unset."""
    try:
        td = config.audio.input.turn_detection
    except AttributeError:
        return None
    return None if td is P.NULL else td


def server_vad(session: Any, configs: Sequence[Any]) -> bool:
    """True when the server ends user turns: the server's session says so, else the
    last config we sent."""
    td = turn_detection(session)
    if td is None:
        td = turn_detection(configs[-1] if configs else None)
    return getattr(td, "type", None) in _SERVER_VAD_TYPES


def server_interrupts(session: Any) -> bool:
    """True when the server's VAD cancels a response itself on ``speech_started``."""
    td = turn_detection(session)
    return (
        getattr(td, "type", None) in _SERVER_VAD_TYPES
        and getattr(td, "interrupt_response", None) is not False
    )


def plan_cut(
    state: ConversationState, playback: PlaybackClock, t: float, *, cancel: bool
) -> tuple[Cut | None, str | None]:
    """Stop ``playback`` at ``t`` and plan what to send: ``(cut, target)`` where ``cut``
    (None: nothing to send) truncates the item heard at ``t`` at the played position and,
    when ``cancel`` and a response is active, cancels it; ``target`` is the response that
    was interrupted (the active one, else the one of the item heard), if any."""
    item_id = playback.current_item(t) or state.audio_item_id
    active = state.active_response_id
    played = playback.played_ms(item_id, t) if item_id else 0.0
    playback.stop(t)
    target = active
    if target is None and item_id is not None and item_id in state.items:
        target = state.items[item_id].response_id
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
    cancel_event = P.ResponseCancel(event_id=P.new_id("event_")) if cancel and active else None
    if truncate is None and cancel_event is None:
        return None, target
    return Cut(active=active, cancel=cancel_event, truncate=truncate, turn=None), target
