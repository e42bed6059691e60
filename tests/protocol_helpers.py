"""Shared fixtures-as-functions for the protocol tests (not a conftest: no autouse magic).

- :func:`shared_dir` finds ``../shared`` (``ORCHESTRATOR_SHARED`` overrides) or skips.
- :func:`sample_client_events` / :func:`sample_server_events`: one realistic, fully
  populated instance of every event class (checked for completeness by the tests).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.protocol import (
    NULL,
    AudioConfig,
    AudioFormat,
    AudioInput,
    AudioOutput,
    CachedTokensDetails,
    ContentPart,
    Conversation,
    ConversationCreated,
    ConversationItemAdded,
    ConversationItemCreate,
    ConversationItemCreated,
    ConversationItemDelete,
    ConversationItemDeleted,
    ConversationItemDone,
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionDelta,
    ConversationItemInputAudioTranscriptionFailed,
    ConversationItemInputAudioTranscriptionSegment,
    ConversationItemRetrieve,
    ConversationItemRetrieved,
    ConversationItemTruncate,
    ConversationItemTruncated,
    ErrorDetail,
    ErrorEvent,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCleared,
    InputAudioBufferCommit,
    InputAudioBufferCommitted,
    InputAudioBufferDtmfEventReceived,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    InputAudioBufferTimeoutTriggered,
    InputTokenDetails,
    LogProb,
    McpListToolsCompleted,
    McpListToolsFailed,
    McpListToolsInProgress,
    MessageItem,
    NoiseReduction,
    OutputAudioBufferClear,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputTokenDetails,
    RateLimit,
    RateLimitsUpdated,
    Response,
    ResponseCancel,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseMcpCallArgumentsDelta,
    ResponseMcpCallArgumentsDone,
    ResponseMcpCallCompleted,
    ResponseMcpCallFailed,
    ResponseMcpCallInProgress,
    ResponseOutputAudioDelta,
    ResponseOutputAudioDone,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    ResponseParams,
    SessionConfig,
    SessionCreated,
    SessionUpdate,
    SessionUpdated,
    StatusDetails,
    Transcription,
    TranscriptionSessionUpdate,
    TranscriptionSessionUpdated,
    TranscriptionUsage,
    TurnDetection,
    Usage,
)

AUDIO_B64 = "AAABAAIAAwAEAAUABgAHAAgACQAKAAsADAANAA4ADwA="


def shared_dir() -> Path:
    """The shared reference directory, or skip the calling test when it is absent."""
    env = os.environ.get("ORCHESTRATOR_SHARED")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    if not (path / "captures").is_dir():
        pytest.skip(f"shared reference data not found at {path} (set ORCHESTRATOR_SHARED)")
    return path


def jsonl(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) for every non-blank line."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, line


def documented_examples(dialect: str) -> list[dict[str, Any]]:
    """Lines of ``documented_examples.jsonl`` for ``"GA"`` or ``"beta"``."""
    path = shared_dir() / "captures" / "documented_examples.jsonl"
    rows = [json.loads(line) for _, line in jsonl(path)]
    return [r for r in rows if r["dialect"] == dialect]


def full_session() -> SessionConfig:
    """A session config with everything a client typically sets."""
    return SessionConfig(
        model="gpt-realtime",
        output_modalities=["audio"],
        instructions="Be brief.",
        audio=AudioConfig(
            input=AudioInput(
                format=AudioFormat(type="audio/pcm", rate=24000),
                transcription=Transcription(model="whisper-1", language="en", prompt="names"),
                noise_reduction=NoiseReduction(type="near_field"),
                turn_detection=TurnDetection(
                    type="server_vad",
                    threshold=0.5,
                    prefix_padding_ms=300,
                    silence_duration_ms=200,
                    create_response=True,
                    interrupt_response=True,
                ),
            ),
            output=AudioOutput(format=AudioFormat(type="audio/pcmu"), voice="marin", speed=1.1),
        ),
        tools=[
            FunctionTool(
                name="get_weather",
                description="Weather for a city",
                parameters={
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            )
        ],
        tool_choice="auto",
        max_output_tokens=4096,
        tracing="auto",
    )


def _user_audio_item() -> MessageItem:
    return MessageItem(
        id="item_user",
        status="completed",
        role="user",
        content=[ContentPart(type="input_audio", transcript="hello", audio=AUDIO_B64)],
    )


def _assistant_item() -> MessageItem:
    return MessageItem(
        id="item_asst",
        status="completed",
        role="assistant",
        content=[ContentPart(type="output_audio", transcript="Hi there!")],
    )


def _response(status: str = "completed") -> Response:
    return Response(
        id="resp_1",
        object="realtime.response",
        status=status,
        status_details=StatusDetails(type="cancelled", reason="turn_detected")
        if status == "cancelled"
        else None,
        output=[
            _assistant_item(),
            FunctionCallItem(
                id="item_fc",
                status="completed",
                call_id="call_1",
                name="get_weather",
                arguments='{"city":"Paris"}',
            ),
        ],
        usage=Usage(
            total_tokens=253,
            input_tokens=132,
            output_tokens=121,
            input_token_details=InputTokenDetails(
                text_tokens=119,
                audio_tokens=13,
                image_tokens=0,
                cached_tokens=64,
                cached_tokens_details=CachedTokensDetails(
                    text_tokens=64, audio_tokens=0, image_tokens=0
                ),
            ),
            output_token_details=OutputTokenDetails(text_tokens=30, audio_tokens=91),
        ),
        conversation_id="conv_1",
        metadata={"request": "r1"},
        output_modalities=["audio"],
        audio=AudioConfig(
            output=AudioOutput(format=AudioFormat(type="audio/pcm", rate=24000), voice="alloy")
        ),
        max_output_tokens="inf",
    )


def sample_client_events() -> list[Any]:
    """One populated instance per client event class (plus a few variants)."""
    return [
        SessionUpdate(event_id="event_1", session=full_session()),
        SessionUpdate(
            session=SessionConfig(
                instructions="x", audio=AudioConfig(input=AudioInput(turn_detection=NULL))
            )
        ),
        InputAudioBufferAppend(event_id="event_2", audio=AUDIO_B64),
        InputAudioBufferCommit(event_id="event_3"),
        InputAudioBufferClear(),
        ConversationItemCreate(
            previous_item_id="root",
            item=MessageItem(
                id="item_abc", role="user", content=[ContentPart(type="input_text", text="Hi")]
            ),
        ),
        ConversationItemCreate(
            item=MessageItem(role="assistant", content=[ContentPart(type="output_text", text="ok")])
        ),
        ConversationItemCreate(item=FunctionCallOutputItem(call_id="call_1", output='{"t":21}')),
        ConversationItemRetrieve(item_id="item_abc"),
        ConversationItemTruncate(item_id="item_asst", content_index=0, audio_end_ms=1500),
        ConversationItemDelete(item_id="item_abc"),
        ResponseCreate(),
        ResponseCreate(
            event_id="event_9",
            response=ResponseParams(
                conversation="none",
                instructions="Summarise.",
                output_modalities=["text"],
                tools=[FunctionTool(name="f", parameters={"type": "object"})],
                tool_choice="required",
                metadata={"client_event": "event_9"},
                input=[
                    MessageItem(role="user", content=[ContentPart(type="input_text", text="q")])
                ],
                audio=AudioConfig(output=AudioOutput(voice="alloy")),
                max_output_tokens=200,
            ),
        ),
        ResponseCancel(response_id="resp_1"),
        OutputAudioBufferClear(),
        TranscriptionSessionUpdate(
            session=SessionConfig(
                audio=AudioConfig(
                    input=AudioInput(
                        format=AudioFormat(type="audio/pcm", rate=24000),
                        transcription=Transcription(model="gpt-4o-transcribe"),
                        turn_detection=TurnDetection(type="server_vad", threshold=0.6),
                    )
                )
            )
        ),
    ]


def sample_server_events() -> list[Any]:
    """One populated instance per server event class (plus a few variants)."""
    r = dict(response_id="resp_1", item_id="item_asst", output_index=0, content_index=0)
    return [
        ConversationCreated(
            event_id="event_a",
            conversation=Conversation(id="conv_1", object="realtime.conversation"),
        ),
        ConversationItemCreated(event_id="e", previous_item_id="item_0", item=_user_audio_item()),
        ConversationItemAdded(event_id="e", previous_item_id=None, item=_assistant_item()),
        ConversationItemDone(event_id="e", previous_item_id="item_user", item=_assistant_item()),
        ConversationItemRetrieved(event_id="e", item=_user_audio_item()),
        ConversationItemTruncated(
            event_id="e", item_id="item_asst", content_index=0, audio_end_ms=1500
        ),
        ConversationItemDeleted(event_id="e", item_id="item_user"),
        ConversationItemInputAudioTranscriptionDelta(
            event_id="e",
            item_id="item_user",
            content_index=0,
            delta="Hel",
            logprobs=[LogProb(token="Hel", logprob=-0.1, bytes=[72, 101, 108])],
        ),
        ConversationItemInputAudioTranscriptionCompleted(
            event_id="e",
            item_id="item_user",
            content_index=0,
            transcript="Hello",
            usage=TranscriptionUsage(
                type="tokens",
                input_tokens=13,
                output_tokens=9,
                total_tokens=22,
                input_token_details=InputTokenDetails(text_tokens=0, audio_tokens=13),
            ),
        ),
        ConversationItemInputAudioTranscriptionFailed(
            event_id="e",
            item_id="item_user",
            content_index=0,
            error=ErrorDetail(type="server_error", code="DeploymentNotFound", message="failed"),
        ),
        ConversationItemInputAudioTranscriptionSegment(
            event_id="e",
            id="seg_1",
            item_id="item_user",
            content_index=0,
            text="hello",
            speaker="spk_1",
            start=0.0,
            end=0.4,
        ),
        ErrorEvent(
            event_id="e",
            error=ErrorDetail(
                type="invalid_request_error",
                code="invalid_value",
                message="Invalid value: 'nope'.",
                param="type",
                event_id="event_9",
            ),
        ),
        InputAudioBufferCommitted(event_id="e", previous_item_id="item_0", item_id="item_user"),
        InputAudioBufferCleared(event_id="e"),
        InputAudioBufferSpeechStarted(event_id="e", audio_start_ms=1460, item_id="item_user"),
        InputAudioBufferSpeechStopped(event_id="e", audio_end_ms=4256, item_id="item_user"),
        InputAudioBufferTimeoutTriggered(
            event_id="e", audio_start_ms=672, audio_end_ms=5792, item_id="item_user"
        ),
        InputAudioBufferDtmfEventReceived(event="9", received_at=1763605109),
        OutputAudioBufferStarted(event_id="e", response_id="resp_1"),
        OutputAudioBufferStopped(event_id="e", response_id="resp_1"),
        OutputAudioBufferCleared(event_id="e", response_id="resp_1"),
        ResponseCreated(
            event_id="e",
            response=Response(
                id="resp_1",
                object="realtime.response",
                status="in_progress",
                output=[],
                conversation_id="conv_1",
                output_modalities=["audio"],
                max_output_tokens="inf",
            ),
        ),
        ResponseDone(event_id="e", response=_response()),
        ResponseDone(event_id="e", response=_response("cancelled")),
        ResponseOutputItemAdded(
            event_id="e", response_id="resp_1", output_index=0, item=_assistant_item()
        ),
        ResponseOutputItemDone(
            event_id="e", response_id="resp_1", output_index=0, item=_assistant_item()
        ),
        ResponseContentPartAdded(event_id="e", part=ContentPart(type="audio", transcript=""), **r),
        ResponseContentPartDone(event_id="e", part=ContentPart(type="text", text="Hi"), **r),
        ResponseOutputTextDelta(event_id="e", delta="Hi", **r),
        ResponseOutputTextDone(event_id="e", text="Hi there", **r),
        ResponseOutputAudioDelta(event_id="e", delta=AUDIO_B64, **r),
        ResponseOutputAudioDone(event_id="e", **r),
        ResponseOutputAudioTranscriptDelta(event_id="e", delta="Hi", **r),
        ResponseOutputAudioTranscriptDone(event_id="e", transcript="Hi there", **r),
        ResponseFunctionCallArgumentsDelta(
            event_id="e",
            response_id="resp_1",
            item_id="item_fc",
            output_index=1,
            call_id="call_1",
            delta='{"ci',
        ),
        ResponseFunctionCallArgumentsDone(
            event_id="e",
            response_id="resp_1",
            item_id="item_fc",
            output_index=1,
            call_id="call_1",
            name="get_weather",
            arguments='{"city":"Paris"}',
        ),
        ResponseMcpCallArgumentsDelta(
            event_id="e", response_id="resp_1", item_id="item_m", output_index=0, delta="{"
        ),
        ResponseMcpCallArgumentsDone(
            event_id="e", response_id="resp_1", item_id="item_m", output_index=0, arguments="{}"
        ),
        ResponseMcpCallInProgress(event_id="e", item_id="item_m", output_index=0),
        ResponseMcpCallCompleted(event_id="e", item_id="item_m", output_index=0),
        ResponseMcpCallFailed(event_id="e", item_id="item_m", output_index=0),
        McpListToolsInProgress(event_id="e", item_id="item_l"),
        McpListToolsCompleted(event_id="e", item_id="item_l"),
        McpListToolsFailed(event_id="e", item_id="item_l"),
        RateLimitsUpdated(
            event_id="e",
            rate_limits=[
                RateLimit(name="tokens", limit=40000, remaining=39000, reset_seconds=2.265)
            ],
        ),
        SessionCreated(
            event_id="e",
            session=SessionConfig(
                type="realtime",
                object="realtime.session",
                id="sess_1",
                expires_at=1785217650,
                truncation="auto",
                **{
                    k: getattr(full_session(), k)
                    for k in ("model", "output_modalities", "instructions", "audio", "tools")
                },
            ),
        ),
        SessionUpdated(event_id="e", session=full_session()),
        TranscriptionSessionUpdated(
            event_id="e",
            session=SessionConfig(
                id="sess_1",
                object="realtime.transcription_session",
                audio=AudioConfig(
                    input=AudioInput(
                        format=AudioFormat(type="audio/pcm", rate=24000),
                        transcription=Transcription(model="gpt-4o-transcribe", language="en"),
                        turn_detection=TurnDetection(type="server_vad", threshold=0.5),
                        noise_reduction=NoiseReduction(type="near_field"),
                    )
                ),
                include=["item.input_audio_transcription.logprobs"],
            ),
        ),
    ]
