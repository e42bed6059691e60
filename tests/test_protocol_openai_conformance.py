"""Encoded events validate against the official ``openai`` package models, per dialect.

The ``openai`` package is the authoritative schema (DESIGN.md) and is test-only.
"""

from __future__ import annotations

import typing
from typing import Any

import attrs
import pytest
from protocol_helpers import full_session, sample_client_events, sample_server_events

from orchestrator.protocol import (
    CLIENT_EVENT_CLASSES,
    SERVER_EVENT_CLASSES,
    AudioConfig,
    AudioFormat,
    AudioInput,
    AudioOutput,
    ConversationItemAdded,
    ConversationItemDone,
    Dialect,
    ProtocolError,
    ResponseCreate,
    ResponseOutputAudioDelta,
    ResponseParams,
    SessionConfig,
    SessionUpdate,
    ToolChoice,
    TranscriptionSessionUpdate,
    TranscriptionSessionUpdated,
    decode_client_event,
    decode_server_event,
    dialect_supports,
    encode_client_event,
    encode_server_event,
)

openai = pytest.importorskip("openai")
pydantic = pytest.importorskip("pydantic")

from openai.types.beta import realtime as beta_rt  # noqa: E402
from openai.types.realtime import realtime_client_event as ga_client_mod  # noqa: E402
from openai.types.realtime import realtime_server_event as ga_server_mod  # noqa: E402

ADAPTERS = {
    ("client", Dialect.GA): pydantic.TypeAdapter(ga_client_mod.RealtimeClientEvent),
    ("client", Dialect.BETA): pydantic.TypeAdapter(beta_rt.RealtimeClientEvent),
    ("server", Dialect.GA): pydantic.TypeAdapter(ga_server_mod.RealtimeServerEvent),
    ("server", Dialect.BETA): pydantic.TypeAdapter(beta_rt.RealtimeServerEvent),
}


def _union_members(alias: Any) -> list[type]:
    union = typing.get_args(alias)[0]  # Annotated[Union[...], discriminator]
    return list(typing.get_args(union))


def _openai_types(alias: Any) -> set[str]:
    return {typing.get_args(m.model_fields["type"].annotation)[0] for m in _union_members(alias)}


def _id(e: Any) -> str:
    return type(e).__name__


@pytest.mark.parametrize("dialect", list(Dialect), ids=lambda d: d.value)
@pytest.mark.parametrize("event", sample_client_events(), ids=_id)
def test_client_events_validate_against_openai(event: Any, dialect: Dialect) -> None:
    if not dialect_supports(event, dialect):
        assert isinstance(event, TranscriptionSessionUpdate) and dialect is Dialect.GA
        with pytest.raises(ProtocolError, match="does not exist in the ga dialect"):
            encode_client_event(event, dialect)
        return
    text = encode_client_event(event, dialect)
    model = ADAPTERS["client", dialect].validate_json(text)
    assert model.type == typing.cast(Any, decode_client_event(text, dialect)).type or (
        dialect is Dialect.BETA
    )


@pytest.mark.parametrize("dialect", list(Dialect), ids=lambda d: d.value)
@pytest.mark.parametrize("event", sample_server_events(), ids=_id)
def test_server_events_validate_against_openai(event: Any, dialect: Dialect) -> None:
    if not dialect_supports(event, dialect):
        with pytest.raises(ProtocolError):
            encode_server_event(event, dialect)
        return
    text = encode_server_event(event, dialect)
    if isinstance(event, TranscriptionSessionUpdated):
        # The beta model requires session.client_secret, which the spec's own example
        # (documented_examples.jsonl) does not carry; we never model secrets. Everything
        # else must validate.
        with pytest.raises(pydantic.ValidationError) as info:
            ADAPTERS["server", dialect].validate_json(text)
        own = [
            e for e in info.value.errors() if e["loc"][:1] == ("TranscriptionSessionUpdatedEvent",)
        ]
        assert [(e["loc"][1:], e["type"]) for e in own] == [
            (("session", "client_secret"), "missing")
        ]
        return
    ADAPTERS["server", dialect].validate_json(text)


def test_samples_cover_every_event_class() -> None:
    assert {type(e) for e in sample_client_events()} == set(CLIENT_EVENT_CLASSES)
    assert {type(e) for e in sample_server_events()} == set(SERVER_EVENT_CLASSES)


@pytest.mark.parametrize(
    ("side", "classes"), [("client", CLIENT_EVENT_CLASSES), ("server", SERVER_EVENT_CLASSES)]
)
@pytest.mark.parametrize("dialect", list(Dialect), ids=lambda d: d.value)
def test_supported_wire_types_are_exactly_the_openai_union(
    side: str, classes: tuple[type, ...], dialect: Dialect
) -> None:
    """Every event type of the official union has a class here, and nothing extra is
    claimed to exist in a dialect."""
    from orchestrator.protocol import wire_type

    ours = {wire_type(c, dialect) for c in classes if dialect_supports(c, dialect)}
    alias = ADAPTERS[side, dialect]._type  # the alias given to TypeAdapter
    assert ours == _openai_types(alias)


