"""Session configuration, GA-shaped (``session.update`` / ``session.created`` payloads).

The beta dialect's flat shape (``modalities``, ``voice``, ``input_audio_format: "pcm16"``,
``turn_detection`` at top level, ``max_response_output_tokens``...) is translated to and
from this shape by the codec (see ``beta.py``); code above the protocol layer only sees
these classes. Every field defaults to ``None`` meaning "not set": it is omitted when
encoding, so a partial update changes only what it names. Use
:data:`~orchestrator.protocol.common.NULL` where an explicit ``null`` is meant.
"""

from __future__ import annotations

from typing import Any

import attrs

from .common import MaxTokens, Null

__all__ = [
    "AudioConfig",
    "AudioFormat",
    "AudioInput",
    "AudioOutput",
    "FunctionTool",
    "McpTool",
    "NoiseReduction",
    "Prompt",
    "Reasoning",
    "SessionConfig",
    "Tool",
    "ToolChoice",
    "TracingConfig",
    "Transcription",
    "TruncationConfig",
    "TurnDetection",
    "UnknownTool",
]


@attrs.frozen(kw_only=True)
class AudioFormat:
    """An audio format: ``audio/pcm`` (with ``rate`` 24000), ``audio/pcmu`` or ``audio/pcma``.

    Beta spellings: ``pcm16``, ``g711_ulaw``, ``g711_alaw``.
    """

    type: str = "audio/pcm"
    rate: int | None = None


@attrs.frozen(kw_only=True)
class Transcription:
    """Input audio transcription settings (``audio.input.transcription``).

    ``delay`` (minimal/low/medium/high/xhigh), ``keywords`` and ``languages`` are GA
    only (dropped for beta).
    """

    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    delay: str | None = None
    keywords: list[str] | None = None
    languages: list[str] | None = None


@attrs.frozen(kw_only=True)
class NoiseReduction:
    """Input noise reduction: ``type`` is ``near_field`` or ``far_field``."""

    type: str | None = None
    strength: float | None = None


@attrs.frozen(kw_only=True)
class TurnDetection:
    """Server-side turn detection.

    ``type`` is ``server_vad`` (uses threshold, prefix_padding_ms, silence_duration_ms,
    idle_timeout_ms) or ``semantic_vad`` (uses eagerness: low/medium/high/auto).
    """

    type: str = "server_vad"
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    idle_timeout_ms: int | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None
    eagerness: str | None = None


@attrs.frozen(kw_only=True)
class AudioInput:
    """``audio.input``: format, transcription, noise reduction and turn detection."""

    format: AudioFormat | None = None
    transcription: Transcription | Null | None = None
    noise_reduction: NoiseReduction | Null | None = None
    turn_detection: TurnDetection | Null | None = None


@attrs.frozen(kw_only=True)
class AudioOutput:
    """``audio.output``: format, voice (a name, or ``{"id": ...}`` for custom voices), speed."""

    format: AudioFormat | None = None
    voice: str | dict[str, Any] | None = None
    speed: float | None = None


@attrs.frozen(kw_only=True)
class AudioConfig:
    """``audio``: input and output settings (a response's ``audio`` only has ``output``)."""

    input: AudioInput | None = None
    output: AudioOutput | None = None


@attrs.frozen(kw_only=True)
class FunctionTool:
    """A function the model may call; ``parameters`` is a JSON schema object."""

    type: str = "function"
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class McpTool:
    """A remote MCP server the model may use (GA only)."""

    type: str = "mcp"
    server_label: str | None = None
    server_url: str | None = None
    connector_id: str | None = None
    authorization: str | None = attrs.field(default=None, repr=False)
    headers: dict[str, Any] | None = attrs.field(default=None, repr=False)
    allowed_tools: Any = None
    require_approval: Any = None
    server_description: str | None = None
    tunnel_id: str | None = None
    #: ``direct`` / ``programmatic``: the tool invocation contexts
    allowed_callers: list[str] | None = None
    defer_loading: bool | None = None


@attrs.frozen(kw_only=True)
class UnknownTool:
    """A tool of a type this library does not model; ``raw`` is re-sent unchanged."""

    type: str | None
    raw: dict[str, Any]


Tool = FunctionTool | McpTool | UnknownTool


@attrs.frozen(kw_only=True)
class ToolChoice:
    """A forced tool: ``{"type": "function", "name": ...}`` or an MCP tool."""

    type: str
    name: str | None = None
    server_label: str | None = None


@attrs.frozen(kw_only=True)
class TracingConfig:
    """Tracing configuration (or use the string ``"auto"``)."""

    workflow_name: str | None = None
    group_id: str | None = None
    metadata: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class TruncationConfig:
    """Retention-ratio truncation (or use the strings ``"auto"`` / ``"disabled"``)."""

    type: str = "retention_ratio"
    retention_ratio: float | None = None
    token_limits: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class Prompt:
    """A stored prompt reference."""

    id: str
    version: str | None = None
    variables: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class Reasoning:
    """Reasoning settings for reasoning realtime models (``gpt-realtime-2``): ``effort``
    is minimal/low/medium/high/xhigh. GA only."""

    effort: str | None = None


@attrs.frozen(kw_only=True)
class SessionConfig:
    """A Realtime session's configuration, GA-shaped.

    ``type`` is ``"realtime"`` (or ``"transcription"``); in the GA dialect the codec sends
    ``"realtime"`` for a ``session.update`` that leaves it unset, since the GA server
    requires it. ``temperature`` exists only in the beta dialect (dropped for GA);
    ``truncation``, ``prompt``, ``reasoning`` and ``parallel_tool_calls`` only in GA
    (dropped for beta). ``expires_at``, ``id`` and ``object`` are set by the server.
    """

    type: str | None = None
    object: str | None = None
    id: str | None = None
    model: str | None = None
    output_modalities: list[str] | None = None
    instructions: str | None = None
    audio: AudioConfig | None = None
    tools: list[Tool] | None = None
    tool_choice: str | ToolChoice | None = None
    max_output_tokens: MaxTokens | None = None
    temperature: float | None = None
    tracing: str | TracingConfig | Null | None = None
    truncation: str | TruncationConfig | None = None
    prompt: Prompt | Null | None = None
    include: list[str] | None = None
    expires_at: int | None = None
    reasoning: Reasoning | None = None
    parallel_tool_calls: bool | None = None
