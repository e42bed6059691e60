"""Server events: what a Realtime server sends (GA names, GA shapes).

Class names are the CamelCase of the GA ``type`` (``ErrorEvent`` for ``error``); ``type``
is a class attribute holding the GA wire name. Fields the protocol always sends are
required; ``event_id`` is optional everywhere (``input_audio_buffer.dtmf_event_received``
has none). Fields the server adds that are not modelled (``obfuscation`` on deltas,
``phase`` on items...) are ignored when decoding.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .common import b64_repr
from .items import ContentPart, Item
from .responses import (
    Conversation,
    ErrorDetail,
    LogProb,
    RateLimit,
    Response,
    TranscriptionUsage,
)
from .session_config import SessionConfig

__all__ = [
    "SERVER_EVENT_CLASSES",
    "ConversationCreated",
    "ConversationItemAdded",
    "ConversationItemCreated",
    "ConversationItemDeleted",
    "ConversationItemDone",
    "ConversationItemInputAudioTranscriptionCompleted",
    "ConversationItemInputAudioTranscriptionDelta",
    "ConversationItemInputAudioTranscriptionFailed",
    "ConversationItemInputAudioTranscriptionSegment",
    "ConversationItemRetrieved",
    "ConversationItemTruncated",
    "ErrorEvent",
    "InputAudioBufferCleared",
    "InputAudioBufferCommitted",
    "InputAudioBufferDtmfEventReceived",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "InputAudioBufferTimeoutTriggered",
    "McpListToolsCompleted",
    "McpListToolsFailed",
    "McpListToolsInProgress",
    "OutputAudioBufferCleared",
    "OutputAudioBufferStarted",
    "OutputAudioBufferStopped",
    "RateLimitsUpdated",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseCreated",
    "ResponseDone",
    "ResponseFunctionCallArgumentsDelta",
    "ResponseFunctionCallArgumentsDone",
    "ResponseMcpCallArgumentsDelta",
    "ResponseMcpCallArgumentsDone",
    "ResponseMcpCallCompleted",
    "ResponseMcpCallFailed",
    "ResponseMcpCallInProgress",
    "ResponseOutputAudioDelta",
    "ResponseOutputAudioDone",
    "ResponseOutputAudioTranscriptDelta",
    "ResponseOutputAudioTranscriptDone",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseOutputTextDelta",
    "ResponseOutputTextDone",
    "ServerEvent",
    "SessionCreated",
    "SessionUpdated",
    "TranscriptionSessionUpdated",
    "UnknownServerEvent",
]

_frozen = attrs.frozen(kw_only=True)

# --- errors, session, conversation -------------------------------------------------


@_frozen
class ErrorEvent:
    """A request was rejected (or the session is failing); see :class:`ErrorDetail`."""

    type: ClassVar[str] = "error"
    event_id: str | None = None
    error: ErrorDetail


@_frozen
class SessionCreated:
    """First event of a connection: the session with its defaults."""

    type: ClassVar[str] = "session.created"
    event_id: str | None = None
    session: SessionConfig


@_frozen
class SessionUpdated:
    """A ``session.update`` was applied; carries the whole resulting session."""

    type: ClassVar[str] = "session.updated"
    event_id: str | None = None
    session: SessionConfig


@_frozen
class TranscriptionSessionUpdated:
    """A ``transcription_session.update`` was applied (beta dialect)."""

    type: ClassVar[str] = "transcription_session.updated"
    event_id: str | None = None
    session: SessionConfig


@_frozen
class ConversationCreated:
    """A conversation was created (right after ``session.created``, older servers)."""

    type: ClassVar[str] = "conversation.created"
    event_id: str | None = None
    conversation: Conversation


@_frozen
class ConversationItemCreated:
    """An item was created (GA keeps this name for compatibility; beta's only item event).

    Decoding the beta ``conversation.item.created`` yields :class:`ConversationItemAdded`.
    """

    type: ClassVar[str] = "conversation.item.created"
    event_id: str | None = None
    previous_item_id: str | None = None
    item: Item


@_frozen
class ConversationItemAdded:
    """An item was added to the conversation (content may still be streaming)."""

    type: ClassVar[str] = "conversation.item.added"
    event_id: str | None = None
    previous_item_id: str | None = None
    item: Item


@_frozen
class ConversationItemDone:
    """An item is complete (GA only; no beta wire form)."""

    type: ClassVar[str] = "conversation.item.done"
    event_id: str | None = None
    previous_item_id: str | None = None
    item: Item


@_frozen
class ConversationItemRetrieved:
    """Answer to ``conversation.item.retrieve``: the server's copy, audio included."""

    type: ClassVar[str] = "conversation.item.retrieved"
    event_id: str | None = None
    item: Item


@_frozen
class ConversationItemTruncated:
    """An assistant audio item was truncated at ``audio_end_ms``."""

    type: ClassVar[str] = "conversation.item.truncated"
    event_id: str | None = None
    item_id: str
    content_index: int
    audio_end_ms: int


@_frozen
class ConversationItemDeleted:
    """An item was deleted."""

    type: ClassVar[str] = "conversation.item.deleted"
    event_id: str | None = None
    item_id: str


@_frozen
class ConversationItemInputAudioTranscriptionDelta:
    """A piece of the transcript of a user audio item."""

    type: ClassVar[str] = "conversation.item.input_audio_transcription.delta"
    event_id: str | None = None
    item_id: str
    content_index: int | None = None
    delta: str | None = None
    logprobs: list[LogProb] | None = None


@_frozen
class ConversationItemInputAudioTranscriptionCompleted:
    """The transcript of a user audio item (``usage`` is absent in old beta servers)."""

    type: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    event_id: str | None = None
    item_id: str
    content_index: int
    transcript: str
    usage: TranscriptionUsage | None = None
    logprobs: list[LogProb] | None = None


@_frozen
class ConversationItemInputAudioTranscriptionFailed:
    """Transcription of a user audio item failed."""

    type: ClassVar[str] = "conversation.item.input_audio_transcription.failed"
    event_id: str | None = None
    item_id: str
    content_index: int
    error: ErrorDetail


@_frozen
class ConversationItemInputAudioTranscriptionSegment:
    """A diarized transcript segment (GA only)."""

    type: ClassVar[str] = "conversation.item.input_audio_transcription.segment"
    event_id: str | None = None
    id: str
    item_id: str
    content_index: int
    text: str
    speaker: str
    start: float
    end: float


# --- input audio buffer ------------------------------------------------------------


@_frozen
class InputAudioBufferCommitted:
    """The input buffer became the user item ``item_id``."""

    type: ClassVar[str] = "input_audio_buffer.committed"
    event_id: str | None = None
    previous_item_id: str | None = None
    item_id: str


@_frozen
class InputAudioBufferCleared:
    """The input buffer was cleared (answer to ``input_audio_buffer.clear``)."""

    type: ClassVar[str] = "input_audio_buffer.cleared"
    event_id: str | None = None


@_frozen
class InputAudioBufferSpeechStarted:
    """Server VAD heard speech; ``audio_start_ms`` is on the appended-audio clock and
    includes ``prefix_padding_ms``."""

    type: ClassVar[str] = "input_audio_buffer.speech_started"
    event_id: str | None = None
    audio_start_ms: int
    item_id: str


@_frozen
class InputAudioBufferSpeechStopped:
    """Server VAD detected the end of speech; ``audio_end_ms`` includes the silence
    duration."""

    type: ClassVar[str] = "input_audio_buffer.speech_stopped"
    event_id: str | None = None
    audio_end_ms: int
    item_id: str


@_frozen
class InputAudioBufferTimeoutTriggered:
    """No speech for ``idle_timeout_ms`` (server VAD); GA only."""

    type: ClassVar[str] = "input_audio_buffer.timeout_triggered"
    event_id: str | None = None
    audio_start_ms: int
    audio_end_ms: int
    item_id: str


@_frozen
class InputAudioBufferDtmfEventReceived:
    """A DTMF key press on a SIP call (GA only; carries no ``event_id``)."""

    type: ClassVar[str] = "input_audio_buffer.dtmf_event_received"
    event_id: str | None = None
    event: str
    received_at: int


# --- output audio buffer (WebRTC/SIP only) -------------------------------------------


@_frozen
class OutputAudioBufferStarted:
    """The server started playing a response's audio (WebRTC/SIP only)."""

    type: ClassVar[str] = "output_audio_buffer.started"
    event_id: str | None = None
    response_id: str


@_frozen
class OutputAudioBufferStopped:
    """The server's output audio buffer drained (WebRTC/SIP only)."""

    type: ClassVar[str] = "output_audio_buffer.stopped"
    event_id: str | None = None
    response_id: str


@_frozen
class OutputAudioBufferCleared:
    """The output audio buffer was cleared (barge-in or client clear; WebRTC/SIP only)."""

    type: ClassVar[str] = "output_audio_buffer.cleared"
    event_id: str | None = None
    response_id: str


# --- responses ---------------------------------------------------------------------


@_frozen
class ResponseCreated:
    """A response started (``status`` in_progress, ``usage`` None)."""

    type: ClassVar[str] = "response.created"
    event_id: str | None = None
    response: Response


@_frozen
class ResponseDone:
    """A response ended (completed, cancelled, incomplete or failed), with usage."""

    type: ClassVar[str] = "response.done"
    event_id: str | None = None
    response: Response


@_frozen
class ResponseOutputItemAdded:
    """A response produced a new output item."""

    type: ClassVar[str] = "response.output_item.added"
    event_id: str | None = None
    response_id: str
    output_index: int
    item: Item


@_frozen
class ResponseOutputItemDone:
    """An output item of a response is complete."""

    type: ClassVar[str] = "response.output_item.done"
    event_id: str | None = None
    response_id: str
    output_index: int
    item: Item


@_frozen
class ResponseContentPartAdded:
    """A content part (``text`` or ``audio``) was added to an output item."""

    type: ClassVar[str] = "response.content_part.added"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    content_index: int
    part: ContentPart


@_frozen
class ResponseContentPartDone:
    """A content part is complete."""

    type: ClassVar[str] = "response.content_part.done"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    content_index: int
    part: ContentPart


@_frozen
class ResponseOutputTextDelta:
    """A piece of text output (beta: ``response.text.delta``)."""

    type: ClassVar[str] = "response.output_text.delta"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    content_index: int
    delta: str


@_frozen
class ResponseOutputTextDone:
    """Text output is complete (beta: ``response.text.done``)."""

    type: ClassVar[str] = "response.output_text.done"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    content_index: int
    text: str


@_frozen
class ResponseOutputAudioDelta:
    """A chunk of base64 audio output (beta: ``response.audio.delta``)."""

    type: ClassVar[str] = "response.output_audio.delta"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    content_index: int
    delta: str = attrs.field(repr=b64_repr)


@_frozen
class ResponseOutputAudioDone:
    """Audio output is complete (beta: ``response.audio.done``)."""

    type: ClassVar[str] = "response.output_audio.done"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    content_index: int


@_frozen
class ResponseOutputAudioTranscriptDelta:
    """A piece of the transcript of audio output (beta: ``response.audio_transcript.delta``)."""

    type: ClassVar[str] = "response.output_audio_transcript.delta"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    content_index: int
    delta: str


@_frozen
class ResponseOutputAudioTranscriptDone:
    """The transcript of audio output is complete (beta: ``response.audio_transcript.done``)."""

    type: ClassVar[str] = "response.output_audio_transcript.done"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    content_index: int
    transcript: str


@_frozen
class ResponseFunctionCallArgumentsDelta:
    """A piece of a function call's JSON arguments."""

    type: ClassVar[str] = "response.function_call_arguments.delta"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    delta: str


@_frozen
class ResponseFunctionCallArgumentsDone:
    """A function call's arguments are complete."""

    type: ClassVar[str] = "response.function_call_arguments.done"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    name: str | None = None
    arguments: str


@_frozen
class ResponseMcpCallArgumentsDelta:
    """A piece of an MCP call's arguments (GA only)."""

    type: ClassVar[str] = "response.mcp_call_arguments.delta"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    delta: str


@_frozen
class ResponseMcpCallArgumentsDone:
    """An MCP call's arguments are complete (GA only)."""

    type: ClassVar[str] = "response.mcp_call_arguments.done"
    event_id: str | None = None
    response_id: str
    item_id: str
    output_index: int
    arguments: str


@_frozen
class ResponseMcpCallInProgress:
    """An MCP call started (GA only)."""

    type: ClassVar[str] = "response.mcp_call.in_progress"
    event_id: str | None = None
    item_id: str
    output_index: int


@_frozen
class ResponseMcpCallCompleted:
    """An MCP call completed (GA only)."""

    type: ClassVar[str] = "response.mcp_call.completed"
    event_id: str | None = None
    item_id: str
    output_index: int


@_frozen
class ResponseMcpCallFailed:
    """An MCP call failed (GA only)."""

    type: ClassVar[str] = "response.mcp_call.failed"
    event_id: str | None = None
    item_id: str
    output_index: int


@_frozen
class McpListToolsInProgress:
    """Listing an MCP server's tools started (GA only)."""

    type: ClassVar[str] = "mcp_list_tools.in_progress"
    event_id: str | None = None
    item_id: str


@_frozen
class McpListToolsCompleted:
    """Listing an MCP server's tools completed (GA only)."""

    type: ClassVar[str] = "mcp_list_tools.completed"
    event_id: str | None = None
    item_id: str


@_frozen
class McpListToolsFailed:
    """Listing an MCP server's tools failed (GA only)."""

    type: ClassVar[str] = "mcp_list_tools.failed"
    event_id: str | None = None
    item_id: str


@_frozen
class RateLimitsUpdated:
    """Current rate limits (GA: after ``response.done``, tokens only)."""

    type: ClassVar[str] = "rate_limits.updated"
    event_id: str | None = None
    rate_limits: list[RateLimit]


@_frozen
class UnknownServerEvent:
    """A server event whose ``type`` this library does not know; ``raw`` is the frame."""

    type: str
    raw: dict[str, Any]


SERVER_EVENT_CLASSES: tuple[type, ...] = (
    ConversationCreated,
    ConversationItemCreated,
    ConversationItemDeleted,
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionDelta,
    ConversationItemInputAudioTranscriptionFailed,
    ConversationItemRetrieved,
    ConversationItemTruncated,
    ErrorEvent,
    InputAudioBufferCleared,
    InputAudioBufferCommitted,
    InputAudioBufferDtmfEventReceived,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    RateLimitsUpdated,
    ResponseOutputAudioDelta,
    ResponseOutputAudioDone,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseCreated,
    ResponseDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    SessionCreated,
    SessionUpdated,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputAudioBufferCleared,
    ConversationItemAdded,
    ConversationItemDone,
    InputAudioBufferTimeoutTriggered,
    ConversationItemInputAudioTranscriptionSegment,
    McpListToolsInProgress,
    McpListToolsCompleted,
    McpListToolsFailed,
    ResponseMcpCallArgumentsDelta,
    ResponseMcpCallArgumentsDone,
    ResponseMcpCallInProgress,
    ResponseMcpCallCompleted,
    ResponseMcpCallFailed,
    TranscriptionSessionUpdated,
)
"""Every known server event class: the 46 GA events plus beta-only
``TranscriptionSessionUpdated``."""

ServerEvent = (
    ConversationCreated
    | ConversationItemCreated
    | ConversationItemDeleted
    | ConversationItemInputAudioTranscriptionCompleted
    | ConversationItemInputAudioTranscriptionDelta
    | ConversationItemInputAudioTranscriptionFailed
    | ConversationItemRetrieved
    | ConversationItemTruncated
    | ErrorEvent
    | InputAudioBufferCleared
    | InputAudioBufferCommitted
    | InputAudioBufferDtmfEventReceived
    | InputAudioBufferSpeechStarted
    | InputAudioBufferSpeechStopped
    | RateLimitsUpdated
    | ResponseOutputAudioDelta
    | ResponseOutputAudioDone
    | ResponseOutputAudioTranscriptDelta
    | ResponseOutputAudioTranscriptDone
    | ResponseContentPartAdded
    | ResponseContentPartDone
    | ResponseCreated
    | ResponseDone
    | ResponseFunctionCallArgumentsDelta
    | ResponseFunctionCallArgumentsDone
    | ResponseOutputItemAdded
    | ResponseOutputItemDone
    | ResponseOutputTextDelta
    | ResponseOutputTextDone
    | SessionCreated
    | SessionUpdated
    | OutputAudioBufferStarted
    | OutputAudioBufferStopped
    | OutputAudioBufferCleared
    | ConversationItemAdded
    | ConversationItemDone
    | InputAudioBufferTimeoutTriggered
    | ConversationItemInputAudioTranscriptionSegment
    | McpListToolsInProgress
    | McpListToolsCompleted
    | McpListToolsFailed
    | ResponseMcpCallArgumentsDelta
    | ResponseMcpCallArgumentsDone
    | ResponseMcpCallInProgress
    | ResponseMcpCallCompleted
    | ResponseMcpCallFailed
    | TranscriptionSessionUpdated
    | UnknownServerEvent
)
"""Any server event, including :class:`UnknownServerEvent`."""