def test_ga_field_names_match_openai_models() -> None:
    """Our field names are the openai GA model names; every required field exists."""
    by_type = {
        typing.get_args(m.model_fields["type"].annotation)[0]: m
        for alias in (ga_server_mod.RealtimeServerEvent, ga_client_mod.RealtimeClientEvent)
        for m in _union_members(alias)
    }
    for cls in (*SERVER_EVENT_CLASSES, *CLIENT_EVENT_CLASSES):
        model = by_type.get(cls.type)  # type: ignore[attr-defined]
        if model is None:  # beta-only
            assert cls in (TranscriptionSessionUpdate, TranscriptionSessionUpdated)
            continue
        ours = {a.name for a in attrs.fields(cls)}
        theirs = set(model.model_fields) - {"type"}
        required = {n for n, f in model.model_fields.items() if f.is_required()} - {"type"}
        assert ours - {"event_id"} <= theirs, cls
        assert required <= ours, cls


def test_class_names_follow_the_ga_type() -> None:
    def camel(t: str) -> str:
        return "".join(p.capitalize() for p in t.replace(".", "_").split("_"))

    for cls in (*SERVER_EVENT_CLASSES, *CLIENT_EVENT_CLASSES):
        expected = "ErrorEvent" if cls.type == "error" else camel(cls.type)  # type: ignore[attr-defined]
        assert cls.__name__ == expected


@pytest.mark.parametrize("dialect", list(Dialect), ids=lambda d: d.value)
def test_full_session_update_validates_and_keeps_every_setting(dialect: Dialect) -> None:
    text = encode_client_event(SessionUpdate(session=full_session()), dialect)
    model = ADAPTERS["client", dialect].validate_json(text)
    s = model.session
    if dialect is Dialect.GA:
        assert s.type == "realtime"
        assert s.audio.input.format.type == "audio/pcm" and s.audio.input.format.rate == 24000
        assert s.audio.input.turn_detection.silence_duration_ms == 200
        assert s.audio.input.transcription.model == "whisper-1"
        assert s.audio.output.voice == "marin" and s.audio.output.format.type == "audio/pcmu"
        assert s.max_output_tokens == 4096 and s.output_modalities == ["audio"]
    else:
        assert s.input_audio_format == "pcm16" and s.output_audio_format == "g711_ulaw"
        assert s.turn_detection.silence_duration_ms == 200
        assert s.input_audio_transcription.model == "whisper-1"
        assert s.input_audio_noise_reduction.type == "near_field"
        assert s.voice == "marin" and s.speed == 1.1
        assert s.max_response_output_tokens == 4096
        assert s.modalities == ["audio", "text"]
    assert s.tools[0].name == "get_weather" and s.instructions == "Be brief."
    # ...and decoding it back gives the same GA-shaped config (type is filled in GA).
    back = decode_client_event(text, dialect)
    assert isinstance(back, SessionUpdate)
    assert back.session.audio == full_session().audio
    assert back.session.tools == full_session().tools


def test_beta_names_and_shapes_on_the_wire() -> None:
    ev = ResponseOutputAudioDelta(
        response_id="r", item_id="i", output_index=0, content_index=0, delta="AAAA"
    )
    assert '"type":"response.audio.delta"' in encode_server_event(ev, Dialect.BETA)
    assert '"type":"response.output_audio.delta"' in encode_server_event(ev, Dialect.GA)
    added = next(e for e in sample_server_events() if isinstance(e, ConversationItemAdded))
    beta_text = encode_server_event(added, Dialect.BETA)
    assert '"type":"conversation.item.created"' in beta_text
    assert '"type":"audio"' in beta_text and "output_audio" not in beta_text
    assert decode_server_event(beta_text, Dialect.BETA) == added
    assert not dialect_supports(ConversationItemDone, Dialect.BETA)


def test_ga_forced_function_tool_choice_validates() -> None:
    ev = ResponseCreate(response=ResponseParams(tool_choice=ToolChoice(type="function", name="f")))
    text = encode_client_event(ev, Dialect.GA)
    assert ADAPTERS["client", Dialect.GA].validate_json(text).response.tool_choice.name == "f"
    assert decode_client_event(text, Dialect.GA) == ev


@pytest.mark.parametrize(
    ("ga", "beta"),
    [("audio/pcm", "pcm16"), ("audio/pcmu", "g711_ulaw"), ("audio/pcma", "g711_alaw")],
)
def test_audio_format_spellings(ga: str, beta: str) -> None:
    rate = 24000 if ga == "audio/pcm" else None
    ev = SessionUpdate(
        session=SessionConfig(
            audio=AudioConfig(
                input=AudioInput(format=AudioFormat(type=ga, rate=rate)),
                output=AudioOutput(format=AudioFormat(type=ga, rate=rate)),
            )
        )
    )
    text = encode_client_event(ev, Dialect.BETA)
    model = ADAPTERS["client", Dialect.BETA].validate_json(text)
    assert model.session.input_audio_format == beta == model.session.output_audio_format
    assert decode_client_event(text, Dialect.BETA) == ev
