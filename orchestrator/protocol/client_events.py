"""Client events: what a client sends to a Realtime server (GA names, GA shapes).

Class names are the CamelCase of the GA ``type``; ``type`` is a class attribute holding
the GA wire name. ``event_id`` is optional on every client event; the server echoes it
in ``error.event_id`` when the event is rejected.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .common import b64_repr
from .items import Item
from .responses import ResponseParams
from .session_config import SessionConfig

__all__ = [
    "CLIENT_EVENT_CLASSES",
    "ClientEvent",
    "ConversationItemCreate",
    "ConversationItemDelete",
    "ConversationItemRetrieve",
    "ConversationItemTruncate",
    "InputAudioBufferAppend",
    "InputAudioBufferClear",
    "InputAudioBufferCommit",
    "OutputAudioBufferClear",
    "ResponseCancel",
    "ResponseCreate",
    "SessionUpdate",
    "TranscriptionSessionUpdate",
    "UnknownClientEvent",
]


@attrs.frozen(kw_only=True)
class SessionUpdate:
    """Update the session configuration; only the fields set are changed."""

    type: ClassVar[str] = "session.update"
    event_id: str | None = None
    session: SessionConfig


@attrs.frozen(kw_only=True)
class InputAudioBufferAppend:
    """Append base64 audio (in the session's input format) to the input buffer."""

    type: ClassVar[str] = "input_audio_buffer.append"
    event_id: str | None = None
    audio: str = attrs.field(repr=b64_repr)


@attrs.frozen(kw_only=True)
class InputAudioBufferCommit:
    """Commit the input buffer as a user item (manual turns; needs >= 100 ms of audio)."""

    type: ClassVar[str] = "input_audio_buffer.commit"
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class InputAudioBufferClear:
    """Discard the input buffer."""

    type: ClassVar[str] = "input_audio_buffer.clear"
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class ConversationItemCreate:
    """Add an item to the conversation, after ``previous_item_id`` (``"root"`` = first)."""

    type: ClassVar[str] = "conversation.item.create"
    event_id: str | None = None
    previous_item_id: str | None = None
    item: Item


@attrs.frozen(kw_only=True)
class ConversationItemRetrieve:
    """Ask for the server's copy of an item (answered by ``conversation.item.retrieved``)."""

    type: ClassVar[str] = "conversation.item.retrieve"
    event_id: str | None = None
    item_id: str


@attrs.frozen(kw_only=True)
class ConversationItemTruncate:
    """Cut an assistant audio item at ``audio_end_ms`` (what the user actually heard)."""

    type: ClassVar[str] = "conversation.item.truncate"
    event_id: str | None = None
    item_id: str
    content_index: int
    audio_end_ms: int


@attrs.frozen(kw_only=True)
class ConversationItemDelete:
    """Remove an item from the conversation."""

    type: ClassVar[str] = "conversation.item.delete"
    event_id: str | None = None
    item_id: str


@attrs.frozen(kw_only=True)
class ResponseCreate:
    """Ask the model for a response; ``response`` overrides session settings for it."""

    type: ClassVar[str] = "response.create"
    event_id: str | None = None
    response: ResponseParams | None = None


@attrs.frozen(kw_only=True)
class ResponseCancel:
    """Cancel the active (or the given) response."""

    type: ClassVar[str] = "response.cancel"
    event_id: str | None = None
    response_id: str | None = None


@attrs.frozen(kw_only=True)
class OutputAudioBufferClear:
    """Cut off the audio being played out (WebRTC/SIP only)."""

    type: ClassVar[str] = "output_audio_buffer.clear"
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class TranscriptionSessionUpdate:
    """Configure a transcription-only session (beta dialect only)."""

    type: ClassVar[str] = "transcription_session.update"
    event_id: str | None = None
    session: SessionConfig


@attrs.frozen(kw_only=True)
class UnknownClientEvent:
    """A client event whose ``type`` this library does not know; ``raw`` is the frame."""

    type: str
    raw: dict[str, Any]


CLIENT_EVENT_CLASSES: tuple[type, ...] = (
    SessionUpdate,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioBufferClear,
    ConversationItemCreate,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    ConversationItemDelete,
    ResponseCreate,
    ResponseCancel,
    OutputAudioBufferClear,
    TranscriptionSessionUpdate,
)
"""Every known client event class (the 11 GA events plus beta-only
``TranscriptionSessionUpdate``)."""

ClientEvent = (
    SessionUpdate
    | InputAudioBufferAppend
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | ConversationItemCreate
    | ConversationItemRetrieve
    | ConversationItemTruncate
    | ConversationItemDelete
    | ResponseCreate
    | ResponseCancel
    | OutputAudioBufferClear
    | TranscriptionSessionUpdate
    | UnknownClientEvent
)
"""Any client event, including :class:`UnknownClientEvent`."""
