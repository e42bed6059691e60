"""Transcription sessions (``session.type = "transcription"``): a turn ends with the
transcription of its user audio, not with a response.

In such a session server VAD commits the user's audio and the server sends
``…input_audio_transcription.delta`` / ``.completed`` (or ``.failed``) and never a
response, so the turn is finished by its ``.completed`` (``completed``) or ``.failed``
(``failed``). ``transcription_ms`` (planned last speech frame -> ``.completed``) is
stamped by the turn's timer. In a realtime session these events change nothing here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # avoids an import cycle
    from .core import SessionCore
    from .turns import Turn


def is_transcription_session(core: SessionCore) -> bool:
    """Whether the server's session (the last ``session.created`` / ``.updated``) is a
    transcription session."""
    return getattr(core.state.session, "type", None) == "transcription"


def _own_turn(core: SessionCore, event: Any, turn: Turn | None) -> Turn | None:
    if turn is None or turn.status != "open" or not is_transcription_session(core):
        return None
    if turn.user_item_id is not None and turn.user_item_id != event.item_id:
        return None
    return turn


def on_transcription_completed(core: SessionCore, event: Any, t: float, turn: Turn | None) -> None:
    """``.completed``: the transcription session's turn is done."""
    own = _own_turn(core, event, turn)
    if own is not None:
        core.book.finish(own, "completed", None, t)


def on_transcription_failed(core: SessionCore, event: Any, t: float, turn: Turn | None) -> None:
    """``.failed``: the transcription session's turn failed, with the server's reason."""
    own = _own_turn(core, event, turn)
    if own is not None:
        error = getattr(event, "error", None)
        message = getattr(error, "message", None) if error is not None else None
        core.book.finish(own, "failed", f"transcription failed: {message or 'no reason'}", t)
