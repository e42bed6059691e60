"""Responses, usage, errors, rate limits and other payloads carried by server events."""

from __future__ import annotations

from typing import Any

import attrs

from .common import MaxTokens
from .items import Item
from .session_config import AudioConfig, Prompt, Reasoning, Tool, ToolChoice

__all__ = [
    "CachedTokensDetails",
    "Conversation",
    "ErrorDetail",
    "InputTokenDetails",
    "LogProb",
    "OutputTokenDetails",
    "RateLimit",
    "Response",
    "ResponseParams",
    "StatusDetails",
    "TranscriptionUsage",
    "Usage",
]


@attrs.frozen(kw_only=True)
class ErrorDetail:
    """The ``error`` object of an ``error`` event, a failed transcription or response.

    ``event_id`` echoes the client event that caused it, when the client set one.
    """

    type: str | None = None
    code: str | None = None
    message: str | None = None
    param: str | None = None
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class StatusDetails:
    """Why a response ended: ``type`` cancelled/incomplete/failed, ``reason``
    turn_detected/client_cancelled/max_output_tokens/content_filter, or ``error``."""

    type: str | None = None
    reason: str | None = None
    error: ErrorDetail | None = None


@attrs.frozen(kw_only=True)
class CachedTokensDetails:
    """Cached input tokens by modality."""

    text_tokens: int | None = None
    audio_tokens: int | None = None
    image_tokens: int | None = None


@attrs.frozen(kw_only=True)
class InputTokenDetails:
    """Input tokens by modality, and how many were cached."""

    text_tokens: int | None = None
    audio_tokens: int | None = None
    image_tokens: int | None = None
    cached_tokens: int | None = None
    cached_tokens_details: CachedTokensDetails | None = None


@attrs.frozen(kw_only=True)
class OutputTokenDetails:
    """Output tokens by modality (and reasoning tokens for reasoning models)."""

    text_tokens: int | None = None
    audio_tokens: int | None = None
    reasoning_tokens: int | None = None


@attrs.frozen(kw_only=True)
class Usage:
    """Token usage of a response (``response.done``)."""

    total_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_token_details: InputTokenDetails | None = None
    output_token_details: OutputTokenDetails | None = None


@attrs.frozen(kw_only=True)
class TranscriptionUsage:
    """Usage of an input transcription: ``type`` ``tokens`` (token counts) or
    ``duration`` (``seconds``)."""

    type: str
    seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_token_details: InputTokenDetails | None = None


@attrs.frozen(kw_only=True)
class LogProb:
    """Log probability of one transcription token."""

    token: str
    logprob: float
    bytes: list[int] | None = None


@attrs.frozen(kw_only=True)
class Response:
    """A response as reported by ``response.created`` / ``response.done``.

    ``status``: in_progress, completed, cancelled, failed, incomplete. ``audio.output``
    carries format and voice. ``temperature`` only exists in the beta dialect.
    ``usage`` is None until ``response.done``.
    """

    id: str | None = None
    object: str | None = None
    status: str | None = None
    status_details: StatusDetails | None = None
    output: list[Item] | None = None
    usage: Usage | None = None
    conversation_id: str | None = None
    metadata: dict[str, Any] | None = None
    output_modalities: list[str] | None = None
    audio: AudioConfig | None = None
    max_output_tokens: MaxTokens | None = None
    temperature: float | None = None


@attrs.frozen(kw_only=True)
class ResponseParams:
    """Parameters of a ``response.create``; unset fields use the session's settings.

    ``conversation`` is ``"auto"`` (default conversation) or ``"none"`` (out of band);
    ``input`` replaces the conversation as context; ``metadata`` comes back unchanged in
    ``response.created`` / ``response.done``. ``temperature`` is beta only; ``prompt``,
    ``reasoning`` and ``parallel_tool_calls`` GA only.
    """

    conversation: str | None = None
    instructions: str | None = None
    output_modalities: list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | ToolChoice | None = None
    metadata: dict[str, Any] | None = None
    input: list[Item] | None = None
    audio: AudioConfig | None = None
    max_output_tokens: MaxTokens | None = None
    prompt: Prompt | None = None
    temperature: float | None = None
    reasoning: Reasoning | None = None
    parallel_tool_calls: bool | None = None


@attrs.frozen(kw_only=True)
class RateLimit:
    """One rate limit: ``name`` ``requests`` or ``tokens``."""

    name: str | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None


@attrs.frozen(kw_only=True)
class Conversation:
    """The conversation announced by ``conversation.created``."""

    id: str | None = None
    object: str | None = None
