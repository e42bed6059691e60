"""Transcription sessions (``session.type = "transcription"``): a turn ends with the
transcription of its user audio, not with a response.

In such a session server VAD commits the user's audio and the server sends
``…input_audio_transcription.delta`` / ``.completed`` (or ``.failed``) and never a
response, so the turn is finished by its ``.completed`` (``completed``) or ``.failed``
(``failed``). ``transcription_ms`` (planned last speech frame -> ``.completed``) is
stamped by the turn's timer. In a realtime session these events change nothing here.
In the beta dialect the session is configured with ``transcription_session.update``
(:func:`session_update`); its ``transcription_session.updated`` marks the state's
session as a transcription session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator import protocol as P

from .book import TurnBook
from .state import ConversationState
from .turns import Turn


def session_update(config: Any, dialect: P.Dialect) -> tuple[Any, Callable[[Any], bool]]:
    """The client event that sends the session ``config`` and the test of its answer.

    A transcription session's config (``type = "transcription"``) in the beta dialect
    goes as ``transcription_session.update``, answered by
    ``transcription_session.updated`` (beta has no ``session.type``); anything else as
    ``session.update``, answered by ``session.updated``. The event gets a fresh
    ``event_id`` (the server names it in a refusal)."""
    event_id = P.new_id("event_")
    if dialect is P.Dialect.BETA and getattr(config, "type", None) == "transcription":
        event: Any = P.TranscriptionSessionUpdate(session=config, event_id=event_id)
        return event, lambda ev: type(ev) is P.TranscriptionSessionUpdated
    return P.SessionUpdate(session=config, event_id=event_id), (
        lambda ev: type(ev) is P.SessionUpdated
    )


def is_transcription_session(state: ConversationState) -> bool:
    """Whether the server's session (the last ``session.created`` / ``.updated``) is a
    transcription session."""
    return getattr(state.session, "type", None) == "transcription"


def _own_turn(state: ConversationState, event: Any, turn: Turn | None) -> Turn | None:
    if turn is None or turn.status != "open" or not is_transcription_session(state):
        return None
    if turn.user_item_id is not None and turn.user_item_id != event.item_id:
        return None
    return turn


def on_transcription_completed(
    state: ConversationState, book: TurnBook, event: Any, t: float, turn: Turn | None
) -> None:
    """``.completed``: the transcription session's turn is done (finished in ``book``)."""
    own = _own_turn(state, event, turn)
    if own is not None:
        book.finish(own, "completed", None, t)


def on_transcription_failed(
    state: ConversationState, book: TurnBook, event: Any, t: float, turn: Turn | None
) -> None:
    """``.failed``: the transcription session's turn failed, with the server's reason
    (finished in ``book``)."""
    own = _own_turn(state, event, turn)
    if own is not None:
        error = getattr(event, "error", None)
        message = getattr(error, "message", None) if error is not None else None
        book.finish(own, "failed", f"transcription failed: {message or 'no reason'}", t)
