"""Real recorded traffic and the spec's documented examples decode to known events.

Data: ``../shared/captures`` (see its INDEX.md); skipped cleanly when absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from protocol_helpers import documented_examples, jsonl, shared_dir

from orchestrator.protocol import (
    ConversationItemAdded,
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionFailed,
    Dialect,
    FunctionCallItem,
    MessageItem,
    ProtocolError,
    RateLimitsUpdated,
    ResponseDone,
    ResponseFunctionCallArgumentsDone,
    SessionCreated,
    UnknownServerEvent,
    decode_server_event,
    dialect_supports,
    encode_server_event,
)

GA_PREFIXES = (
    "pydantic-ai__test_openai_ws",
    "pydantic-ai__test_azure_ws",
    "pydantic-ai__test_gateway_ws",
    "pydantic-ai__test_parity_ws",
)

# Documented examples we do not expect to decode to a known class, and why.
DOC_SKIPS: dict[tuple[str, str], str] = {
    ("GA", "input_audio_buffer.dtmf_event_received"): (
        "doc bug: the example's type has a leading space (' input_audio_buffer.dtmf_...')"
    ),
    ("beta", "conversation.item.retrieved"): (
        "doc bug: the retrieved example says type 'conversation.item.created'"
    ),
}


def _captures(kind: str) -> list[Path]:
    caps = shared_dir() / "captures"
    if kind == "ga":
        files = [p for p in caps.glob("*.server.jsonl") if p.name.startswith(GA_PREFIXES)]
    elif kind == "beta":
        files = list(caps.glob("banyan-landing*.server.jsonl"))
    else:
        files = list(caps.glob("pydantic-ai__test_azure_voice_live_ws*.server.jsonl"))
    assert files, f"no {kind} capture files in {caps}"
    return sorted(files)


def _decode_file(path: Path, dialect: Dialect) -> list[tuple[int, str, Any]]:
    return [(n, line, decode_server_event(line, dialect)) for n, line in jsonl(path)]


@pytest.mark.parametrize(("kind", "dialect"), [("ga", Dialect.GA), ("beta", Dialect.BETA)])
def test_every_captured_event_decodes_to_a_known_class(kind: str, dialect: Dialect) -> None:
    total = 0
    for path in _captures(kind):
        for n, line, ev in _decode_file(path, dialect):
            total += 1
            assert not isinstance(ev, UnknownServerEvent), f"{path.name}:{n}: {line[:120]}"
            assert ev.type == json.loads(line)["type"] or dialect is Dialect.BETA
    assert total > 400


@pytest.mark.parametrize(("kind", "dialect"), [("ga", Dialect.GA), ("beta", Dialect.BETA)])
def test_captured_events_survive_reencoding(kind: str, dialect: Dialect) -> None:
    for path in _captures(kind):
        for n, _, ev in _decode_file(path, dialect):
            text = encode_server_event(ev, dialect)
            assert decode_server_event(text, dialect) == ev, f"{path.name}:{n}"


def test_azure_voice_live_frames_decode_without_crashing() -> None:
    """A different service with beta-style names: Unknown events are fine, errors are not."""
    kinds: set[str] = set()
    for path in _captures("voice_live"):
        for _, _, ev in _decode_file(path, Dialect.GA):
            kinds.add(type(ev).__name__)
    assert "UnknownServerEvent" in kinds  # e.g. response.audio.delta is not a GA name


@pytest.mark.parametrize("dialect", ["GA", "beta"])
def test_documented_examples_decode_to_known_classes(dialect: str) -> None:
    d = Dialect.GA if dialect == "GA" else Dialect.BETA
    seen = set()
    for row in documented_examples(dialect):
        raw = json.dumps(row["event"])
        if (dialect, row["event_type"]) in DOC_SKIPS:
            ev = decode_server_event(raw, d)  # must still not crash
            continue
        ev = decode_server_event(raw, d)
        assert not isinstance(ev, UnknownServerEvent), row["event_type"]
        seen.add(row["event_type"])
        if dialect_supports(ev, d):  # GA-labelled transcription_session.updated: decode only
            assert decode_server_event(encode_server_event(ev, d), d) == ev, row["event_type"]
    assert len(seen) >= (45 if dialect == "GA" else 32)


def test_ga_capture_details_are_modelled() -> None:
    caps = shared_dir() / "captures"
    events = [
        ev
        for p in caps.glob("pydantic-ai__test_*ws__*.server.jsonl")
        if p.name.startswith(GA_PREFIXES)
        for _, _, ev in _decode_file(p, Dialect.GA)
    ]
    created = next(e for e in events if isinstance(e, SessionCreated))
    audio_in = created.session.audio.input
    assert created.session.type == "realtime" and created.session.max_output_tokens == "inf"
    assert audio_in.format.type == "audio/pcm" and audio_in.format.rate == 24000
    assert audio_in.turn_detection.silence_duration_ms == 200
    done = [e for e in events if isinstance(e, ResponseDone)]
    details = [e.response.usage.input_token_details for e in done]
    assert all(d.cached_tokens_details is not None for d in details)
    reasoning = [
        e.response.usage.output_token_details.reasoning_tokens
        for e in events
        if isinstance(e, ResponseDone) and e.response.usage.output_token_details is not None
    ]
    assert any(r is not None for r in reasoning)  # gpt-realtime-2.1 ("openai-current")
    calls = [e for e in events if isinstance(e, ResponseFunctionCallArgumentsDone)]
    assert {c.name for c in calls} >= {"get_weather"}
    assert any(isinstance(i, FunctionCallItem) for e in done for i in (e.response.output or []))
    rl = [e for e in events if isinstance(e, RateLimitsUpdated)]
    assert rl and all(r.rate_limits[0].name == "tokens" for r in rl)
    usage = [
        e.usage for e in events if isinstance(e, ConversationItemInputAudioTranscriptionCompleted)
    ]
    assert any(u is not None and u.type == "duration" and u.seconds == 3.0 for u in usage)
    failed = [e for e in events if isinstance(e, ConversationItemInputAudioTranscriptionFailed)]
    assert failed and failed[0].error.code == "DeploymentNotFound"


def test_beta_log_is_translated_to_the_ga_model() -> None:
    path = next(p for p in _captures("beta") if "log_2" in p.name)
    events = [ev for _, _, ev in _decode_file(path, Dialect.BETA)]
    created = next(e for e in events if isinstance(e, SessionCreated))
    s = created.session
    assert s.output_modalities == ["audio"]  # beta ["audio", "text"]
    assert s.audio.input.format.type == "audio/pcm" and s.audio.output.voice == "alloy"
    assert s.audio.input.turn_detection.type == "server_vad" and s.temperature == 0.8
    assert s.max_output_tokens == "inf" and s.audio.output.speed == 1.0
    added = [e for e in events if isinstance(e, ConversationItemAdded)]
    assert len(added) == 4  # conversation.item.created in beta
    done = next(e for e in events if isinstance(e, ResponseDone))
    item = done.response.output[0]
    assert isinstance(item, MessageItem) and item.content[0].type == "output_audio"
    assert done.response.audio.output.voice == "coral"
    assert done.response.output_modalities == ["audio"]


def test_ga_frames_on_a_beta_connection_are_unknown_not_errors() -> None:
    path = next(p for p in _captures("ga") if "text_in_audio_out" in p.name)
    kinds = set()
    for _, line, _ in _decode_file(path, Dialect.GA):
        try:
            ev = decode_server_event(line, Dialect.BETA)
        except ProtocolError:  # same-named events whose GA shape is wrong for beta
            kinds.add("ProtocolError")
        else:
            kinds.add(type(ev).__name__)
    assert "UnknownServerEvent" in kinds  # response.output_audio.delta, item.added...
